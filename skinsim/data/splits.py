"""Train / validation / test splits: grouped by lesion (default) or by image (the original project).

The group is the table's `lesion_id` column: a lesion, or a patient for datasets grouped by patient.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

SPLITS = ("train", "val", "test")
N_FOLDS = 10          # the lesion split draws 10 group folds: test, val, and 8 for train
MIN_GROUPS = len(SPLITS)  # a label needs a group for each split to be able to appear in all three


def split_problems(table: pd.DataFrame) -> list[str]:
    """Why the lesion split cannot be drawn from `table` (too few groups in all, or of a label); empty if it can."""
    problems = []
    if table["lesion_id"].nunique() < N_FOLDS:
        problems.append(f"the grouped split needs at least {N_FOLDS} groups; the data has "
                        f"{table['lesion_id'].nunique()}")
    if table["dx"].value_counts().max() < N_FOLDS:  # scikit-learn's stratified folds refuse it
        problems.append(f"the grouped split needs a label with at least {N_FOLDS} images; the largest has "
                        f"{table['dx'].value_counts().max()}")
    groups = table.groupby("dx")["lesion_id"].nunique().sort_index()
    for label, n in groups[groups < MIN_GROUPS].items():
        problems.append(f"label {label!r} has {n} group(s); the grouped split needs at least {MIN_GROUPS} "
                        "(drop or merge it, or use --split image)")
    return problems


def split_by_lesion(table: pd.DataFrame, seed: int) -> np.ndarray:
    """80/10/10 split in which all images of a lesion fall on one side, stratified by label (dx).

    Ten stratified group folds are drawn from `seed`; fold 0 is the test split, fold 1 validation.
    """
    problems = split_problems(table)
    if problems:
        raise ValueError("; ".join(problems))
    folds = StratifiedGroupKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
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


DEV_SHARE = 0.15


def dev_fold(table: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Split labels for choosing a recipe without touching validation or test: two stratified lesion-grouped
    folds of about DEV_SHARE of the training split each become "val" and "test" (one queries the other, as the
    real ones do), the rest of the training split stays "train", and the real validation and test images become
    "held", which nothing trains or scores on."""
    out = np.where(table["split"].to_numpy() == "train", "train", "held").astype(object)
    train = np.flatnonzero(out == "train")
    folds = StratifiedGroupKFold(n_splits=round(1 / DEV_SHARE), shuffle=True, random_state=seed)
    sub = table.iloc[train]
    parts = folds.split(np.zeros(len(sub)), sub["dx"].to_numpy(), sub["lesion_id"].to_numpy())
    for fold, (_, held_out) in enumerate(parts):
        if fold > 1:
            break
        out[train[held_out]] = "val" if fold == 0 else "test"
    return out
