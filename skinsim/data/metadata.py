"""Reading a dataset folder into the internal table: which layout it is, its rows, and its image files."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skinsim.data.generic import CsvSpec, read_generic
from skinsim.data.images import index_images, unreadable_images
from skinsim.data.layouts import DIAGNOSES, LAYOUTS, detect, find_label_file
from skinsim.data.table import DataError, some, standard_table
from skinsim.runs.folder import REPO_ROOT

__all__ = ["DATASETS", "DIAGNOSES", "CsvSpec", "DataError", "Dataset", "load_dataset", "read_dataset",
           "resolve_data_dir"]

DATASETS = ("auto", *LAYOUTS, "csv")
GET_DATA_HINT = ("Point skinsim at a dataset folder with --data-dir or SKINSIM_DATA, "
                 "or fetch HAM10000 with `python -m skinsim.data download`.")


@dataclass
class Dataset:
    """A read dataset: its folder, layout name, what its groups are, the table, and the images dropped."""

    root: Path
    layout: str
    groups: str
    table: pd.DataFrame
    dropped: list[str] = field(default_factory=list)  # image ids left out for a missing or unreadable file


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data folder: the argument, else `SKINSIM_DATA`, else `data/ham10000` in the repository."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("SKINSIM_DATA"):
        return Path(os.environ["SKINSIM_DATA"]).expanduser()
    return REPO_ROOT / "data" / "ham10000"


def read_rows(root: Path, dataset: str, csv: CsvSpec | None) -> tuple[str, str, pd.DataFrame, str, str]:
    """(layout name, group noun, reader rows, their source file, image name pattern) of a folder."""
    if dataset == "csv" or (dataset == "auto" and csv is not None):
        if csv is None:
            raise DataError("--dataset csv needs --csv FILE: the CSV that lists the images and their labels")
        return "csv", "groups", read_generic(csv), str(csv.csv), "*"
    if dataset == "auto":
        layout = detect(root)
    elif dataset in LAYOUTS:
        layout = LAYOUTS[dataset]
    else:
        raise DataError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    path = find_label_file(root, layout)
    if path is None:
        raise DataError(f"{root / layout.label_files[0]} not found, so {root} is not a {layout.title} folder. "
                        f"{GET_DATA_HINT}")
    return layout.name, layout.groups, layout.read(path), str(path), layout.image_pattern


def locate_images(root: Path, table: pd.DataFrame, pattern: str) -> list[str]:
    """Fill `path` (relative to `root`) for every row whose file exists; returns the image ids without one."""
    given = list(table["path"]) if "path" in table else [None] * len(table)
    named = [isinstance(p, str) for p in given]  # rows naming no file are looked up by id (the file stem)
    found = index_images(root, pattern) if not all(named) else {}
    paths = []
    for image_id, path, has_name in zip(table["image_id"], given, named):
        if has_name:
            paths.append(path if (root / path).is_file() else None)
        else:
            paths.append(found[image_id].relative_to(root).as_posix() if image_id in found else None)
    table["path"] = paths
    return [i for i, p in zip(table["image_id"], paths) if p is None]


def image_problems(root: Path, table: pd.DataFrame, source: str, pattern: str,
                   check_images: bool) -> tuple[list[str], list[str]]:
    """(ids with no image file, ids whose file cannot be decoded); fills `path` on the way."""
    missing = locate_images(root, table, pattern)
    present = table["path"].notna()
    bad_paths = set(unreadable_images(root, list(table.loc[present, "path"]))) if check_images else set()
    unreadable = list(table.loc[present & table["path"].isin(bad_paths), "image_id"])
    return missing, unreadable


def describe_problems(root: Path, source: str, table: pd.DataFrame, missing: list[str],
                      unreadable: list[str]) -> str:
    """One message listing the rows without an image and the images that cannot be read."""
    parts = []
    if missing:
        parts.append(f"{source}: {len(missing)} metadata row(s) have no image file under {root}: {some(missing)}")
    if unreadable:
        first = table.loc[table["image_id"] == unreadable[0], "path"].iloc[0]
        parts.append(f"unreadable image file(s) under {root}: {some(unreadable)}; first: {root / first}")
    return "; ".join(parts) + ". --skip-missing leaves them out"


def read_dataset(data_dir: str | Path | None = None, dataset: str = "auto", csv: CsvSpec | None = None,
                 check_images: bool = True, skip_missing: bool = False) -> Dataset:
    """Read any supported dataset folder into the internal table with a `path` column (relative to the folder).

    `dataset` is a layout name, "csv" (with `csv`), or "auto" (detected from the files). Rows whose image is
    missing or unreadable are refused, or with `skip_missing` dropped and listed in `Dataset.dropped`.
    """
    root = resolve_data_dir(data_dir) if data_dir or csv is None else Path(csv.csv).parent
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist. {GET_DATA_HINT}")
    layout, groups, rows, source, pattern = read_rows(root, dataset, csv)
    table = standard_table(rows, source)
    missing, unreadable = image_problems(root, table, source, pattern, check_images)
    if (missing or unreadable) and not skip_missing:
        raise DataError(describe_problems(root, source, table, missing, unreadable))
    dropped = missing + unreadable
    table = table[~table["image_id"].isin(dropped)].reset_index(drop=True)
    if table.empty:
        raise DataError(f"{source}: no image left to use under {root}")
    return Dataset(root, layout, groups, table, dropped)


def load_dataset(data_dir: str | Path | None = None, check_images: bool = True, dataset: str = "auto",
                 csv: CsvSpec | None = None, skip_missing: bool = False) -> pd.DataFrame:
    """The checked table of a dataset folder (see `read_dataset`)."""
    return read_dataset(data_dir, dataset, csv, check_images, skip_missing).table
