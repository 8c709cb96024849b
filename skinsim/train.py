"""Train a lesion-similarity embedder on HAM10000 and write a complete run folder.

    python -m skinsim.train --data-dir ../shared/ham10000             # the default recipe
    python -m skinsim.train --preset seed --data-dir ../shared/ham10000  # the original course project
    python -m skinsim.train --loss triplet+proxy-anchor --data-dir ...   # a proxy loss beside the triplet term

Reads top to bottom: config -> data -> split -> model -> (frozen-trunk cache) -> epochs -> embeddings ->
metrics -> UMAP -> run folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from tqdm import tqdm

import skinsim
from skinsim import distributed, runs, two_part
from skinsim.allocator import keep_freed_memory
from skinsim.backbones import WeightsError
from skinsim.compiled import check_setting, trunk_pass, use_compile
from skinsim.config import PRESETS, TrainConfig, preset
from skinsim.curves import save_curves
from skinsim.data import DATASETS, CsvSpec, DataError, read_dataset
from skinsim.data.images import decode_all, parse_size
from skinsim.distributed import World, gather, global_batch_norm
from skinsim.embed import embed_batches, pick_device
from skinsim.evaluate import evaluate, quick_p_at_1, summary
from skinsim.losses import margin_violations
from skinsim.metric_losses import LOSSES, Objective, terms
from skinsim.model import Embedder
from skinsim.precision import resolve as resolve_precision
from skinsim.projection import Projection, fit_umap
from skinsim.sampler import PKSampler, TripletSampler
from skinsim.splits import dev_fold, make_split
from skinsim.transforms import augment, normalise, random_flips
from skinsim.trunk_cache import freeze_trunk, trunk_activations

# ---------------------------------------------------------------------------------------------- CLI
# The original project's flags keep their names and meaning; the rest are skinsim's.
FLAGS = {
    "em": int, "lr": float, "epochs": int, "gamma": float, "loss_margin": float, "step_size": int,
    "batch_size": int, "seed": int, "log_interval": int, "split_seed": int,
    "backbone": str, "pretrained": str, "mining": str, "image_size": str, "split": str, "device": str,
    "workers": int, "optimizer": str, "weight_decay": float, "scheduler": str, "freeze": int,
    "cache_views": int, "samples_per_class": int, "class_power": float, "max_steps": int, "lesion_weight": float,
    "dataset": str, "csv": str, "image_col": str, "label_col": str, "group_col": str, "loss": str, "compile": str,
    "precision": str, "look_dims": int, "look_share": float,
}
# what a flag's help says before its default, where the name alone does not say enough
HELP = {"loss": f"{' | '.join(LOSSES)} | triplet+ one of the others (e.g. triplet+proxy-anchor): triplet is the "
                "FaceNet-style loss over --mining's triplets, the others are pytorch-metric-learning's ",
        "compile": "auto | on | off: torch.compile the frozen trunk's passes (the cache); auto: on the CPU for "
                   "2,000+ images; speed only ",
        "look_dims": "0: one embedding for every term; N > 0: the last N dimensions are a look part that only the "
                     "lesion term trains, the rest a diagnosis part for the class loss ",
        "look_share": "with --look-dims: the look part's weight in every distance, between 0 and 1 ",
        "precision": "auto | bf16 | fp32: the embedding passes without gradients (validation, embeddings, queries) "
                     "in bfloat16 autocast, 2x faster where the device has it natively (auto); training and the cache "
                     "stay float32 "}


def parse_args(argv: list[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    """Build the config: a preset, then every flag given on the command line."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS),
                        help="starting point; other flags override it (seed = the original course project)")
    parser.add_argument("--data-dir", help="dataset folder (default: $SKINSIM_DATA, else data/ham10000; with --csv: "
                                           "the CSV's folder). --dataset: " + " | ".join(DATASETS))
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out rows whose image is missing or unreadable instead of failing")
    parser.add_argument("--out", help="run name under data/runs, or a path (default: date-backbone-split)")
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted run (name or path)")
    parser.add_argument("--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    parser.add_argument("--no-tta", action="store_true", help="embed without flip averaging")
    parser.add_argument("--no-audit", action="store_true", help="skip the dataset audit of the finished run")
    parser.add_argument("--dev-fold", action="store_true",
                        help="choose recipes honestly: train on the training split minus a dev fold and report on "
                             "that fold (its halves are labelled val and test; the real val and test are 'held')")
    defaults = TrainConfig()
    for name, kind in FLAGS.items():
        # both spellings: --loss_margin as the original, --loss-margin as the rest of skinsim
        spellings = sorted({f"--{name}", f"--{name.replace('_', '-')}"})
        parser.add_argument(*spellings, dest=name, type=kind, default=None,
                            help=f"{HELP.get(name, '')}(default preset: {getattr(defaults, name)})")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.skip_missing:
        overrides["skip_missing"] = True
    if args.wandb:
        overrides["wandb"] = True
    if args.no_tta:
        overrides["tta"] = False
    if args.no_audit:
        overrides["audit"] = False
    if args.dev_fold:
        overrides["dev_fold"] = True
    return preset(args.preset, **overrides), args


def out_folder(cfg: TrainConfig, out: str | None) -> Path:
    """Where the run goes: a bare name lands under data/runs."""
    if out is None:
        out = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.backbone}-{cfg.split}"
    path = Path(out)
    return path if len(path.parts) > 1 or path.is_absolute() else runs.runs_dir() / path


