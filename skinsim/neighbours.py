"""Exact k-nearest-neighbour search over L2-normalised embeddings (numpy only)."""
from __future__ import annotations

import numpy as np


def nearest(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices into `gallery` and Euclidean distances of the `k` nearest rows for each query, nearest first.

    `exclude[i]`, when given, is a gallery index that query i may not return (itself, when the query set
    is part of the gallery); -1 excludes nothing.
    """
    queries = np.asarray(queries, dtype=np.float32)
    gallery = np.asarray(gallery, dtype=np.float32)
    k = int(min(k, len(gallery) - (1 if exclude is not None else 0)))
    if k <= 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
    g_sq = (gallery * gallery).sum(1)
    out_idx = np.empty((len(queries), k), dtype=np.int64)
    out_dist = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        d2 = (q * q).sum(1)[:, None] + g_sq[None, :] - 2.0 * q @ gallery.T
        if exclude is not None:
            ex = np.asarray(exclude[start:start + chunk])
            rows = np.nonzero(ex >= 0)[0]
            d2[rows, ex[rows]] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else np.tile(
            np.arange(d2.shape[1]), (len(q), 1))
        part_d = np.take_along_axis(d2, part, 1)
        # ties broken by gallery index so results do not depend on argpartition's internals
        order = np.lexsort((part, part_d), axis=1)
        out_idx[start:start + chunk] = np.take_along_axis(part, order, 1)
        out_dist[start:start + chunk] = np.sqrt(np.maximum(np.take_along_axis(part_d, order, 1), 0.0))
    return out_idx, out_dist


def nearest_to_row(vectors: np.ndarray, row: int, gallery_rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `gallery_rows` nearest to `vectors[row]`, never `row` itself, and their distances."""
    inside = np.flatnonzero(gallery_rows == row)
    exclude = np.array([inside[0] if len(inside) else -1])
    idx, dist = nearest(vectors[row][None], vectors[gallery_rows], k, exclude=exclude)
    return gallery_rows[idx[0]], dist[0]
