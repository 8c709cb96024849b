"""Named selections of a run's images, kept as CSV files in the run's `selections/` folder.

A selection is a table with one row per image: image_id, lesion_id, dx, split, then whatever scores it came
with (a distance, a label quality, an outlier score...). The dashboard saves box/lasso selections, data-quality
lists and neighbour sets here and reopens them as a filter of the map; the files are plain CSV, so they open in a
spreadsheet too. Saving one writes only under `selections/`: a run's embeddings and metrics are never touched.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from skinsim.runs.folder import write_atomic
from skinsim.runs.spreadsheet import to_csv_bytes

FOLDER = "selections"
COLUMNS = ["image_id", "lesion_id", "dx", "split"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,79}$")


class SelectionError(ValueError):
    """A selection that cannot be saved or read; the message says why."""


def selection_table(meta: pd.DataFrame, image_ids: list[str], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of `meta` for `image_ids` (in that order) with the standard columns, then `scores` columns.

    `scores` is indexed by image_id; ids missing from `meta` are dropped.
    """
    known = meta.drop_duplicates("image_id").set_index("image_id")
    ids = [i for i in dict.fromkeys(map(str, image_ids)) if i in known.index]
    table = known.loc[ids, [c for c in COLUMNS[1:] if c in known.columns]].reset_index()
    if scores is not None and len(scores.columns):
        extra = scores[[c for c in scores.columns if c not in COLUMNS]]
        table = table.join(extra, on="image_id")
    return table


def to_csv(table: pd.DataFrame) -> bytes:
    """A selection as UTF-8 CSV bytes (for a download button or a file), safe to open in a spreadsheet."""
    return to_csv_bytes(table)


def check_name(name: str) -> str:
    """The name trimmed, or SelectionError when it cannot be a file name on every system."""
    name = str(name).strip()
    if not NAME.match(name) or name.endswith("."):
        raise SelectionError(f"{name!r} cannot name a selection: use 1-80 letters, digits, spaces, '.', '_' or "
                             "'-', starting with a letter or digit")
    return name


def selection_path(run: str | Path, name: str) -> Path:
    """Where the selection `name` of a run folder is kept."""
    return Path(run) / FOLDER / f"{check_name(name)}.csv"


def save_selection(run: str | Path, name: str, table: pd.DataFrame, overwrite: bool = False) -> Path:
    """Write `table` as selection `name` of the run folder `run`; refuses to replace one unless `overwrite`."""
    path = selection_path(run, name)
    if not Path(run, "config.json").is_file():
        raise SelectionError(f"{run} is not a run folder: it has no config.json")
    if "image_id" not in table.columns or table.empty:
        raise SelectionError("a selection needs at least one image (an image_id column)")
    if path.exists() and not overwrite:
        raise SelectionError(f"a selection named {path.stem!r} already exists in run {Path(run).name}; choose "
                             "another name or replace it")
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, lambda p: p.write_bytes(to_csv(table)))
    return path


def list_selections(run: str | Path) -> list[str]:
    """Names of the run's saved selections, sorted."""
    folder = Path(run) / FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.csv") if NAME.match(p.stem))


def read_selection(data: bytes | str | Path, source: str = "selection") -> pd.DataFrame:
    """A selection table from CSV bytes or a file, or SelectionError saying why it is not one."""
    try:
        raw = io.BytesIO(data) if isinstance(data, bytes) else data
        table = pd.read_csv(raw, dtype={c: str for c in COLUMNS})
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise SelectionError(f"{source} is not a readable CSV file ({str(err).strip() or type(err).__name__})") \
            from None
    if "image_id" not in table.columns:
        raise SelectionError(f"{source} has no image_id column (it has: {', '.join(map(str, table.columns))})")
    return table


def load_selection(run: str | Path, name: str) -> pd.DataFrame:
    """The saved selection `name` of the run folder `run`."""
    path = selection_path(run, name)
    if not path.is_file():
        raise SelectionError(f"run {Path(run).name} has no selection named {name!r}")
    return read_selection(path, f"selection {name!r}")
