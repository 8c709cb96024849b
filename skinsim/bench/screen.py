"""Screen metric-learning losses in seconds: a small head trained on frozen ImageNet features, scored on a dev fold
carved from the training split (lesion-grouped), never on validation or test.

    python -m skinsim.screen --data-dir ../shared/ham10000 [--losses triplet,supcon] [--seeds 0,1,2]

The features are EfficientNet-Lite0's pooled ImageNet features of each image and of its mirror image (cached
under artifacts/screen/). The head (1280 -> 512 -> 128, L2-normalised) is trained on the training split minus
the dev fold with pytorch-metric-learning's losses over P x K batches of diagnoses. The dev fold's lesions are
split in two, as validation and test are: queries against the other half give P@1, macro P@1 and melanoma P@1,
and every dev image whose lesion has other images is a same-lesion query over the training and dev images.
A screen ranks ideas for the full recipe cheaply; it does not replace a full run.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from skinsim.data.splits import dev_fold
from skinsim.evaluate.report import retrieval_report, same_lesion_report
from skinsim.runs.folder import REPO_ROOT
from skinsim.train import objective
from skinsim.train.mining import LESION_NEGATIVES, lesion_pairs
from skinsim.train.objective import LOSSES

CACHE = REPO_ROOT / "artifacts" / "screen"
EMBEDDING = 128
STEPS, P, K = 1500, 7, 16
LESION_WEIGHT = 1.0


@dataclass(frozen=True)
class LesionTerm:
    """How '+lesion' is built: which images of other lesions are its negatives, and its temperature."""

    negatives: str = "all"      # all | other-class | same-class (skinsim.train.mining.lesion_pairs)
    temperature: float = 0.1

    def label(self) -> str:
        """What a table row adds to the loss name; nothing for the defaults."""
        parts = ([f"negatives {self.negatives}"] if self.negatives != "all" else []) + \
                ([f"temperature {self.temperature:g}"] if self.temperature != 0.1 else [])
        return f" ({', '.join(parts)})" if parts else ""


def features(data_dir: Path, table: pd.DataFrame) -> np.ndarray:
    """(n, 2, 1280) pooled ImageNet Lite0 features of each image and its mirror image, cached by image ids."""
    from skinsim.data.images import decode_all
    from skinsim.model.embedder import Embedder
    from skinsim.model.transforms import normalise

    key = pd.util.hash_pandas_object(table["image_id"], index=False).sum() % (1 << 48)
    path = CACHE / f"lite0_{len(table)}_{key:012x}.npy"
    if path.is_file():
        return np.load(path)
    model = Embedder("efficientnet_lite0", em=1, pretrained="imagenet").eval()
    images = decode_all(data_dir, list(table["path"]), (150, 200))
    out = np.empty((len(table), 2, 1280), dtype=np.float32)
    with torch.no_grad():
        for i in range(0, len(images), 32):
            x = normalise(images[i:i + 32], model.mean, model.std)
            for view, batch in enumerate((x, torch.flip(x, dims=[3]))):
                out[i:i + 32, view] = model.trunk(batch, len(model.stages)).numpy()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


class LogitAdjustedSoftmax(nn.Module):
    """Normalised softmax over class proxies with logit adjustment (Menon et al. 2021): each logit gets
    tau * log(prior of its class) during training, so that the rare classes' proxies are not pushed aside by nv's
    count. pytorch-metric-learning's NormalizedSoftmaxLoss has no such offset."""

    def __init__(self, class_counts: np.ndarray, embedding_size: int, temperature: float = 0.05, tau: float = 1.0):
        super().__init__()
        self.proxies = nn.Parameter(torch.randn(len(class_counts), embedding_size) / embedding_size ** 0.5)
        prior = torch.as_tensor(class_counts, dtype=torch.float32) / float(np.sum(class_counts))
        self.register_buffer("offset", tau * torch.log(prior))
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the adjusted cosine logits."""
        logits = embeddings @ nn.functional.normalize(self.proxies, dim=1).T / self.temperature
        return nn.functional.cross_entropy(logits + self.offset, labels)


# class terms only the screen has (ideas of issue 22, not yet in `python -m skinsim.train --loss`)
SCREEN_TERMS = ("xbm-triplet", "la-softmax")


def class_term(name: str, class_counts: np.ndarray) -> tuple[nn.Module, Any]:
    """(loss, miner or None) of one class-level term: skinsim.train.objective's, or a screen-only one."""
    from pytorch_metric_learning import losses, miners

    if name == "xbm-triplet":  # semi-hard triplets mined against a memory of the last 2,048 embeddings too
        memory = losses.CrossBatchMemory(losses.TripletMarginLoss(margin=0.2), EMBEDDING, memory_size=2048,
                                         miner=miners.TripletMarginMiner(0.2, "semihard"))
        return memory, None
    if name == "la-softmax":
        return LogitAdjustedSoftmax(class_counts, EMBEDDING), None
    return objective.make_loss(name, len(class_counts), EMBEDDING)


