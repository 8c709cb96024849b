"""What training reads: the checked table and its split, every image decoded once, and the model inputs made
from them (cached frozen-trunk activations, or normalised images)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from skinsim.compute.compiled import trunk_pass, use_compile
from skinsim.compute.distributed import World
from skinsim.data import CsvSpec, read_dataset
from skinsim.data.images import decode_all, parse_size
from skinsim.data.merges import merge_table, merges_file
from skinsim.data.splits import dev_fold, make_split
from skinsim.model.embed import embed_batches
from skinsim.model.embedder import Embedder
from skinsim.model.transforms import augment, normalise, random_flips
from skinsim.runs import folder as runs
from skinsim.runs.config import TrainConfig
from skinsim.train.trunk_cache import trunk_activations


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
    merges: dict | None = None  # the reviewed merges applied: path, sha256, lesions before and after


def load_data(cfg: TrainConfig, work: Path, resume: bool, world: World = World()) -> Data:
    """Checked metadata, the split (the saved one when resuming), and the images at the training size."""
    csv = CsvSpec(Path(cfg.csv).expanduser(), cfg.image_col, cfg.label_col, cfg.group_col) if cfg.csv else None
    dataset = read_dataset(cfg.data_dir, cfg.dataset, csv, skip_missing=cfg.skip_missing)
    data_dir, table = dataset.root, dataset.table
    cfg.dataset = dataset.layout  # the run records what it read, so a resume or a reader never re-detects
    merges = apply_merges(cfg, table, data_dir)
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
    rows = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    data = Data(data_dir, table, images, *rows, classes, labels, merges)
    log = print if world.is_main else (lambda *a, **k: None)
    if merges:
        log(f"data: {merges['lesions_before']} lesion ids are {merges['lesions_after']} lesions after the reviewed "
            f"merges in {merges['path']}" + (f" ({merges['rows_left_out']} of its rows name images this copy lacks "
                                             "and were left out)" if merges["rows_left_out"] else ""))
    if dataset.dropped:
        log(f"data: left out {len(dataset.dropped)} image(s) missing or unreadable (--skip-missing)")
    log(f"data: {len(table)} images ({dataset.layout}) from {data_dir}; split '{cfg.split}' (seed {cfg.split_rng}): "
          f"{len(data.train_rows)} train / {len(data.val_rows)} val / {len(data.test_rows)} test; "
          f"size {size[0]}x{size[1]}")
    return data


def apply_merges(cfg: TrainConfig, table: pd.DataFrame, data_dir: Path) -> dict | None:
    """Merge the lesions of the reviewed merges the run uses: the file --lesion-merges names, else the dataset's own
    (`skinsim.data.merges.default_file`), none with `--lesion-merges none`; what was applied, for config.json."""
    path = merges_file(cfg.lesion_merges, data_dir)
    if path is None:
        return None
    named = cfg.lesion_merges is not None
    # a file found by default also serves subsets of its dataset; a named one must fit the dataset whole
    return {**merge_table(table, path, whole=named), "named": named}


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
