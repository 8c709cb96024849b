"""The HAM10000 metadata table: where the data folder is, reading it, and checking it before training."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from skinsim.data.images import index_images, unreadable_images
from skinsim.runs import REPO_ROOT

DIAGNOSES = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}
REQUIRED_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
METADATA_FILE = "HAM10000_metadata.csv"
GET_DATA_HINT = ("Point skinsim at a HAM10000 folder with --data-dir or SKINSIM_DATA, "
                 "or fetch it with `python -m skinsim.data download`.")


class DataError(Exception):
    """A problem with the dataset that the user must fix; its message says what and where."""


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data folder: the argument, else `SKINSIM_DATA`, else `data/ham10000` in the repository."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("SKINSIM_DATA"):
        return Path(os.environ["SKINSIM_DATA"]).expanduser()
    return REPO_ROOT / "data" / "ham10000"


def _some(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return f"{shown}{', ...' if len(ids) > limit else ''} ({len(ids)} in all)"


def find_metadata(data_dir: Path) -> Path:
    """The metadata CSV at the top of the folder, or one level below it."""
    candidates = [data_dir / METADATA_FILE, *sorted(data_dir.glob(f"*/{METADATA_FILE}"))]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"{data_dir / METADATA_FILE} not found. {GET_DATA_HINT}")


def read_metadata(csv_path: Path) -> pd.DataFrame:
    """Read and check the metadata CSV: columns, diagnosis codes and duplicate ids."""
    try:
        table = pd.read_csv(csv_path, dtype={"lesion_id": str, "image_id": str, "dx": str})
    except Exception as exc:  # pandas raises many types for a broken CSV
        raise DataError(f"{csv_path}: cannot be read as CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{csv_path}: missing required column(s) {', '.join(missing)}; "
                        f"expected {', '.join(REQUIRED_COLUMNS)}")
    empty = table.loc[table["image_id"].isna() | table["lesion_id"].isna() | table["dx"].isna(), "image_id"]
    if len(empty):
        rows = [str(i + 2) for i in empty.index]  # +2: 1-based and the header line
        raise DataError(f"{csv_path}: empty image_id, lesion_id or dx on line(s) {_some(rows)}")
    unknown = table.loc[~table["dx"].isin(list(DIAGNOSES)), ["image_id", "dx"]]
    if len(unknown):
        codes = sorted(set(unknown["dx"]))
        raise DataError(f"{csv_path}: unknown diagnosis code(s) {', '.join(codes)} for image(s) "
                        f"{_some(list(unknown['image_id']))}; known codes: {', '.join(DIAGNOSES)}")
    dupes = table.loc[table["image_id"].duplicated(), "image_id"]
    if len(dupes):
        raise DataError(f"{csv_path}: duplicate image_id(s) {_some(sorted(set(dupes)))}")
    table["age"] = pd.to_numeric(table["age"], errors="coerce")
    for col in ("dx_type", "sex", "localization"):
        table[col] = table[col].fillna("unknown").astype(str)
    return table[REQUIRED_COLUMNS].reset_index(drop=True)


def load_dataset(data_dir: str | Path | None = None, check_images: bool = True) -> pd.DataFrame:
    """The checked metadata table of a HAM10000 folder with a `path` column (relative to the folder)."""
    root = resolve_data_dir(data_dir)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist. {GET_DATA_HINT}")
    csv_path = find_metadata(root)
    table = read_metadata(csv_path)
    found = index_images(root)
    missing = [i for i in table["image_id"] if i not in found]
    if missing:
        raise DataError(f"{csv_path}: {len(missing)} metadata row(s) have no image file under {root}: "
                        f"{_some(missing)}")
    table["path"] = [found[i].relative_to(root).as_posix() for i in table["image_id"]]
    if check_images:
        bad = unreadable_images(root, list(table["path"]))
        if bad:
            ids = [Path(p).stem for p in bad]
            raise DataError(f"unreadable image file(s) under {root}: {_some(ids)}; first: {root / bad[0]}")
    return table
