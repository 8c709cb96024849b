"""Image archives embedded with a run's model (`python -m skinsim.index`): their folder layout and how to read them.

    from skinsim.search.archive import list_archives, open_archive
    list_archives("data/runs/demo")                      # ['ham10000', ...]: complete archives of the run
    archive = open_archive("data/runs/demo", "ham10000")  # table, vectors, FAISS index (digest-checked)
    archive.neighbours(vectors, k=10)                     # per query: rank, id, path, distance, metadata...

An archive lives in `RUN/archives/NAME/`: `manifest.json`, `plan.parquet` (every source file, its sha256 and
shard), `shards/shard-NNNNN.parquet` (the embedded images), `index.faiss` (+ `.json` sidecar),
`unreadable.csv` and `duplicates.csv`. Only numpy, pandas and pyarrow are imported here (faiss when an index is
opened), so the dashboard reads archives without torch.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinsim.runs.folder import Run, read_vectors, resolve_run
from skinsim.search import vector_index

ARCHIVE_VERSION = 1
ARCHIVES = "archives"
MANIFEST = "manifest.json"
PLAN = "plan.parquet"
SHARDS = "shards"
INDEX = "index.faiss"
UNREADABLE = "unreadable.csv"
DUPLICATES = "duplicates.csv"
# columns skinsim writes for every embedded file; a source's metadata columns come after them
FILE_COLUMNS = ["id", "path", "sha256", "file_size", "width", "height"]
RESERVED = set(FILE_COLUMNS) | {"embedding", "shard", "copy_of", "error", "rank", "distance"}
NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ArchiveError(ValueError):
    """An archive that cannot be written or read as asked; the message says why."""


def check_name(name: str) -> str:
    """`name` when it can name an archive folder on every system, else ArchiveError."""
    if not NAME_RULE.match(str(name)) or str(name).endswith("."):
        raise ArchiveError(f"{name!r} cannot name an archive folder: use 1-100 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit and not ending with '.'")
    return str(name)


def run_path(run: str | Path | Run) -> Path:
    """A run folder from a Run, a path or a run name (see `skinsim.runs.folder.resolve_run`)."""
    return run.path if isinstance(run, Run) else resolve_run(run)


def archive_dir(run: str | Path | Run, name: str) -> Path:
    """Where archive `name` of a run lives."""
    return run_path(run) / ARCHIVES / check_name(name)


def shard_file(j: int) -> str:
    """The path of shard `j` inside an archive folder."""
    return f"{SHARDS}/shard-{j:05d}.parquet"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checkpoint_digest(run: Path) -> str | None:
    """sha256 of the run's checkpoint.safetensors, or None when it has none."""
    path = Path(run) / "checkpoint.safetensors"
    return file_sha256(path) if path.is_file() else None


def read_manifest(folder: Path) -> dict[str, Any]:
    """An archive folder's manifest.json (ArchiveError when it is missing or not JSON)."""
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ArchiveError(f"{folder} is not a readable archive ({MANIFEST}: {err})") from None


def list_archives(run: str | Path | Run) -> list[str]:
    """Names of the run's complete archives, sorted."""
    root = run_path(run) / ARCHIVES
    if not root.is_dir():
        return []
    names = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and NAME_RULE.match(folder.name) and (folder / MANIFEST).is_file():
            try:
                if read_manifest(folder).get("complete"):
                    names.append(folder.name)
            except ArchiveError:
                continue  # a damaged archive is not offered; opening it by name says what is wrong
    return names


def read_shards(folder: Path, manifest: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """Every finished shard of an archive, in shard order: (table, float32 vectors)."""
    tables, vectors = [], []
    for entry in sorted(manifest.get("shards", []), key=lambda e: e["index"]):
        table, vecs = read_vectors(Path(folder) / entry["file"])
        if len(table) != entry["rows"]:
            raise ArchiveError(f"{folder / entry['file']} holds {len(table)} rows but {MANIFEST} says "
                               f"{entry['rows']}")
        tables.append(table)
        vectors.append(vecs)
    dim = int((manifest.get("model") or {}).get("em") or 0)
    if not tables:
        return pd.DataFrame(columns=FILE_COLUMNS), np.zeros((0, dim), np.float32)
    return pd.concat(tables, ignore_index=True), np.concatenate(vectors).astype(np.float32, copy=False)


@dataclass
class Archive:
    """A complete archive: its manifest, one row per embedded image, the vectors and their FAISS index."""

    path: Path
    manifest: dict[str, Any]
    table: pd.DataFrame
    vectors: np.ndarray
    index: Any

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def root(self) -> Path:
        """The folder that relative `path`s of the table are relative to."""
        return Path(self.manifest["source"]["root"])

    @property
    def metadata_columns(self) -> list[str]:
        """The source's own columns (from a CSV), stored beside each vector."""
        return list(self.manifest.get("metadata_columns", []))

    def image_path(self, path: str) -> Path:
        """The file of a stored `path` (absolute paths stay as they are)."""
        return self.root / path

    def neighbours(self, vectors: np.ndarray, k: int = 10) -> list[pd.DataFrame]:
        """For each vector, its k nearest archive images: rank, id, path, distance, metadata columns."""
        idx, dist = vector_index.search(self.index, np.atleast_2d(vectors), k)
        shown = ["id", "path", *self.metadata_columns]
        out = []
        for rows, d in zip(idx, dist):
            keep = rows >= 0
            found = self.table.iloc[rows[keep]][shown].reset_index(drop=True)
            found.insert(0, "rank", np.arange(1, len(found) + 1))
            found.insert(3, "distance", d[keep].astype(float))
            out.append(found)
        return out


def open_archive(run: str | Path | Run, name: str) -> Archive:
    """A complete archive of a run, its index checked against its vectors (vector_index.IndexMismatch if not)."""
    folder = archive_dir(run, name)
    if not (folder / MANIFEST).is_file():
        have = ", ".join(list_archives(run)) or "none"
        raise ArchiveError(f"run {run_path(run).name} has no archive {name!r} (complete archives: {have})")
    manifest = read_manifest(folder)
    if manifest.get("version") != ARCHIVE_VERSION:
        raise ArchiveError(f"{folder} is archive version {manifest.get('version')}, this skinsim reads "
                           f"{ARCHIVE_VERSION}; index it again")
    if not manifest.get("complete"):
        raise ArchiveError(f"archive {name!r} is unfinished; run `python -m skinsim.index` again to complete it")
    made_with = (manifest.get("run") or {}).get("checkpoint_sha256")
    now = checkpoint_digest(run_path(run))
    if now is not None and made_with != now:
        # vectors of another model are not comparable with what this run's model embeds
        raise ArchiveError(f"archive {name!r} was embedded with another checkpoint of run {run_path(run).name}; "
                           "index it again")
    table, vectors = read_shards(folder, manifest)
    index, _ = vector_index.load(folder / INDEX, vectors)
    return Archive(path=folder, manifest=manifest, table=table, vectors=vectors, index=index)
