"""k-nearest-neighbour search by cosine distance for the audit: exact in row blocks up to AUTO_EXACT_LIMIT images
(memory stays bounded), through a FAISS HNSW index above it (an exact search of a million images is hours on two
cores; the graph's neighbours are approximate, their distances exact)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Neighbours:
    """Each row's nearest rows (itself excluded) and its nearest rows of other lesions, nearest first."""

    idx: np.ndarray         # (n, m) int64
    dist: np.ndarray        # (n, m) float32 cosine distances
    other_idx: np.ndarray   # (n, k) int64, -1 where fewer than k other-lesion rows exist
    other_dist: np.ndarray  # (n, k) float32, nan where other_idx is -1


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """A float32 copy of `vectors` with every non-zero row scaled to length 1."""
    out = np.array(vectors, dtype=np.float32, copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def lesion_codes(lesions: pd.Series) -> np.ndarray:
    """Integer codes of lesion ids; a missing id gets a code of its own, so it is nobody's sibling."""
    codes, _ = pd.factorize(pd.Series(lesions).reset_index(drop=True))
    codes = codes.astype(np.int64)
    missing = np.flatnonzero(codes < 0)
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(len(missing))
    return codes


def _smallest_by_partition(dist: np.ndarray, m: int) -> np.ndarray:
    if m < dist.shape[1]:
        part = np.argpartition(dist, m - 1, axis=1)[:, :m]
    else:
        part = np.tile(np.arange(dist.shape[1]), (len(dist), 1))
    order = np.lexsort((part, np.take_along_axis(dist, part, 1)), axis=1)
    return np.take_along_axis(part, order, 1)


def _smallest(dist: np.ndarray, m: int, sample: int = 4096) -> np.ndarray:
    """Column indices of the m smallest entries per row, ascending, ties broken by column index.

    argpartition over whole rows cost 3-4x the matrix product itself at 100k rows. Instead, the m-th smallest
    of a column sample bounds each row's m-th smallest from above, so a comparison keeps every true neighbour
    among a few hundred candidates per row and only those are sorted: exact, whatever the data.
    """
    b, n = dist.shape
    if m >= n or n <= 4 * sample:
        return _smallest_by_partition(dist, m)
    cols = np.linspace(0, n - 1, sample).astype(np.int64)
    bound = np.partition(dist[:, cols], m - 1, axis=1)[:, m - 1]
    keep = dist <= bound[:, None]
    out = np.empty((b, m), dtype=np.int64)
    # about m * n / sample candidates are expected; a row far above that is a mass of equal distances
    # (collapsed vectors), where partitioning the row is cheaper than sorting its candidates
    heavy = keep.sum(1) > 8 * m * n // sample
    if heavy.any():
        out[heavy] = _smallest_by_partition(dist[heavy], m)
        keep[heavy] = False
    rows, cand = np.nonzero(keep)
    order = np.lexsort((cand, dist[rows, cand], rows))
    rows, cand = rows[order], cand[order]
    # every light row has at least m candidates: the m sampled entries at or below its bound
    first = np.searchsorted(rows, np.flatnonzero(~heavy))
    out[~heavy] = cand[first[:, None] + np.arange(m)]
    return out


def neighbours(vectors: np.ndarray, lesions: np.ndarray, k: int, m: int,
               block_bytes: int = 64 << 20) -> Neighbours:
    """The `m` nearest rows of every row and its `k` nearest rows of other lesions, by exact search.

    `vectors` must be unit rows; `lesions` integer lesion codes. One pass over all pairs: the other-lesion
    list is read off the m nearest when they hold enough other lesions (true in HAM10000, at most 6 views per
    lesion) and searched again, masked, only for the rows where they do not.
    """
    n = len(vectors)
    m, k = min(m, n - 1), min(k, n - 1)
    idx = np.empty((n, m), dtype=np.int64)
    dist = np.empty((n, m), dtype=np.float32)
    other_idx = np.full((n, k), -1, dtype=np.int64)
    other_dist = np.full((n, k), np.nan, dtype=np.float32)
    rows = max(1, min(n, block_bytes // max(1, 4 * n)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        d = vectors[start:stop] @ vectors.T
        np.subtract(np.float32(1.0), d, out=d)  # in place: no second (rows, n) array
        local = np.arange(stop - start)
        d[local, start + local] = np.inf
        top = _smallest(d, m)
        idx[start:stop] = top
        dist[start:stop] = np.take_along_axis(d, top, 1)
        if k == 0:
            continue
        same = lesions[top] == lesions[start:stop, None]
        enough = (~same).sum(1) >= k
        # a stable sort on the flag moves other-lesion columns first and keeps their distance order
        first = np.argsort(same, axis=1, kind="stable")[:, :k]
        picked = np.take_along_axis(top, first, 1)
        other_idx[start:stop][enough] = picked[enough]
        other_dist[start:stop][enough] = np.take_along_axis(dist[start:stop], first, 1)[enough]
        for row in np.flatnonzero(~enough):
            masked = d[row].copy()
            masked[lesions == lesions[start + row]] = np.inf
            best = _smallest(masked[None], k)[0]
            ok = np.isfinite(masked[best])
            other_idx[start + row, :ok.sum()] = best[ok]
            other_dist[start + row, :ok.sum()] = masked[best[ok]]
    # float32 rounding can make a distance of identical vectors slightly negative
    np.maximum(dist, 0, out=dist)
    np.maximum(other_dist, 0, out=other_dist)  # nan (no neighbour) stays nan
    return Neighbours(idx=idx, dist=dist, other_idx=other_idx, other_dist=other_dist)


def indexed_neighbours(vectors: np.ndarray, lesions: np.ndarray, k: int, m: int, spec: str = "HNSW32") -> Neighbours:
    """`neighbours` through a FAISS index named by `spec`: each row's m nearest and its k nearest of other lesions
    among them (-1 and nan where fewer than k other-lesion rows are among the m)."""
    from skinsim.search.vector_index import VectorIndex

    n = len(vectors)
    m, k = min(m, n - 1), min(k, n - 1)
    idx, dist = VectorIndex(vectors, spec).search(vectors, m, exclude=np.arange(n))
    dist = (dist.astype(np.float64) ** 2 / 2).astype(np.float32)  # Euclidean between unit rows -> cosine distance
    known = idx >= 0
    dist[~known] = np.inf
    idx = np.where(known, idx, np.arange(n)[:, None])  # a row the graph missed points at itself, infinitely far
    other = known & (lesions[idx] != lesions[:, None])
    first = np.argsort(~other, axis=1, kind="stable")[:, :k]
    ok = np.take_along_axis(other, first, 1)
    other_idx = np.where(ok, np.take_along_axis(idx, first, 1), -1)
    other_dist = np.where(ok, np.take_along_axis(dist, first, 1), np.nan).astype(np.float32)
    np.maximum(dist, 0, out=dist)
    return Neighbours(idx=idx, dist=dist, other_idx=other_idx, other_dist=other_dist)
