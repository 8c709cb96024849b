"""The one internal table every dataset reader produces, and the checks every reader's rows go through.

Columns: image_id, lesion_id (the group the split keeps together: a lesion, or a patient), dx (the label),
dx_type, age, sex, localization, then whatever metadata the dataset has; `path` is added when images are found.
"""
from __future__ import annotations

import pandas as pd

STANDARD_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
# filled when a dataset lacks them, so the run files, audit and dashboard keep one schema
UNKNOWN = "unknown"


class DataError(Exception):
    """A problem with the dataset that the user must fix; its message says what and where."""


def some(ids: list, limit: int = 5) -> str:
    """A short listing of ids: the first few, then how many in all."""
    shown = ", ".join(map(str, ids[:limit]))
    return f"{shown}{', ...' if len(ids) > limit else ''} ({len(ids)} in all)"


def read_csv(path, columns: list[str]) -> pd.DataFrame:
    """A CSV read as text (ids stay ids), refused with one message when broken or missing `columns`."""
    try:
        frame = pd.read_csv(path, dtype=str)
    except Exception as exc:  # pandas raises many types for a broken CSV
        raise DataError(f"{path}: cannot be read as CSV ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing required column(s) {', '.join(missing)}; "
                        f"expected {', '.join(columns)}")
    return frame


def standard_table(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a reader's rows (no empty id, group or label; no duplicate id) and give them the standard columns.

    `frame` holds image_id, lesion_id and dx, maybe the other standard columns, `path`, and extra metadata;
    `source` names the file in messages. Row labels of `frame` are the CSV's data rows (0 = line 2).
    """
    empty = frame.loc[frame["image_id"].isna() | frame["lesion_id"].isna() | frame["dx"].isna(), "image_id"]
    if len(empty):
        rows = [str(i + 2) for i in empty.index]  # +2: 1-based and the header line
        raise DataError(f"{source}: empty image_id, group (lesion_id) or label (dx) on line(s) {some(rows)}")
    dupes = frame.loc[frame["image_id"].duplicated(), "image_id"]
    if len(dupes):
        raise DataError(f"{source}: duplicate image_id(s) {some(sorted(set(dupes)))}")
    table = frame.copy()
    # always float: a column of whole years and a column with gaps get one parquet type
    table["age"] = pd.to_numeric(table["age"], errors="coerce").astype(float) if "age" in table else float("nan")
    for col in ("dx_type", "sex", "localization"):
        table[col] = table[col].fillna(UNKNOWN).astype(str) if col in table else UNKNOWN
    for col in ("image_id", "lesion_id", "dx"):
        table[col] = table[col].astype(str)
    extra = [c for c in table.columns if c not in STANDARD_COLUMNS]
    return table[STANDARD_COLUMNS + extra].reset_index(drop=True)
