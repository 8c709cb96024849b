"""Exact distances and the numpy reference search: the true order of float32 embeddings, whoever computes it.

The embeddings of a trained run sit very close together (neighbours 0.01-0.03 apart on the demo run), so float32
rounding of a distance, |q|^2 + |g|^2 - 2 q.g or 2 - 2 ip, is as large as the gaps between neighbours and puts
some neighbour lists in another order depending on who computes it (numpy, FAISS, a BLAS's blocking). Here
every candidate's squared distance is computed again in float64 from the two float32 vectors alone, the same
value wherever it is computed, and candidates are ordered by it, ties by gallery index: FAISS (`nearest`) and
numpy (`nearest_numpy`, the reference for tests and benchmarks) then return identical neighbours, the true ones.
"""
from __future__ import annotations

import numpy as np

BLOCK_BYTES = 32 << 20  # float64 working memory per block of rows
# float64 distances by the matrix product are within ~1.1e-16 d (|q| + |g|)^2 of the truth (d: dimensions);
# candidates are kept this far past the k-th, several hundred times that, so the true k nearest are among them
REFERENCE_SLACK = 1e-13



def as_rows(vectors: np.ndarray) -> np.ndarray:
    """Vectors as contiguous float32 rows."""
    return np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))


def squared_distances(queries: np.ndarray, gallery: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Float64 squared distances from each query to its candidate rows of `gallery` (inf where a candidate is -1).

    Each value is sum((q - g)^2) over the two float32 vectors, reduced the same way for every pair, so it does not
    depend on which other candidates are computed beside it (a matrix product's rounding does).
    """
    q, g = as_rows(queries), as_rows(gallery)
    cand = np.asarray(cand, dtype=np.int64)
    out = np.full(cand.shape, np.inf)
    if cand.size == 0:
        return out
    step = max(1, BLOCK_BYTES // (8 * cand.shape[1] * q.shape[1]))
    for start in range(0, len(cand), step):
        c = cand[start:start + step]
        diff = g[np.maximum(c, 0)].astype(np.float64)
        diff -= q[start:start + step, None, :]
        out[start:start + step] = np.where(c >= 0, np.einsum("ijk,ijk->ij", diff, diff), np.inf)
    return out


def take_nearest(cand: np.ndarray, d2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k candidates of each row with the smallest `d2`, ties broken by gallery index, and their `d2`."""
    order = np.lexsort((cand, d2), axis=1)[:, :k]
    return np.take_along_axis(cand, order, 1), np.take_along_axis(d2, order, 1)


def checked_k(queries: np.ndarray, gallery: np.ndarray, k: int, exclude: np.ndarray | None) -> int:
    """How many neighbours each query can have; ValueError when the shapes do not fit."""
    if queries.shape[1] != gallery.shape[1] and len(gallery):
        raise ValueError(f"queries have {queries.shape[1]} dimensions, the gallery {gallery.shape[1]}")
    if exclude is not None and len(exclude) != len(queries):
        raise ValueError(f"exclude holds {len(exclude)} entries for {len(queries)} queries")
    return int(min(k, len(gallery) - (1 if exclude is not None else 0)))


def no_neighbours(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty (indices, distances) for m queries."""
    return np.zeros((m, 0), dtype=np.int64), np.zeros((m, 0), dtype=np.float32)


def nearest_numpy(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`nearest` by numpy alone (the reference for tests and benchmarks): float64 distances to every gallery row."""
    q, g = as_rows(queries), as_rows(gallery)
    ex = None if exclude is None else np.asarray(exclude, dtype=np.int64).reshape(-1)
    k = checked_k(q, g, k, ex)
    if k <= 0 or len(q) == 0:
        return no_neighbours(len(q))
    idx, d2 = nearest_by_products(q, g, k, ex)
    return idx, np.sqrt(d2).astype(np.float32)


def nearest_by_products(q: np.ndarray, g: np.ndarray, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """(indices, float64 squared distances) of the exact k nearest, candidates taken from float64 matrix products.

    `q` and `g` are float32 rows, 0 < k <= len(g) (less one with `exclude`).
    """
    g64 = g.astype(np.float64)
    g_sq = np.einsum("ij,ij->i", g64, g64)
    g_max = float(np.sqrt(g_sq.max()))
    out_idx, out_d2 = np.empty((len(q), k), dtype=np.int64), np.empty((len(q), k))
    step = max(16, BLOCK_BYTES // (8 * len(g)))  # 16 rows at least: each block reads the whole gallery
    for start in range(0, len(q), step):
        rows = slice(start, start + step)
        q64 = q[rows].astype(np.float64)
        q_sq = np.einsum("ij,ij->i", q64, q64)
        d2 = q_sq[:, None] + g_sq[None, :] - 2.0 * (q64 @ g64.T)
        if exclude is not None:
            hit = np.flatnonzero(exclude[rows] >= 0)
            d2[hit, exclude[rows][hit]] = np.inf
        kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
        slack = REFERENCE_SLACK * q.shape[1] * (np.sqrt(q_sq) + g_max) ** 2
        cand = _padded(d2 <= (kth + slack)[:, None])
        out_idx[rows], out_d2[rows] = take_nearest(cand, squared_distances(q[rows], g, cand), k)
    return out_idx, out_d2


def _padded(mask: np.ndarray) -> np.ndarray:
    """The column indices where each row of `mask` is true, as rows padded with -1."""
    counts = mask.sum(1)
    out = np.full((len(mask), int(counts.max(initial=0))), -1, dtype=np.int64)
    rows, cols = np.nonzero(mask)
    out[rows, np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)] = cols
    return out
