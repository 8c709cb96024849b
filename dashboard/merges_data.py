"""The lesion merges file the Data quality page reviews into (skinsim.data.merges): where it goes by default, what
it holds for the run's images, and saving one verdict. It belongs to the dataset, not the run, and is the one file
besides a saved selection that the dashboard writes, only when the user saves a verdict."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dashboard.run_data import run_info
from skinsim.data.merges import (
    COLUMNS,
    FILE_NAME,
    VERDICTS,
    MergeError,
    applied_path,
    applied_record,
    default_file,
    merged_lesion_ids,
    read_merges,
    repository_file,
    save_verdict,
)
from skinsim.runs.folder import REPO_ROOT

LABELS = dict(zip(VERDICTS, ("same lesion", "different lesions", "unsure")))  # verdict -> the words shown


def dataset_folder(run: Path) -> Path | None:
    """The folder the run was trained on (`meta.data_dir` in its config.json; relative paths from the repository
    root), or None when the config names none."""
    config = run_info(run).config
    configured = (config.get("meta") or {}).get("data_dir") or config.get("data_dir")
    if not configured:
        return None
    path = Path(configured).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def writable(folder: Path) -> bool:
    """True for an existing folder we may write into and whose permissions do not say read-only (root may write
    anywhere, yet a folder marked read-only, like a shared dataset copy, is left alone)."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return (stat.S_ISDIR(mode) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            and os.access(folder, os.W_OK))


def default_path(run: Path) -> Path:
    """The file training reads for this run's dataset: the one the run applied (config.json's
    meta.lesion_merges), else the dataset's own (`skinsim.data.merges.default_file`); with neither, where a new one
    goes: `lesion_merges.csv` in the dataset folder when that folder is writable, else
    `data/<dataset folder name>_lesion_merges.csv` in the repository (`<run name>` when the run names no folder)."""
    applied = applied_record(run_info(run).config).get("path")
    if applied and applied_path(applied).is_file():
        return applied_path(applied)
    folder = dataset_folder(run)
    if folder is None:
        return REPO_ROOT / "data" / f"{Path(run).name}_{FILE_NAME}"
    found = default_file(folder)
    if found is not None:
        return found
    return folder / FILE_NAME if writable(folder) else repository_file(folder)


@dataclass(frozen=True)
class Merges:
    """The merges file's verdicts, and the one message to show when it cannot be used as it is."""

    path: Path
    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    error: str | None = None  # MergeError's text: an unreadable file, bad rows, or entries stale for this run
    exists: bool = False
    stale: bool = False  # the rows were read, but some do not fit this run's images (the error says which)

    @property
    def unusable(self) -> bool:
        """True when the file cannot be read: saving into it would fail with the same message."""
        return self.error is not None and not self.stale

    def verdict_of(self, image_a: str, image_b: str) -> tuple[str, str] | None:
        """(verdict, note) of the pair in either order, or None when it was not reviewed."""
        pair = {image_a, image_b}
        for a, b, verdict, note in self.table[COLUMNS].itertuples(index=False):
            if {a, b} == pair:
                return verdict, note
        return None

    def counts(self) -> dict[str, int]:
        """Reviewed pairs per verdict, every verdict present."""
        return {v: int((self.table["verdict"] == v).sum()) for v in VERDICTS}


def read(path: Path, meta: pd.DataFrame) -> Merges:
    """The file at `path` checked against the run's images (`meta`: image_id, lesion_id); never raises. A missing
    file is no error (the first verdict creates it); an unreadable one has no rows; one whose rows are fine but stale
    for this run (unknown image ids, a 'different' verdict inside one lesion) keeps its rows, with the message."""
    path = Path(path)
    if not path.exists():
        return Merges(path)
    try:
        table = read_merges(path)
    except MergeError as err:
        return Merges(path, error=str(err), exists=True)
    try:
        merged_lesion_ids(meta[["image_id", "lesion_id"]].astype(str), table)
    except MergeError as err:
        return Merges(path, table, str(err), exists=True, stale=True)
    return Merges(path, table, exists=True)


def save(path: Path, image_a: str, image_b: str, verdict: str, note: str = "") -> str | None:
    """Record one verdict (replacing the pair's earlier one); None when saved, else the one message why not (the
    file is left as it was)."""
    if not str(path).strip():
        return "choose where the lesion merges file goes: the path is empty"
    if Path(path).is_dir():
        return f"{path} is a folder; give a file name, such as {Path(path) / FILE_NAME}"
    try:
        save_verdict(path, image_a, image_b, verdict, note)
    except MergeError as err:
        return str(err)
    return None