# ----------------------------------------------------------------------------------------- training
def make_optimizer(cfg: TrainConfig, params: list) -> torch.optim.Optimizer:
    """Adagrad (the original project's), AdamW or SGD with momentum, over parameters or parameter groups."""
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adagrad, adamw or sgd")


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """StepLR(step_size, gamma) as the original, or cosine decay over the epochs; stepped once per epoch."""
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs), eta_min=cfg.lr * 0.02)
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}; choose step or cosine")


def start_wandb(cfg: TrainConfig, name: str):  # -> wandb run or None
    """Open a W&B run when asked; wandb is an optional extra."""
    if not cfg.wandb:
        return None
    try:
        import wandb
    except ImportError:
        raise SystemExit("error: --wandb needs the optional extra: pip install 'skinsim[wandb]'") from None
    return wandb.init(project="skinsim", name=name, config=cfg.to_dict())


@dataclass
class Data:
    """The table (with its split), every image decoded once, and the row numbers of each split."""

    data_dir: Path
    table: pd.DataFrame
    images: np.ndarray
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_rows: np.ndarray
    classes: list[str]
    labels: torch.Tensor  # class index of every row


def make_deterministic(seed: int) -> None:
    """Seed torch and numpy and ask torch for deterministic kernels, so one seed gives one result.

    On the CPU this makes accumulating index writes serial; on CUDA, kernels without a deterministic
    version (adaptive pooling's backward) only warn.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode also fills every new tensor with NaN to catch reads of uninitialised memory: 10% of a CPU
    # training step and 15% of a trunk pass; no kernel here reads memory it has not written, so results are the same
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.manual_seed(seed)
    np.random.seed(seed)


def load_data(cfg: TrainConfig, work: Path, resume: bool, world: World = World()) -> Data:
    """Checked metadata, the split (the saved one when resuming), and the images at the training size."""
    csv = CsvSpec(Path(cfg.csv).expanduser(), cfg.image_col, cfg.label_col, cfg.group_col) if cfg.csv else None
    dataset = read_dataset(cfg.data_dir, cfg.dataset, csv, skip_missing=cfg.skip_missing)
    data_dir, table = dataset.root, dataset.table
    cfg.dataset = dataset.layout  # the run records what it read, so a resume or a reader never re-detects
    if resume and (work / "split.parquet").is_file():
        saved = pd.read_parquet(work / "split.parquet").set_index("image_id")["split"]
        table["split"] = saved.reindex(table["image_id"]).to_numpy()
    else:
        table["split"] = make_split(table, cfg.split, cfg.split_rng)
        if cfg.dev_fold:
            table["split"] = dev_fold(table)  # one fold per split seed, the one `python -m skinsim.screen` uses
        # written once, whole (other ranks of a resumed run read it; a rewrite under them was read half-written)
        if world.is_main:
            runs.write_atomic(work / "split.parquet", lambda path: table[["image_id", "lesion_id", "dx", "split"]]
                              .to_parquet(path, index=False))
    size = parse_size(cfg.image_size)
    images = decode_all(data_dir, list(table["path"]), size, workers=cfg.workers)
    split = table["split"].to_numpy()
    classes = sorted(table["dx"].unique())
    labels = torch.tensor(table["dx"].map({c: i for i, c in enumerate(classes)}).to_numpy())
    data = Data(data_dir, table, images, *(np.flatnonzero(split == s) for s in ("train", "val", "test")), classes, labels)
    log = print if world.is_main else (lambda *a, **k: None)
    if dataset.dropped:
        log(f"data: left out {len(dataset.dropped)} image(s) missing or unreadable (--skip-missing)")
    log(f"data: {len(table)} images ({dataset.layout}) from {data_dir}; split '{cfg.split}' (seed {cfg.split_rng}): "
          f"{len(data.train_rows)} train / {len(data.val_rows)} val / {len(data.test_rows)} test; "
          f"size {size[0]}x{size[1]}")
    return data


class Inputs:
    """Model inputs for table rows: cached frozen-trunk activations, or normalised images."""

    def __init__(self, cfg: TrainConfig, model: Embedder, data: Data, device: torch.device,
                 generator: torch.Generator, world: World = World()):
        self.cfg, self.model, self.data, self.device, self.world = cfg, model, data, device, world
        self.lesions = torch.as_tensor(pd.factorize(data.table["lesion_id"])[0])  # labels of the lesion term
        if not cfg.freeze:
            return
        # the frozen trunk runs once per image and view: compiled, 30% faster
        fast = use_compile(cfg.compile, device, len(data.table))
        trunk = trunk_pass(model, cfg.freeze, fast)
        if fast and world.is_main:
            print(f"compile: the frozen trunk goes through torch.compile (--compile {cfg.compile})")
        train = data.train_rows
        self.plain = trunk_activations(model, data.images, cfg.freeze, device, world=world, forward=trunk)  # unaugmented
        # augmented views draw from `generator` before any batch does, so a resumed run rebuilds the same ones
        self.views = [self.plain[train]] + [trunk_activations(model, data.images[train], cfg.freeze, device, generator,
                                                              world=world, forward=trunk)
                                            for _ in range(max(0, cfg.cache_views - 1))]
        if world.is_main:
            print(f"frozen trunk: {cfg.freeze} stages cached for {len(self.plain)} images, {len(self.views)} view(s) "
                  f"of train, {sum(v.numel() for v in [self.plain, *self.views[1:]]) * 2 / 2**20:.0f} MiB")

    def train_batch(self, batch: list[int], generator: torch.Generator) -> torch.Tensor:
        """An augmented batch for positions `batch` in the training rows."""
        if self.cfg.freeze:
            view = torch.randint(len(self.views), (len(batch),), generator=generator)
            x = torch.stack([self.views[v][i] for v, i in zip(view.tolist(), batch)])
            return random_flips(x.to(self.device).float(), generator)
        rows = self.data.train_rows[np.asarray(batch)]
        x = normalise(self.data.images[rows], self.model.mean, self.model.std)
        return augment(x, generator).to(self.device)

    def embed(self, rows: np.ndarray, tta: bool) -> np.ndarray:
        """Embeddings of table rows."""
        if self.cfg.freeze:
            get = lambda s: self.plain[rows[s]]  # noqa: E731
        else:
            get = lambda s: normalise(self.data.images[rows[s]], self.model.mean, self.model.std)  # noqa: E731
        return embed_batches(self.model, len(rows), get, self.cfg.freeze, tta, device=self.device, world=self.world,
                             precision=self.cfg.precision)


def check_objective(cfg: TrainConfig) -> None:
    """ValueError for an unknown --loss, a negative lesion weight, two parts that cannot be joined or lack the lesion
    term, or a lesion term or class-level loss without the P x K batches it needs (checked before any work is done)."""
    if cfg.lesion_weight < 0:
        raise ValueError(f"--lesion-weight must be 0 or more, not {cfg.lesion_weight}")
    two_part.check(cfg.look_dims, cfg.look_share, cfg.em)
    if cfg.look_dims and not cfg.lesion_weight:
        raise ValueError("--look-dims needs the lesion term that trains the look part: give --lesion-weight above 0")
    _, other = terms(cfg.loss)
    if cfg.mining != "random":
        return
    if cfg.lesion_weight:
        raise ValueError("--lesion-weight needs P x K batches (--mining semi-hard or batch-hard), not the "
                         "original's random triplets: add --lesion-weight 0 to train random triplets alone")
    if other is not None:
        raise ValueError(f"--loss {cfg.loss} needs P x K batches (--mining semi-hard or batch-hard), not the "
                         "original's random triplets")


def make_objective(cfg: TrainConfig, n_classes: int, device: torch.device) -> Objective:
    """The named loss with the lesion term; its parameters start from `cfg.seed` alike on every rank."""
    return Objective(cfg.loss, cfg.mining, cfg.loss_margin, cfg.lesion_weight, n_classes, cfg.em, cfg.seed,
                     cfg.look_dims, cfg.look_share).to(device)


def make_sampler(cfg: TrainConfig, train_labels: np.ndarray,
                 train_lesions: np.ndarray | None = None) -> PKSampler | TripletSampler:
    """Random triplets (the original's) or P x K class-balanced batches for in-batch mining; with a lesion term,
    P x K batches that draw lesion mates side by side (`train` has checked the lesion term already)."""
    if cfg.mining == "random":
        return TripletSampler(train_labels, cfg.batch_size, seed=cfg.seed)
    p = max(2, cfg.batch_size // cfg.samples_per_class)
    groups = train_lesions if cfg.lesion_weight else None
    return PKSampler(train_labels, p, cfg.samples_per_class, cfg.class_power, seed=cfg.seed, groups=groups)


def train_step(cfg: TrainConfig, net: torch.nn.Module, objective: Objective, inputs: Inputs, batch: list[int],
               generator: torch.Generator, world: World) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward and backward of one global batch: this rank embeds its share, mining and the loss see all of it.

    Every rank computes the objective on the whole batch, so the objective's own parameters (proxies) get the same
    gradient on every rank without being reduced. Returns (loss, embeddings, labels) of the global batch, detached.
    """
    x = inputs.train_batch(batch, generator)  # the whole batch on every rank: the same augmentation draws
    rows = inputs.data.train_rows[np.asarray(batch)]
    y = inputs.data.labels[rows].to(inputs.device)
    emb = gather(net(x[world.share_of(len(x))], cfg.freeze), world)
    loss = objective(emb, y, inputs.lesions[rows].to(inputs.device))
    loss.backward()
    return loss.detach(), emb.detach(), y


def train_epoch(cfg: TrainConfig, epoch: int, model: Embedder, net: torch.nn.Module, objective: Objective,
                inputs: Inputs, sampler, opt: torch.optim.Optimizer, generator: torch.Generator,
                world: World = World(), wb=None) -> dict[str, float]:
    """One pass over the sampler's batches; returns the epoch's mean loss and margin-violation share.

    `net` is `model` itself, or its DistributedDataParallel wrapper when there are several ranks.
    """
    model.train()
    if cfg.freeze:
        freeze_trunk(model, cfg.freeze)
    sampler.set_epoch(epoch)
    n_batches = min(len(sampler), cfg.max_steps) if cfg.max_steps else len(sampler)
    losses, violating = [], []
    bar = tqdm(sampler, total=n_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", mininterval=2,
               file=sys.stderr, disable=None if world.is_main else True)
    for step, batch in enumerate(bar):
        if step >= n_batches:
            break
        opt.zero_grad(set_to_none=True)
        loss, emb, y = train_step(cfg, net, objective, inputs, batch, generator, world)
        opt.step()
        losses.append(loss.item())
        violating.append(margin_violations(emb, y, cfg.loss_margin))
        if (step + 1) % max(1, cfg.log_interval) == 0:
            recent = float(np.mean(losses[-cfg.log_interval:]))
            bar.set_postfix(loss=f"{recent:.4f}", violating=f"{np.nanmean(violating[-cfg.log_interval:]):.2f}")
            if wb is not None:
                wb.log({"train/loss": recent, "epoch": epoch + step / n_batches})
    return {"train_loss": float(np.mean(losses)) if losses else float("nan"),
            "violating_triplets": float(np.nanmean(violating)) if violating else float("nan")}


def save_state(path: Path, epoch: int, model: Embedder, objective: Objective, opt, sched,
               generator: torch.Generator, curves: list[dict]) -> None:
    """Everything --resume needs, in one file replaced atomically (a kill -9 leaves the previous epoch's)."""
    tmp = path.with_suffix(".tmp")
    # the objective's parameters (a proxy loss's proxies) resume with the model; the exported checkpoint leaves them out
    torch.save({"epoch": epoch, "model": model.state_dict(), "objective": objective.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "curves": curves}, tmp)
    os.replace(tmp, path)


def load_state(path: Path, model: Embedder, objective: Objective, opt, sched,
               generator: torch.Generator) -> tuple[int, list[dict]]:
    """Restore what `save_state` wrote; returns (epochs done, curves so far)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model" not in state:
        raise ValueError(f"{path} was written by an older skinsim and cannot be resumed exactly; start the run again")
    model.load_state_dict(state["model"])
    objective.load_state_dict(state.get("objective", {}))  # states from before --loss: triplet, nothing to load
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"]), list(state["curves"])


def build_model(cfg: TrainConfig, device: torch.device, world: World) -> tuple[Embedder, torch.nn.Module]:
    """The embedder (first `freeze` stages frozen) and what training calls: itself, or its DDP wrapper."""
    model = Embedder(cfg.backbone, cfg.em, cfg.pretrained, cfg.look_dims, cfg.look_share).to(device)
    if cfg.freeze:
        freeze_trunk(model, cfg.freeze)
    if not world.distributed:
        return model, model
    model = global_batch_norm(model, device)
    ids = [world.local_rank] if device.type == "cuda" else None
    return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def train(cfg: TrainConfig, final: Path, resume: bool = False) -> Path:
    """Run the whole pipeline for one config and return the finished run folder (every rank returns it)."""
    check_objective(cfg)
    check_setting(cfg.compile)
    keep_freed_memory()  # 10% off a CPU training step, a quarter off the cache: no page faults per batch
    clock: dict[str, float] = {}
    tick = time.perf_counter()
    make_deterministic(cfg.seed)
    device = pick_device(cfg.device)
    world = distributed.start(device)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    cfg.precision = resolve_precision(cfg.precision, device)  # the run records bf16 or fp32, what searching it uses
    writer = runs.RunWriter(final, resume=resume) if world.is_main else None
    work = final.parent / f".{final.name}.partial"
    state_path = work / "train_state.pt"
    if world.is_main and not resume:
        runs.write_json(work / "config.json", {**cfg.to_dict(), "meta": {"complete": False}})
    world.barrier()  # the work folder exists before any rank reads or writes in it
    say = print if world.is_main else (lambda *a, **k: None)

    # data: checked metadata, the split, every image decoded once into memory
    data = load_data(cfg, work, resume, world)
    clock["decode"] = time.perf_counter() - tick

    # model, with the first `freeze` stages frozen and their activations computed once
    tick = time.perf_counter()
    model, net = build_model(cfg, device, world)
    generator = torch.Generator().manual_seed(cfg.seed)
    inputs = Inputs(cfg, model, data, device, generator, world)
    clock["cache"] = time.perf_counter() - tick

    objective = make_objective(cfg, len(data.classes), device)
    params = [p for p in model.parameters() if p.requires_grad]
    # a proxy loss's own parameters in a group of their own; the triplet loss has none (its optimizer as before)
    extra = list(objective.parameters())
    opt = make_optimizer(cfg, [{"params": params}, {"params": extra}] if extra else params)
    sched = make_scheduler(cfg, opt)
    sampler = make_sampler(cfg, data.table["dx"].to_numpy()[data.train_rows],
                           data.table["lesion_id"].to_numpy()[data.train_rows])
    first_epoch, curves = 0, []
    if resume and state_path.is_file():
        first_epoch, curves = load_state(state_path, model, objective, opt, sched, generator)
        say(f"resuming {work} after epoch {first_epoch}")
    wb = start_wandb(cfg, final.name) if world.is_main else None
    clock["train"] = sum(r["time_s"] for r in curves)

    dx = data.table["dx"].to_numpy()
    for epoch in range(first_epoch, cfg.epochs):
        tick = time.perf_counter()
        row = train_epoch(cfg, epoch, model, net, objective, inputs, sampler, opt, generator, world, wb)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        val_p1 = quick_p_at_1(inputs.embed(data.val_rows, False), dx[data.val_rows],
                              inputs.embed(data.test_rows, False), dx[data.test_rows])
        seconds = time.perf_counter() - tick
        curves.append({"epoch": epoch + 1, **row, "val_p_at_1": val_p1, "lr": lr, "time_s": seconds})
        clock["train"] += seconds
        say(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.4f}, triplets violating the margin "
            f"{row['violating_triplets']:.3f}, val P@1 {val_p1:.3f}, {seconds:.0f} s")
        if wb is not None:
            wb.log({"val/p_at_1": val_p1, "train/epoch_loss": row["train_loss"],
                    "train/violating_triplets": row["violating_triplets"], "epoch": epoch + 1})
        if world.is_main:
            save_curves(curves, work)
            save_state(state_path, epoch + 1, model, objective, opt, sched, generator, curves)

    tick = time.perf_counter()
    vectors = inputs.embed(np.arange(len(data.table)), cfg.tta)  # sharded across ranks, gathered on each
    clock["embed"] = time.perf_counter() - tick
    if world.is_main:
        finish(cfg, writer, data, vectors, curves, model, device, clock, wb)
    world.barrier()  # no rank leaves (and tears the group down) before the run folder is in place
    distributed.stop(world)
    return final


def finish(cfg: TrainConfig, writer: runs.RunWriter, data: Data, vectors: np.ndarray, curves: list[dict],
           model: Embedder, device: torch.device, clock: dict[str, float], wb=None) -> Path:
    """Metrics and UMAP of the embeddings, the run folder moved into place, then the audit (rank 0 only)."""
    tick = time.perf_counter()
    report = evaluate(data.table, vectors, seed=cfg.split_rng)
    clock["evaluate"] = time.perf_counter() - tick
    tick = time.perf_counter()
    projection = fit_umap(vectors, seed=cfg.seed)
    clock["umap"] = time.perf_counter() - tick
    write_outputs(cfg, writer.work, data, vectors, projection, report, curves, model, device, clock)
    if wb is not None:
        wb.summary.update({f"test/{k}": v for k, v in report["overall"].items()})
        wb.finish()
    path = writer.commit()
    if cfg.audit:
        audit_run(path)
    print(summary(report))
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in clock.items()))
    print(f"run written to {path}")
    return path


def audit_run(path: Path) -> None:
    """The dataset audit (duplicates, label issues, outliers) beside a finished run; a failure only warns."""
    from skinsim.audit import AuditError, run_audit

    try:
        run_audit(path)
    except (AuditError, OSError, ValueError) as exc:  # the run itself is complete and must stay usable
        print(f"warning: the dataset audit failed ({exc}); retry with `python -m skinsim.audit {path}`",
              file=sys.stderr)


def write_outputs(cfg: TrainConfig, work: Path, data: Data, vectors: np.ndarray, projection: Projection,
                  report: dict, curves: list[dict], model: Embedder, device: torch.device,
                  clock: dict[str, float]) -> None:
    """The run's tables, metrics, curves, checkpoint and finished config, into the work folder."""
    # the dataset's own columns (ISIC 2020's diagnosis, a CSV's extra columns...) travel with every image
    meta_cols = runs.META_COLUMNS + [c for c in data.table.columns if c not in runs.META_COLUMNS]
    runs.write_vectors(work / "embeddings.parquet", data.table[meta_cols], vectors)
    coords = projection.coords
    runs.write_map(work / "umap.parquet", data.table[meta_cols].assign(x=coords[:, 0], y=coords[:, 1]),
                   projection.method)
    runs.write_json(work / "metrics.json", report)
    save_curves(curves, work)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, work / "checkpoint.safetensors")
    clock["total"] = sum(clock.values())
    meta = {"complete": True, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data_dir": str(data.data_dir.resolve()), "n_images": len(data.table),
            "classes": data.classes, "device": str(device), "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "map": projection.method,
            "versions": {"skinsim": skinsim.__version__, "torch": torch.__version__,
                         "python": platform.python_version()},
            "time_s": clock}
    runs.write_json(work / "config.json", {**cfg.to_dict(), "meta": meta})


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    cfg, args = parse_args(argv)
    resume = False
    if args.resume:
        final = out_folder(cfg, args.resume)
        work = final.parent / f".{final.name}.partial"
        if not (work / "config.json").is_file():
            print(f"error: nothing to resume at {work} (no interrupted run of that name)", file=sys.stderr)
            return 2
        saved = runs.read_json(work / "config.json")
        cfg = dataclasses.replace(TrainConfig.from_dict(saved), device=cfg.device, workers=cfg.workers)
        resume = True
    else:
        final = out_folder(cfg, args.out)
    try:
        world = distributed.start(pick_device(cfg.device))  # under torchrun: join the group before naming the run
        final = distributed.same_on_all(final, world)  # a name made from the clock could differ between ranks
        train(cfg, final, resume=resume)
    except (DataError, WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: python -m skinsim.train --resume {final}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
