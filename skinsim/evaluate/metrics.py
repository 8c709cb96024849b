"""Retrieval metrics as plain functions over a table of neighbour labels.

`neighbours` is an (n_queries, m) array: row i holds the labels of query i's neighbours, nearest first.
`relevant` (where needed) is, per query, how many items of its label the search space holds.
"""
from __future__ import annotations

import math

import numpy as np


def precision_at_k(queries: np.ndarray, neighbours: np.ndarray, k: int) -> np.ndarray:
    """Per query: the share of its first k neighbours that share its label."""
    return (neighbours[:, :k] == np.asarray(queries)[:, None]).mean(1)


def hit_at_k(queries: np.ndarray, neighbours: np.ndarray, k: int) -> np.ndarray:
    """Per query: 1 if any of its first k neighbours shares its label (recall@k of metric learning)."""
    return (neighbours[:, :k] == np.asarray(queries)[:, None]).any(1).astype(float)


def average_precision_at_r(queries: np.ndarray, neighbours: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Per query: MAP@R (Musgrave et al. 2020), R = the number of relevant items in the search space.

    AP@R = (1/R) * sum over ranks i <= R of P@i * [neighbour i is relevant]; needs m >= max(R) columns.
    """
    relevant = np.asarray(relevant)
    r_max = int(relevant.max()) if len(relevant) else 0
    if neighbours.shape[1] < r_max:
        raise ValueError(f"MAP@R needs {r_max} neighbours per query, the table has {neighbours.shape[1]}")
    hits = neighbours[:, :r_max] == np.asarray(queries)[:, None]
    ranks = np.arange(1, r_max + 1)
    within_r = ranks[None, :] <= relevant[:, None]
    precision = np.cumsum(hits, axis=1) / ranks[None, :]
    ap = (precision * hits * within_r).sum(1) / np.maximum(relevant, 1)
    return np.where(relevant > 0, ap, 0.0)


def average_precision_from_ranks(ranks: np.ndarray) -> float:
    """AP of one query from the 1-based ranks of all its relevant items: mean over them of (i-th hit) / rank."""
    ranks = np.sort(np.asarray(ranks, dtype=float))
    if len(ranks) == 0:
        return 0.0
    return float((np.arange(1, len(ranks) + 1) / ranks).mean())


def knn_vote(neighbours: np.ndarray, k: int) -> np.ndarray:
    """The most common label among the first k neighbours; a tie goes to the label met first."""
    votes = []
    for row in neighbours[:, :k]:
        labels, first, counts = np.unique(row, return_index=True, return_counts=True)
        best = np.flatnonzero(counts == counts.max())
        votes.append(labels[best[np.argmin(first[best])]])
    return np.asarray(votes)


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over the true labels present of the share predicted correctly."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return float(np.mean([(predicted[truth == c] == c).mean() for c in np.unique(truth)]))


def confusion(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> np.ndarray:
    """Counts: rows the true label, columns the predicted one, in the order of `labels`."""
    index = {c: i for i, c in enumerate(labels)}
    out = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        out[index[t], index[p]] += 1
    return out


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def random_retrieval_precision(queries: np.ndarray, search: np.ndarray) -> np.ndarray:
    """Per query: the expected P@k of neighbours drawn at random = share of its label in the search space."""
    labels, counts = np.unique(search, return_counts=True)
    share = dict(zip(labels, counts / counts.sum()))
    return np.array([share.get(q, 0.0) for q in queries])


def per_class_mean(queries: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Mean of a per-query value within each query label."""
    queries = np.asarray(queries)
    return {str(c): float(values[queries == c].mean()) for c in np.unique(queries)}


def macro(per_class: dict[str, float]) -> float:
    """Unweighted mean over classes."""
    return float(np.mean(list(per_class.values()))) if per_class else float("nan")


def macro_interval(queries: np.ndarray, hits: np.ndarray, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the macro mean of per-query `hits`, resampling queries within each class.

    Resampling within a class keeps every class in every draw, so the interval reflects how few queries the
    small classes have (11 df and 14 vasc on HAM10000's validation split), not how many classes are drawn.
    """
    queries, hits = np.asarray(queries), np.asarray(hits, dtype=float)
    if len(queries) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = np.zeros(n_boot)
    classes = np.unique(queries)
    for c in classes:
        h = hits[queries == c]
        draws += h[rng.integers(0, len(h), size=(n_boot, len(h)))].mean(1)
    draws /= len(classes)
    tail = (1 - level) / 2 * 100
    return (float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail)))
