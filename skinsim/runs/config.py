"""The one training config, its presets, and how it is saved beside a run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass
class TrainConfig:
    """Everything that decides what a training run does; saved as config.json in the run."""

    preset: str | None = "default"  # the preset the run started from (PRESETS); None: a run made before it was recorded
    # data and split
    data_dir: str | None = None
    dataset: str = "auto"            # auto | ham10000 | isic2019 | isic2020 | pad-ufes-20 | csv; runs record the one read
    csv: str | None = None           # generic dataset: the CSV listing images (--dataset csv)
    image_col: str = "image"         # generic CSV: column of image paths or ids
    label_col: str = "label"         # generic CSV: column of labels
    group_col: str | None = None     # generic CSV: lesion or patient column; None: each image is its own group
    skip_missing: bool = False       # leave out rows whose image is missing or unreadable instead of failing
    split: str = "lesion"            # lesion (grouped by lesion_id) | image (the original project's)
    seed: int = 42                   # fixes the whole run: split (unless split_seed), init, batches, augmentation
    split_seed: int | None = None    # seed of the train/val/test split alone; None: the same as `seed`
    lesion_merges: str | None = None  # reviewed merges (skinsim.data.merges): `same` verdicts make one lesion of
                                      # two ids in the split, the P x K batches and the same-lesion metric
    dev_fold: bool = False           # train on the training split minus a dev fold, score on that fold (issue 8)
    image_size: str = "150x200"      # height x width, or one number for a square
    # model
    backbone: str = "efficientnet_lite0"
    pretrained: str = "imagenet"     # imagenet | none
    em: int = 128
    freeze: int = 4                  # leading backbone stages kept frozen; their outputs are computed once
    cache_views: int = 3             # views of each training image cached: the plain one + (cache_views - 1) augmented
    # loss and triplets
    loss: str = "triplet"            # the original FaceNet-style loss over --mining's triplets, so earlier runs and
                                     # --preset seed stay as they were; or a pytorch-metric-learning loss, alone or as
                                     # triplet+X (skinsim.train.objective.TRAIN_LOSSES; issue 8)
    mining: str = "semi-hard"        # random | batch-hard | semi-hard
    loss_margin: float = 0.2
    batch_size: int = 64             # images per batch (PK mining) or triplets per batch (random mining)
    samples_per_class: int = 8       # K of the P x K batches
    class_power: float = 0.5         # classes drawn with probability ~ count**class_power (0 balanced, 1 natural)
    lesion_weight: float = 1.0       # weight of a supervised-contrastive term over lesion ids; 0 is the recipe before
                                     # issue 8, whose neighbours shared a diagnosis but hardly ever the lesion
    # optimisation
    optimizer: str = "adamw"         # adagrad | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"        # step | cosine
    gamma: float = 0.7
    step_size: int = 3
    epochs: int = 10
    max_steps: int = 0               # stop each epoch after this many batches (0: whole epoch); for smoke tests
    # evaluation and logging
    tta: bool = True                 # average the embedding of an image and its flips
    compile: str = "auto"            # auto | on | off: torch.compile the frozen trunk (compute.compiled); auto: on the
                                     # CPU for 2,000+ images. Speed only: its outputs agree with eager ones to ~1e-6
    precision: str = "auto"          # auto | bf16 | fp32: the embedding passes without gradients (validation, embeddings,
                                     # queries) in bfloat16 autocast; auto: bf16 where the device has it natively. Runs
                                     # record the resolved value (compute.precision); training and the cache stay fp32
    log_interval: int = 10
    device: str = "auto"
    workers: int = 2
    wandb: bool = False
    audit: bool = True               # run the dataset audit (skinsim.audit) on the finished run

    @property
    def split_rng(self) -> int:
        """The seed the split is drawn with."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Rebuild from a dict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        if values.get("look_dims"):  # its vectors and checkpoint mean something this version no longer computes
            raise ValueError("this run was trained with two-part embeddings (--look-dims), an experiment removed on "
                             "2026-12-05: commit ae06748 reads it (docs/results.md, fifth round)")
        # runs made before other datasets were read HAM10000; runs made before the lesion term had none, nor compiling,
        # nor bfloat16 passes
        values = {"dataset": "ham10000", "lesion_weight": 0.0, "compile": "off", "precision": "fp32", "preset": None,
                  **values}
        return cls(**{k: v for k, v in values.items() if k in known})

    def preset_changes(self) -> dict[str, Any]:
        """The fields where this config differs from the preset it started from: what its flags changed."""
        if self.preset not in PRESETS:
            return {}
        start = PRESETS[self.preset].to_dict()
        return {k: v for k, v in self.to_dict().items() if k != "preset" and start[k] != v}

    def saved(self, meta: dict[str, Any]) -> dict[str, Any]:
        """What config.json holds: the fields, what the flags changed from the preset, and the run's `meta`."""
        return {**self.to_dict(), "preset_changes": self.preset_changes(), "meta": meta}


# The course project skinsim descends from: ResNet18, random triplets, Adagrad, StepLR, split by image.
SEED = TrainConfig(
    split="image", seed=42, image_size="224", backbone="resnet18", pretrained="imagenet", em=128,
    freeze=0, cache_views=1, mining="random", loss_margin=0.2, batch_size=32, class_power=1.0,
    optimizer="adagrad", lr=0.05, weight_decay=0.0, scheduler="step", gamma=0.7, step_size=3, epochs=12,
    tta=False, lesion_weight=0.0, precision="fp32", preset="seed",
)
# The default trained twice as long (issue 22): on the dev fold the one use of more compute whose gains (macro P@1,
# MAP@R, melanoma MAP@R) lay outside three seeds' noise; Lite1, Lite2, full fine-tuning and ensembles did not move
# them (docs/results.md). It gives up some same-lesion retrieval for them.
FULL = TrainConfig(epochs=20, preset="full")
PRESETS = {"default": TrainConfig(), "full": FULL, "seed": SEED}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A named preset with some fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{"preset": name, **overrides})
