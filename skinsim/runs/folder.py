"""Run folders: where they live, how they are written atomically, and how they are read back.

Only numpy, pandas and pyarrow are imported here, so the dashboard can read runs without torch.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[2]
META_COLUMNS = ["image_id", "lesion_id", "split", "dx", "dx_type", "age", "sex", "localization", "path"]


def runs_dir() -> Path:
    """The folder that holds runs: `SKINSIM_RUNS`, else `data/runs` in the repository."""
    return Path(os.environ.get("SKINSIM_RUNS", REPO_ROOT / "data" / "runs"))


def is_run(path: Path) -> bool:
    """True when `path` is a complete run folder."""
    return path.is_dir() and not path.name.startswith(".") and (path / "config.json").is_file() \
        and (path / "embeddings.parquet").is_file()


def list_runs(root: Path | None = None) -> list[Path]:
    """Complete runs under `root`, newest first."""
    root = Path(root) if root is not None else runs_dir()
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if is_run(p)]
    return sorted(runs, key=lambda p: (p / "config.json").stat().st_mtime, reverse=True)


def latest_run(root: Path | None = None) -> Path | None:
    """The run named by `runs/latest`, else the newest complete run, else None."""
    root = Path(root) if root is not None else runs_dir()
    pointer = root / "latest"
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if is_run(candidate):
            return candidate
    runs = list_runs(root)
    return runs[0] if runs else None


def resolve_run(run: str | Path | None, root: Path | None = None) -> Path:
    """Turn a run name, a path, 'latest' or None into a run folder, or raise FileNotFoundError."""
    root = Path(root) if root is not None else runs_dir()
    if run in (None, "", "latest"):
        found = latest_run(root)
        if found is None:
            raise FileNotFoundError(f"no run found under {root}; make one with `python -m skinsim.train`")
        return found
    path = Path(run)
    for candidate in (path, root / path):
        if is_run(candidate):
            return candidate
    raise FileNotFoundError(f"{run} is not a complete run folder (looked in . and {root})")


def data_folders(config: dict[str, Any]) -> list[Path]:
    """Existing folders that may hold a run's images, in the order tried.

    `SKINSIM_DATA` first (an explicit choice wins), then the folder the run was trained on (relative paths
    are taken from the repository root), then `data/ham10000`.
    """
    candidates = []
    if os.environ.get("SKINSIM_DATA"):
        candidates.append(Path(os.environ["SKINSIM_DATA"]).expanduser())
    configured = (config.get("meta") or {}).get("data_dir") or config.get("data_dir")
    if configured:
        path = Path(configured).expanduser()
        candidates.append(path if path.is_absolute() else REPO_ROOT / path)
    candidates.append(REPO_ROOT / "data" / "ham10000")
    found: list[Path] = []
    for path in candidates:
        if path not in found and path.is_dir():
            found.append(path)
    return found


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def write_json(path: Path, obj: Any) -> None:
    """Write JSON, pretty, with NaN turned into null."""
    Path(path).write_text(json.dumps(_clean(obj), indent=2) + "\n")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_vectors(path: Path, table: pd.DataFrame, vectors: np.ndarray, column: str = "embedding") -> None:
    """Write a metadata table with one fixed-size float32 vector per row as parquet."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    arrow = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    arrow = arrow.append_column(column, pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))
    pq.write_table(arrow, path)


MAP_KEY = b"skinsim.map"


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write `path` through `write(tmp)` and a rename: a reader (or a resumed job) sees the old file or the new one,
    never half of one."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_with_meta(path: Path, table: pd.DataFrame, key: bytes, meta: dict[str, Any],
                            schema: pa.Schema | None = None) -> None:
    """A parquet file whose schema metadata holds `meta` as JSON under `key`."""
    arrow = pa.Table.from_pandas(table, schema=schema, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), key: json.dumps(meta).encode()})
    pq.write_table(arrow, path)


def write_map(path: Path, table: pd.DataFrame, method: dict[str, Any]) -> None:
    """umap.parquet: the table with x, y, and how the map was made in the file's metadata (MAP_KEY)."""
    write_parquet_with_meta(path, table, MAP_KEY, method)


def map_method(path: Path) -> dict[str, Any]:
    """How a run's map was made (see skinsim.evaluate.projection); {} for maps written before 2026-11-29."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(MAP_KEY, b"{}"))


def read_vectors(path: Path, column: str = "embedding") -> tuple[pd.DataFrame, np.ndarray]:
    """Read a table written by `write_vectors`: (metadata frame, float32 array of shape (n, d))."""
    arrow = pq.read_table(path)
    vec = arrow.column(column).combine_chunks()
    dim = vec.type.list_size
    vectors = vec.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
    return arrow.drop([column]).to_pandas(), vectors


@dataclass
class Run:
    """A complete run folder with its config and metrics already read."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    def embeddings(self) -> tuple[pd.DataFrame, np.ndarray]:
        """(metadata of every image, their embeddings)."""
        return read_vectors(self.path / "embeddings.parquet")

    def umap(self) -> pd.DataFrame:
        """The 2-D map with id and metadata columns."""
        return pd.read_parquet(self.path / "umap.parquet")

    def curves(self) -> pd.DataFrame:
        """Per-epoch training curves."""
        return pd.read_csv(self.path / "curves.csv")


def load_run(run: str | Path | None = None, root: Path | None = None) -> Run:
    """Open a run by name, path or 'latest'."""
    path = resolve_run(run, root)
    metrics_path = path / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.is_file() else {}
    return Run(path=path, config=read_json(path / "config.json"), metrics=metrics)


def open_run_or_say(run: str | Path | None) -> Run | None:
    """`load_run` for a command line: a missing run prints one 'error:' line to stderr and gives None."""
    try:
        return load_run(run)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


class RunWriter:
    """Writes a run into a hidden work folder and renames it into place when `commit()` is called."""

    def __init__(self, final: Path, resume: bool = False):
        self.final = Path(final)
        self.work = self.final.parent / f".{self.final.name}.partial"
        if not resume and self.work.exists():
            shutil.rmtree(self.work)  # leftovers of an abandoned run must not leak into a new one
        self.work.mkdir(parents=True, exist_ok=True)

    def commit(self, update_latest: bool = True) -> Path:
        """Move the finished work folder into place and point `latest` at it."""
        for leftover in ("train_state.pt",):
            (self.work / leftover).unlink(missing_ok=True)
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.work, self.final)
        if update_latest:
            tmp = self.final.parent / ".latest.tmp"
            tmp.write_text(self.final.name + "\n")
            os.replace(tmp, self.final.parent / "latest")
        return self.final
