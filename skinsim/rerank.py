"""k-reciprocal re-ranking (Zhong et al., CVPR 2017): rank by how much two images' reciprocal neighbourhoods overlap.

Person re-identification's standard re-ranking: an image's k-reciprocal neighbours are those it ranks in its
top k1 that also rank it in theirs (a hub is in many top lists but few lists are in its own). Each image becomes
a sparse vector of Gaussian weights over that (expanded) set, averaged over its k2 nearest neighbours; two images
are far apart when those vectors overlap little (Jaccard distance). The final distance mixes it with the
original: (1 - lam) * jaccard + lam * original. Everything is computed within one pool of images (queries and
gallery together), as in the paper. Used by `python -m skinsim.hubness --k-reciprocal` to measure it on a run.
"""
from __future__ import annotations

import numpy as np


def squared_distances(vectors: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between unit vectors (2 - 2 cos), float32."""
    v = vectors.astype(np.float32)
    return np.clip(2.0 - 2.0 * (v @ v.T), 0.0, 4.0)


def top_k(dist: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Each row's k nearest columns, nearest first (the row itself, at distance 0, among them)."""
    k = min(k, dist.shape[1])
    out = np.empty((len(dist), k), dtype=np.int64)
    for s in range(0, len(dist), chunk):
        part = np.argpartition(dist[s:s + chunk], k - 1, axis=1)[:, :k]
        order = np.take_along_axis(dist[s:s + chunk], part, 1).argsort(1, kind="stable")
        out[s:s + chunk] = np.take_along_axis(part, order, 1)
    return out


def reciprocal(ranks: np.ndarray, i: int, k: int) -> np.ndarray:
    """The k-reciprocal neighbours of i: in i's top k + 1, with i in theirs."""
    forward = ranks[i, :k + 1]
    return forward[(ranks[forward, :k + 1] == i).any(1)]


def neighbourhood_weights(dist: np.ndarray, ranks: np.ndarray, k1: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image: (columns, weights summing to 1) over its expanded k-reciprocal set, weights exp(-distance)."""
    half = max(1, int(round(k1 / 2)))
    out = []
    for i in range(len(dist)):
        members = reciprocal(ranks, i, k1)
        expanded = [members]
        for c in members:
            cand = reciprocal(ranks, int(c), half)
            if len(np.intersect1d(cand, members)) > 2 / 3 * len(cand):  # the paper's expansion rule
                expanded.append(cand)
        cols = np.unique(np.concatenate(expanded))
        w = np.exp(-dist[i, cols].astype(np.float64))
        out.append((cols, w / w.sum()))
    return out


def k_reciprocal_distances(vectors: np.ndarray, queries: np.ndarray, k1: int = 20, k2: int = 6,
                           lam: float = 0.3) -> np.ndarray:
    """(len(queries), n) re-ranked distances from the pool rows `queries` to every row of the pool `vectors`."""
    n = len(vectors)
    dist = squared_distances(vectors)
    ranks = top_k(dist, max(k1, k2) + 1)
    weights = neighbourhood_weights(dist, ranks, k1)
    v = np.zeros((n, n), dtype=np.float32)
    for i, (cols, w) in enumerate(weights):
        v[i, cols] = w
    if k2 > 1:  # local query expansion: each vector becomes the mean of its k2 nearest neighbours' vectors
        v = np.stack([v[ranks[i, :k2]].mean(0) for i in range(n)])
    original = dist[queries] / np.maximum(dist[queries].max(1, keepdims=True), 1e-12)  # per query, as the paper
    out = np.empty((len(queries), n), dtype=np.float64)
    for row, q in enumerate(queries):
        cols = np.flatnonzero(v[q])
        overlap = np.minimum(v[q, cols][None, :], v[:, cols]).sum(1)  # sum over shared columns of the min
        jaccard = 1.0 - overlap / (2.0 - overlap)  # rows sum to 1, so sum of max = 2 - sum of min
        out[row] = (1 - lam) * jaccard + lam * original[row]
    return out
