"""Any dataset described by one CSV: an image column, a label column, optionally a group column, other metadata.

The image column holds a path relative to the data folder (anything ending in .jpg, .jpeg or .png) or an id
found as a file stem anywhere below it. Without a group column each image is its own group, so the grouped
split can keep nothing together: give one whenever a lesion or patient has several images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from skinsim.data.images import IMAGE_SUFFIXES
from skinsim.data.table import DataError, read_csv


@dataclass(frozen=True)
class CsvSpec:
    """Where the CSV is and which of its columns are the image, the label and the group."""

    csv: Path
    image_col: str = "image"
    label_col: str = "label"
    group_col: str | None = None


def is_path(value: str) -> bool:
    """Whether an image column value names a file (by its suffix) rather than an id."""
    return Path(value).suffix.lower() in IMAGE_SUFFIXES


def read_generic(spec: CsvSpec) -> pd.DataFrame:
    """The reader rows of a generic CSV: image_id = the image column's value, `path` where it is a file name."""
    if not spec.csv.is_file():
        raise DataError(f"{spec.csv} not found (the dataset CSV given with --csv)")
    named = [spec.image_col, spec.label_col] + ([spec.group_col] if spec.group_col else [])
    frame = read_csv(spec.csv, named)
    if len(set(named)) < len(named):
        raise DataError(f"the image, label and group columns must differ (got {', '.join(named)})")
    # a CSV column that happens to use an internal name keeps its values under csv_NAME
    taken = {"image_id", "lesion_id", "dx", "path"} - set(named)
    frame = frame.rename(columns={c: f"csv_{c}" for c in frame.columns if c in taken})
    out = pd.DataFrame({"image_id": frame[spec.image_col], "dx": frame[spec.label_col]})
    out["lesion_id"] = frame[spec.group_col] if spec.group_col else out["image_id"]
    values = out["image_id"].fillna("")
    out["path"] = values.where(values.map(is_path)).map(lambda p: p if pd.isna(p) else Path(p).as_posix())
    # the rest is metadata; dx_type, age, sex and localization, when present, fill the standard columns
    return pd.concat([out, frame[[c for c in frame.columns if c not in named]]], axis=1)
