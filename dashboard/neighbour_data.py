"""Nearest neighbours among a run's stored embeddings: the search spaces, neighbour tables and each image's top-1
outcome, behind Streamlit's caches (run as a path string plus `version`, as in dashboard.run_data)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.run_data import cached_embeddings, rows_of, split_rows, stamp
from skinsim.search.neighbours import nearest

SEARCH_SPACES: dict[str, tuple[str, ...]] = {"test": ("test",), "test + train": ("test", "train")}
NEIGHBOUR_COLUMNS = ["rank", "image_id", "distance", "dx", "lesion_id", "dx_type", "age", "sex", "localization",
                     "split", "path"]


def neighbours(run: Path, image_id: str, k: int, splits: tuple[str, ...] = ("test",)) -> pd.DataFrame:
    """The k nearest images to a stored image in the search space (itself excluded), nearest first."""
    return _neighbours(str(run), stamp(run), image_id, int(k), tuple(splits))


@st.cache_data(show_spinner=False, max_entries=512)
def _neighbours(run: str, version: float, image_id: str, k: int, splits: tuple[str, ...]) -> pd.DataFrame:
    meta, vectors = cached_embeddings(run, version)
    hits = rows_of(run, version, [image_id])
    if len(hits) == 0:
        return pd.DataFrame(columns=NEIGHBOUR_COLUMNS)
    rows, index = _gallery(run, version, splits)
    inside = np.flatnonzero(rows == hits[0])
    k = min(k, len(rows) - len(inside))
    if k <= 0:
        return pd.DataFrame(columns=NEIGHBOUR_COLUMNS)
    idx, dist = index.search(vectors[hits[:1]], k,
                             exclude=np.array([inside[0] if len(inside) else -1]))
    return neighbour_table(meta, rows[idx[0]], dist[0])


@st.cache_resource(show_spinner=False, max_entries=8)
def _gallery(run: str, version: float, splits: tuple[str, ...]) -> tuple[np.ndarray, Any]:
    """(rows of the search space, an exact FAISS index of their embeddings), built once per run and space."""
    from skinsim.search.vector_index import VectorIndex

    meta, vectors = cached_embeddings(run, version)
    rows = split_rows(meta, splits)
    # the same exact search as skinsim.search.neighbours.nearest, without copying the gallery again for every click
    return rows, VectorIndex(vectors[rows], "Flat", metric="l2")


def neighbour_table(meta: pd.DataFrame, rows: np.ndarray, distances: np.ndarray) -> pd.DataFrame:
    """Rows of `meta` as a neighbour table with rank and distance."""
    table = meta.iloc[rows].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(rows) + 1))
    table.insert(2, "distance", np.asarray(distances, dtype=float))
    return in_column_order(table)


def in_column_order(table: pd.DataFrame) -> pd.DataFrame:
    """A neighbour table's columns in the order shown: the standard ones, then the dataset's own."""
    return table[[c for c in NEIGHBOUR_COLUMNS if c in table.columns] + extra_columns(table)]


def extra_columns(table: pd.DataFrame) -> list[str]:
    """A dataset's own metadata columns, beyond the ones every run has (shown after them)."""
    internal = set(NEIGHBOUR_COLUMNS) | {"age_band", "row", "x", "y", "embedding"}
    return [c for c in table.columns if c not in internal]


def top1_outcome(run: Path, splits: tuple[str, ...] = ("test",)) -> np.ndarray:
    """Per image: 'right' when its nearest neighbour in the search space has its diagnosis, else 'wrong'."""
    return cached_top1_outcome(str(run), stamp(run), tuple(splits))


@st.cache_data(show_spinner=False)
def cached_top1_outcome(run: str, version: float, splits: tuple[str, ...]) -> np.ndarray:
    """`top1_outcome` by the cache's own key (run as a string, version), for other cached functions."""
    meta, vectors = cached_embeddings(run, version)
    gallery = split_rows(meta, splits)
    position = np.full(len(meta), -1)
    position[gallery] = np.arange(len(gallery))
    idx, _ = nearest(vectors, vectors[gallery], 1, exclude=position)
    dx = meta["dx"].to_numpy()
    return np.where(dx[gallery][idx[:, 0]] == dx, "right", "wrong")
