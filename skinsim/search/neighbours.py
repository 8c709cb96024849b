"""Exact k-nearest-neighbour search through FAISS: candidates from its flat index, ordered as `exact` orders them."""
from __future__ import annotations

import numpy as np

from skinsim.search.exact import as_rows, checked_k, no_neighbours
from skinsim.search.vector_index import VectorIndex


def nearest(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices into `gallery` and Euclidean distances of the `k` nearest rows for each query, nearest first.

    `exclude[i]`, when given, is a gallery index that query i may not return (itself, when the query set
    is part of the gallery); -1 excludes nothing. Exact: FAISS's flat index proposes candidates, float64
    distances order them (ties by gallery index), equal to `nearest_numpy`.
    """
    q, g = as_rows(queries), as_rows(gallery)
    ex = None if exclude is None else np.asarray(exclude, dtype=np.int64).reshape(-1)
    k = checked_k(q, g, k, ex)
    if k <= 0 or len(q) == 0:
        return no_neighbours(len(q))
    # L2, not inner product: this function takes any vectors, not only unit ones
    return VectorIndex(g, "Flat", metric="l2").search(q, k, exclude=ex, block=chunk)


def nearest_to_row(vectors: np.ndarray, row: int, gallery_rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `gallery_rows` nearest to `vectors[row]`, never `row` itself, and their distances."""
    inside = np.flatnonzero(gallery_rows == row)
    exclude = np.array([inside[0] if len(inside) else -1])
    idx, dist = nearest(vectors[row][None], vectors[gallery_rows], k, exclude=exclude)
    return gallery_rows[idx[0]], dist[0]