def make_loss(name: str, class_counts: np.ndarray, temperature: float = 0.1) -> tuple[list[tuple[nn.Module, Any]],
                                                                                   nn.Module | None]:
    """(class terms with their miners, lesion loss or None) for a screen entry named `name`: class terms joined by
    '+' (skinsim.train.objective's losses and SCREEN_TERMS), optionally ending in '+lesion'.

    "+lesion" appends a supervised-contrastive term over lesion ids: views and other photos of one lesion are
    positives, every other image of the batch a negative.
    """
    from pytorch_metric_learning import losses

    parts = name.split("+")
    lesion = parts[-1] == "lesion"
    names = parts[:-1] if lesion else parts
    unknown = [n for n in names if n not in LOSSES and n not in SCREEN_TERMS]
    if not names or unknown:
        raise ValueError(f"unknown term(s) {unknown or [name]} in {name!r}; known: {', '.join(LOSSES + list(SCREEN_TERMS))}"
                         ", then optionally '+lesion'")
    return ([class_term(n, class_counts) for n in names],
            losses.SupConLoss(temperature=temperature) if lesion else None)


def batches(dx: np.ndarray, lesion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One P x K batch of image rows: K per diagnosis (classes drawn by count ** 0.5); each image's lesion mates
    are drawn with it where the lesion has some, so that the lesion term has positives."""
    classes, counts = np.unique(dx, return_counts=True)
    weights = counts ** 0.5 / (counts ** 0.5).sum()
    chosen = rng.choice(len(classes), size=min(P, len(classes)), replace=False, p=weights)
    rows = []
    for c in chosen:
        members = np.flatnonzero(dx == classes[c])
        picks = rng.choice(members, size=K // 2, replace=len(members) < K // 2)
        for r in picks:
            mates = np.flatnonzero(lesion == lesion[r])
            rows += [r, rng.choice(mates[mates != r]) if len(mates) > 1 else r]
    return np.asarray(rows)


def train_head(feats: np.ndarray, dx: np.ndarray, lesion: np.ndarray, loss_name: str, seed: int,
               term: LesionTerm = LesionTerm()) -> nn.Module:
    """A 1280 -> 512 -> 128 head trained on `feats` (n, 2 views, 1280) with the named loss."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    _, dx_codes, counts = np.unique(dx, return_inverse=True, return_counts=True)
    _, lesion_codes = np.unique(lesion, return_inverse=True)
    head = nn.Sequential(nn.Linear(feats.shape[2], 512), nn.ReLU(), nn.Linear(512, EMBEDDING))
    class_terms, lesion_loss = make_loss(loss_name, counts, term.temperature)
    params = list(head.parameters()) + [p for loss, _ in class_terms for p in loss.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS)
    x_all = torch.from_numpy(feats)
    for _ in range(STEPS):
        rows = batches(dx, lesion, rng)
        view = torch.from_numpy(rng.integers(0, 2, size=len(rows)))
        emb = nn.functional.normalize(head(x_all[torch.from_numpy(rows), view]), dim=1)
        y = torch.from_numpy(dx_codes[rows])
        value = sum(loss(emb, y, miner(emb, y)) if miner is not None else loss(emb, y) for loss, miner in class_terms)
        if lesion_loss is not None:
            lesions = torch.from_numpy(lesion_codes[rows])
            # None: pytorch-metric-learning's own all-pairs default, which the published rows were made with
            pairs = lesion_pairs(lesions, y, term.negatives) if term.negatives != "all" else None
            value = value + LESION_WEIGHT * lesion_loss(emb, lesions, pairs)
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
    return head.eval()


def embed(head: nn.Module | None, feats: np.ndarray) -> np.ndarray:
    """Unit embeddings averaged over the two views (the raw features when there is no head)."""
    with torch.no_grad():
        x = torch.from_numpy(feats)
        out = x if head is None else head(x)
        out = nn.functional.normalize(out, dim=2).mean(1)
    return nn.functional.normalize(out, dim=1).numpy()


def score(table: pd.DataFrame, vectors: np.ndarray) -> dict[str, float]:
    """Dev-fold numbers: dev queries ("val") against the other dev half ("test"), same-lesion over train + dev."""
    report = retrieval_report(table, vectors, "val", ("test",))
    same = same_lesion_report(table, vectors, ("val", "test"))
    return {"P@1": report["overall"]["p_at_1"], "macro P@1": report["overall"]["macro_p_at_1"],
            "mel P@1": report["per_class"].get("mel", {}).get("p_at_1", float("nan")),
            "mel MAP@R": report["per_class"].get("mel", {}).get("map_at_r", float("nan")),
            "same-lesion R@1": same.get("r_at_1", float("nan"))}


def screen(data_dir: Path, names: list[str], seeds: list[int], split_seed: int = 42,
           term: LesionTerm = LesionTerm(), progress: bool = False) -> pd.DataFrame:
    """One row per loss: dev-fold means over `seeds` (and their spread), seconds per head."""
    from skinsim.data import load_dataset
    from skinsim.data.merges import with_own_merges
    from skinsim.data.splits import make_split

    table = with_own_merges(load_dataset(data_dir, check_images=False), data_dir)  # the default training's lesions
    table = table.assign(split=make_split(table, "lesion", split_seed))
    feats = features(data_dir, table)
    keep = dev_fold(table) != "held"
    view = table[keep].reset_index(drop=True).assign(split=dev_fold(table)[keep])
    feats = feats[keep]
    train = view["split"].to_numpy() == "train"
    rows = [{"loss": "frozen features (no head)", **score(view, embed(None, feats)), "seeds": 1, "s/head": 0.0}]
    for name in names:
        runs = []
        for seed in seeds:
            tick = time.perf_counter()
            head = train_head(feats[train], view["dx"].to_numpy()[train], view["lesion_id"].to_numpy()[train],
                              name, seed, term)
            runs.append({**score(view, embed(head, feats)), "s/head": time.perf_counter() - tick})
        frame = pd.DataFrame(runs)
        row = {"loss": name + (term.label() if "+lesion" in name else ""), **frame.mean().to_dict(),
               "seeds": len(seeds)}
        row["P@1 range"] = float(frame["P@1"].max() - frame["P@1"].min())
        rows.append(row)
        if progress:  # a long screen shows each row as it is done, not only the table at the end
            from skinsim.bench.retrieval import format_table

            print(format_table([row]), flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.screen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="HAM10000 folder (default: $SKINSIM_DATA, else data/ham10000)")
    parser.add_argument("--losses", default=",".join(LOSSES + [n + "+lesion" for n in LOSSES]),
                        help="comma-separated losses, each one or more class terms joined by '+' (" +
                             ", ".join(LOSSES + list(SCREEN_TERMS)) + "); a last '+lesion' adds a lesion-level term "
                             "(default: each of skinsim's losses, alone and with '+lesion')")
    parser.add_argument("--seeds", default="0,1,2", help="head seeds to average (default 0,1,2)")
    parser.add_argument("--lesion-negatives", default="all", choices=LESION_NEGATIVES,
                        help="the '+lesion' term's negatives: images of all other lesions, or only those of other "
                             "classes, or only those of the same class (default all)")
    parser.add_argument("--lesion-temperature", type=float, default=0.1,
                        help="temperature of the '+lesion' term (default 0.1)")
    args = parser.parse_args(argv)
    from skinsim.bench.retrieval import format_table
    from skinsim.data import resolve_data_dir

    names = [n.strip() for n in args.losses.split(",") if n.strip()]
    try:
        for name in names:
            make_loss(name, np.array([1, 1]))  # an unknown name fails here, before any feature is computed
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as err:
        parser.error(str(err))
    if not names or not seeds:
        parser.error("name at least one loss and one seed")
    if args.lesion_temperature <= 0:
        parser.error(f"--lesion-temperature must be above 0, not {args.lesion_temperature}")
    term = LesionTerm(args.lesion_negatives, args.lesion_temperature)
    result = screen(resolve_data_dir(args.data_dir), names, seeds, term=term, progress=True)
    print(format_table(result.to_dict("records")))
    return 0

