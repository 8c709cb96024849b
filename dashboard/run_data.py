"""What the dashboard reads of a run folder itself: the available runs, each run's info, curves, embeddings and
labels, behind Streamlit's caches.

Cached functions take the run as a path string plus `version`, the mtime of its config.json, so a run that is
rewritten under the same name is read again instead of being served stale (an argument named with a leading
underscore would be left out of Streamlit's cache key, so `version` is not one). Every dashboard module that reads a
run keeps to this.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from skinsim.runs.folder import is_run, latest_run, list_runs, load_run, runs_dir

DEMO_RUN = "demo"
AGE_BANDS = [(0, 19, "0-19"), (20, 39, "20-39"), (40, 59, "40-59"), (60, 79, "60-79"), (80, 200, "80+")]


def available_runs() -> list[Path]:
    """Complete runs under the runs folder, the demo run first, then newest first."""
    runs = list_runs(runs_dir())
    return sorted(runs, key=lambda p: p.name != DEMO_RUN)


def default_run(runs: list[Path]) -> Path | None:
    """The demo run when it exists, else the newest (the one `runs/latest` names)."""
    for run in runs:
        if run.name == DEMO_RUN:
            return run
    latest = latest_run(runs_dir())
    return latest if latest in runs else (runs[0] if runs else None)


def is_complete_run(path: Path) -> bool:
    """True when `path` is a complete run folder."""
    return is_run(Path(path))


def mtime(path: Path) -> float:
    """The file's mtime, 0.0 when it is missing: the version of a file in cache keys."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def stamp(run: Path) -> float:
    """The run's version for cache keys: the mtime of its config.json."""
    return mtime(Path(run) / "config.json")


@dataclass(frozen=True)
class RunInfo:
    """What a run is: its name, config and stored metrics, and which optional files it has."""

    path: Path
    name: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    has_umap: bool
    has_curves: bool
    has_checkpoint: bool


def run_info(run: Path) -> RunInfo:
    """The run's config, metrics and file inventory."""
    return _run_info(str(run), stamp(run))


@st.cache_data(show_spinner=False)
def _run_info(run: str, version: float) -> RunInfo:
    loaded = load_run(Path(run))
    path = Path(run)
    return RunInfo(path=path, name=path.name, config=loaded.config, metrics=loaded.metrics,
                   has_umap=(path / "umap.parquet").is_file(), has_curves=(path / "curves.csv").is_file(),
                   has_checkpoint=(path / "checkpoint.safetensors").is_file())


def curves(run: Path) -> pd.DataFrame | None:
    """Per-epoch training curves, or None when the run has none."""
    return _curves(str(run), stamp(run)) if (Path(run) / "curves.csv").is_file() else None


@st.cache_data(show_spinner=False)
def _curves(run: str, version: float) -> pd.DataFrame:
    return load_run(Path(run)).curves()


def embeddings(run: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(metadata of every image, L2-normalised float32 embeddings), row-aligned."""
    return cached_embeddings(str(run), stamp(run))


# A resource cache, not a data cache: one copy for every session and rerun, never pickled again (a data cache
# copies its value on each read, which at a million embeddings costs seconds). Callers treat the tables as read-only.
@st.cache_resource(show_spinner=False, max_entries=4)
def cached_embeddings(run: str, version: float) -> tuple[pd.DataFrame, np.ndarray]:
    """`embeddings` by the cache's own key (run as a string, version), for other cached functions."""
    meta, vectors = load_run(Path(run)).embeddings()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # stored vectors are normalised already; normalising again guards against runs written by other tools
    vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    meta = meta.reset_index(drop=True)
    meta["age_band"] = age_bands(meta["age"])
    return meta, vectors


def age_bands(age: pd.Series) -> pd.Series:
    """Age in years -> a band label ('unknown' when missing)."""
    out = pd.Series("unknown", index=age.index, dtype=object)
    for lo, hi, label in AGE_BANDS:
        out[(age >= lo) & (age <= hi)] = label
    return out


def split_rows(meta: pd.DataFrame, splits: tuple[str, ...]) -> np.ndarray:
    """The embedding rows of the images in `splits`."""
    return np.nonzero(meta["split"].isin(splits).to_numpy())[0]


@st.cache_resource(show_spinner=False, max_entries=4)
def id_rows(run: str, version: float) -> pd.Series:
    """The embedding row of each image id (the first, should an id repeat): a hash lookup instead of a scan of a
    million ids on every click."""
    meta, _ = cached_embeddings(run, version)
    ids = pd.Index(meta["image_id"].astype(str))
    return pd.Series(np.arange(len(meta)), index=ids)[~ids.duplicated()]


def rows_of(run: str, version: float, image_ids: list[str]) -> np.ndarray:
    """The embedding rows of `image_ids`, in their order, leaving out ids the run lacks."""
    return id_rows(run, version).reindex(list(map(str, image_ids))).dropna().to_numpy(dtype=np.int64)


def run_labels(run: Path) -> list[str]:
    """Every diagnosis label of the run, sorted: what fixes each label's colour on every page."""
    return classes_all(embeddings(run)[0]["dx"])


def classes_all(*columns: Any) -> list[str]:
    """The labels present in any of `columns`, sorted (HAM10000's codes sort into their usual order)."""
    return sorted(set().union(*(set(map(str, c)) for c in columns)))
