"""What an archive is made of: the images of a SOURCE (a folder tree or a CSV) and the plan of its shards.

`read_source` lists the images and their metadata in a fixed order; `plan_files` hashes every file once, marks
byte-identical copies and unreadable files, and deals the rest into shards of `shard_size`. `indexing` embeds
the plan; `same_listing` tells it when a source has changed under an unfinished archive.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from skinsim.data.images import IMAGE_SUFFIXES
from skinsim.search.archive import RESERVED, ArchiveError, file_sha256

# ---------------------------------------------------------------- the source


@dataclass(frozen=True)
class Source:
    """The images to embed: `files` (path + metadata columns, in archive order); paths are relative to `root`."""

    path: Path
    kind: str
    root: Path
    files: pd.DataFrame


def read_source(source: str | Path) -> Source:
    """List a folder of images or read a CSV with a path column (ArchiveError when neither works)."""
    given = Path(source).expanduser()
    if not given.exists():
        raise ArchiveError(f"SOURCE {source} does not exist")
    path = given.resolve()
    if path.is_dir():
        files = pd.DataFrame({"path": folder_images(path)})
        if files.empty:
            raise ArchiveError(f"SOURCE {source} holds no {'/'.join(IMAGE_SUFFIXES)} files (hidden ones skipped)")
        return Source(path=path, kind="folder", root=path, files=files)
    if path.suffix.lower() != ".csv":
        raise ArchiveError(f"SOURCE {source} is neither a folder of images nor a .csv file with a path column")
    files = csv_files(path)
    if files.empty:
        raise ArchiveError(f"SOURCE {source} lists no images")
    return Source(path=path, kind="csv", root=path.parent, files=files)


def folder_images(root: Path) -> list[str]:
    """Relative POSIX paths of the JPEG/PNG files below `root`, sorted, skipping hidden files and folders."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def csv_files(csv: Path) -> pd.DataFrame:
    """A CSV's rows: `path` first, then its other columns as metadata."""
    try:
        table = pd.read_csv(csv, dtype={"path": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ArchiveError(f"{csv} is not a readable CSV ({str(err).splitlines()[0]})") from None
    if "path" not in table.columns:
        raise ArchiveError(f"{csv} has no `path` column (it has: {', '.join(map(str, table.columns))})")
    clash = sorted(str(c) for c in table.columns if c != "path" and c in RESERVED)
    if clash:
        raise ArchiveError(f"{csv}: the columns {', '.join(clash)} are names the archive uses itself; rename them")
    paths = table["path"].str.strip()
    empty = np.flatnonzero((paths.isna() | (paths == "")).to_numpy())
    if len(empty):
        raise ArchiveError(f"{csv}: rows {', '.join(str(i + 2) for i in empty[:10])} have no path")
    table["path"] = paths
    return table[["path"] + [c for c in table.columns if c != "path"]].reset_index(drop=True)


def default_name(source: str | Path) -> str:
    """An archive name from SOURCE: its folder name or CSV stem, cut to what a folder name may hold."""
    path = Path(source).expanduser().resolve()
    stem = path.stem if path.suffix.lower() == ".csv" else path.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).lstrip("._-").rstrip(".")[:100] or "archive"


# ---------------------------------------------------------------- the plan: hashes, duplicates, shards


def _fingerprint(path: Path) -> tuple[str | None, int, str | None]:
    try:
        return file_sha256(path), path.stat().st_size, None
    except OSError as err:  # missing (a CSV row), a folder, no permission
        return None, -1, f"{type(err).__name__}: {err.strerror or err}"


def plan_files(source: Source, shard_size: int, workers: int, progress: bool = True) -> pd.DataFrame:
    """Every source file with its sha256 and size, and the shard that embeds it, the file it copies, or its error."""
    files = source.files
    with ThreadPoolExecutor(workers) as pool:
        found = list(tqdm(pool.map(_fingerprint, [source.root / p for p in files["path"]]), total=len(files),
                          desc="hashing", unit="file", disable=not progress))
    first: dict[str, str] = {}
    copy_of: list[str | None] = []
    for path, (sha, _, _) in zip(files["path"], found):
        copy_of.append(first.get(sha) if sha is not None else None)
        if sha is not None:
            first.setdefault(sha, path)
    plan = pd.DataFrame({"path": files["path"], "sha256": [f[0] for f in found],
                         "file_size": np.array([f[1] for f in found], dtype=np.int64), "copy_of": copy_of,
                         "error": [f[2] for f in found]})
    unique = (plan["sha256"].notna() & plan["copy_of"].isna()).to_numpy()
    shard = np.full(len(plan), -1, dtype=np.int64)
    shard[unique] = np.arange(int(unique.sum())) // shard_size
    plan.insert(3, "shard", shard)
    return pd.concat([plan, files.drop(columns="path")], axis=1)


def same_listing(plan: pd.DataFrame, source: Source) -> str | None:
    """None when SOURCE still lists the planned files with their sizes, else what changed."""
    now, then = source.files["path"].tolist(), plan["path"].tolist()
    if now != then:
        added, gone = len(set(now) - set(then)), len(set(then) - set(now))
        return f"{len(then)} files were planned, {len(now)} are listed now ({added} new, {gone} gone)"
    for path, size in zip(then, plan["file_size"]):
        try:
            now_size = (source.root / path).stat().st_size
        except OSError:
            now_size = -1
        if now_size != size:
            return f"{path} was {size} bytes, now {now_size}"
    return None
