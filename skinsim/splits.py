"""Train / validation / test splits: grouped by lesion (default) or by image (the original project)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

SPLITS = ("train", "val", "test")


def split_by_lesion(table: pd.DataFrame, seed: int) -> np.ndarray:
    """80/10/10 split in which all images of a lesion fall on one side, stratified by diagnosis.

    Ten stratified group folds are drawn from `seed`; fold 0 is the test split, fold 1 validation.
    """
    folds = StratifiedGroupKFold(n_splits=10, shuffle=True, random_state=seed)
    labels = np.full(len(table), "train", dtype=object)
    parts = folds.split(np.zeros(len(table)), table["dx"].to_numpy(), table["lesion_id"].to_numpy())
    for fold, (_, held_out) in enumerate(parts):
        if fold == 0:
            labels[held_out] = "test"
        elif fold == 1:
            labels[held_out] = "val"
            break
    return labels


def split_by_image(table: pd.DataFrame, seed: int) -> np.ndarray:
    """The original project's random 80/10/10 split of images, blind to lesions."""
    order = np.random.default_rng(seed).permutation(len(table))
    n_train, n_val = int(0.8 * len(table)), int(0.1 * len(table))
    labels = np.full(len(table), "test", dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train:n_train + n_val]] = "val"
    return labels


def make_split(table: pd.DataFrame, protocol: str, seed: int) -> np.ndarray:
    """Split labels ('train' / 'val' / 'test') per row for protocol 'lesion' or 'image'."""
    if protocol == "lesion":
        return split_by_lesion(table, seed)
    if protocol == "image":
        return split_by_image(table, seed)
    raise ValueError(f"unknown split protocol {protocol!r}; choose lesion or image")
