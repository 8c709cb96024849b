"""Re-ranking measured on a run (CSLS, k-reciprocal): does penalising "hub" images help its neighbours?

    python -m skinsim.hubness data/runs/NAME --k 0,5,10,20

In a high-dimensional embedding a few images ("hubs") are the nearest neighbour of many queries. CSLS (Conneau
et al. 2018, cross-domain similarity local scaling) ranks a gallery image x for a query q by
2 cos(q, x) - r(x), where r(x) is x's mean similarity to its k nearest gallery images: hubs, close to
everything, are pushed down. (The query's own term, r(q), is the same for every x and does not change its
ranking.) This prints, per k (0 = plain cosine ranking), P@1, macro P@1 and melanoma P@1 of val -> test,
macro P@1 with queries both ways, and same-lesion R@1 over all images. Measure it on a `--dev-fold` run:
choosing k on a run's real validation and test numbers would tune on what is reported.

`--k-reciprocal K1,K2,LAMBDA` adds a row of k-reciprocal re-ranking (skinsim.rerank), computed within each pool
of queries and gallery (val + test; all images for same-lesion).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from skinsim import metrics as M
from skinsim.rerank import k_reciprocal_distances


def hub_penalty(gallery: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """r(x): each gallery vector's mean cosine similarity to its k nearest other gallery vectors (0 when k = 0)."""
    if k == 0 or len(gallery) < 2:
        return np.zeros(len(gallery))
    k = min(k, len(gallery) - 1)
    out = np.empty(len(gallery))
    for start in range(0, len(gallery), chunk):
        sims = gallery[start:start + chunk] @ gallery.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not its own neighbour
        out[start:start + len(sims)] = -np.partition(-sims, k - 1, axis=1)[:, :k].mean(1)
    return out


def csls_top1(queries: np.ndarray, gallery: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Index into `gallery` of each query's best CSLS match; `exclude[i]` (a gallery index or -1) is skipped."""
    scores = 2 * queries @ gallery.T - hub_penalty(gallery, k)[None, :]
    return skip(scores, exclude, -np.inf).argmax(1)


def skip(values: np.ndarray, exclude: np.ndarray | None, fill: float) -> np.ndarray:
    """`values` (queries x gallery) with `fill` where `exclude[i]` (a gallery index, or -1 for none) says."""
    if exclude is not None:
        mask = exclude >= 0
        values[np.flatnonzero(mask), exclude[mask]] = fill
    return values


# (query rows, gallery rows, gallery position to skip per query or -1) -> best gallery position per query
Top1 = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]


def csls(vectors: np.ndarray, k: int) -> Top1:
    """Best matches under CSLS with neighbourhood k (0: plain cosine)."""
    return lambda q, s, exclude: csls_top1(vectors[q], vectors[s], k, exclude)


def k_reciprocal(vectors: np.ndarray, k1: int, k2: int, lam: float) -> Top1:
    """Best matches under k-reciprocal re-ranking within the pool of the queries and the gallery."""
    def top1(q: np.ndarray, s: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        pool = np.union1d(q, s)
        dist = k_reciprocal_distances(vectors[pool], np.searchsorted(pool, q), k1, k2, lam)
        return skip(dist[:, np.searchsorted(pool, s)], exclude, np.inf).argmin(1)
    return top1


def score(table: pd.DataFrame, top1: Top1) -> dict[str, float]:
    """P@1, macro P@1, melanoma P@1 (val -> test), macro P@1 both ways and same-lesion R@1 under one ranking."""
    dx, split = table["dx"].to_numpy().astype(str), table["split"].to_numpy()
    pooled = []
    for q_split, s_split in (("val", "test"), ("test", "val")):
        q, s = np.flatnonzero(split == q_split), np.flatnonzero(split == s_split)
        pooled.append((dx[q], (dx[s][top1(q, s, None)] == dx[q]).astype(float)))
    (q_dx, hit), both = pooled[0], pooled
    lesions = table["lesion_id"].to_numpy()
    size = pd.Series(lesions).map(pd.Series(lesions).value_counts()).to_numpy()
    same_q = np.flatnonzero(np.isin(split, ["val", "test"]) & (size > 1))
    top = top1(same_q, np.arange(len(table)), same_q) if len(same_q) else same_q
    return {"P@1": float(hit.mean()), "macro P@1": M.macro(M.per_class_mean(q_dx, hit)),
            "mel P@1": float(hit[q_dx == "mel"].mean()) if (q_dx == "mel").any() else float("nan"),
            "macro P@1 both ways": M.macro(M.per_class_mean(np.concatenate([b[0] for b in both]),
                                                            np.concatenate([b[1] for b in both]))),
            "same-lesion R@1": float((lesions[top] == lesions[same_q]).mean()) if len(same_q) else float("nan")}


def report(table: pd.DataFrame, vectors: np.ndarray, k: int) -> dict[str, Any]:
    """`score` under CSLS with k (k = 0: plain cosine ranking)."""
    return {"ranking": f"CSLS k={k}" if k else "cosine", **score(table, csls(vectors, k))}


def parse_k_reciprocal(text: str) -> tuple[int, int, float]:
    """'K1,K2,LAMBDA' -> (k1, k2, lam); ValueError unless k1 >= 1, k2 >= 1 and 0 <= lam <= 1."""
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError
    k1, k2, lam = int(parts[0]), int(parts[1]), float(parts[2])
    if k1 < 1 or k2 < 1 or not 0 <= lam <= 1:
        raise ValueError
    return k1, k2, lam


def main(argv: list[str] | None = None) -> int:
    """CLI: one row per k for a run."""
    from skinsim.benchmark import format_table
    from skinsim.runs import open_run_or_say

    parser = argparse.ArgumentParser(prog="python -m skinsim.hubness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or name under data/runs (a --dev-fold run to choose k)")
    parser.add_argument("--k", default="0,5,10,20", help="comma-separated neighbourhood sizes (0: plain cosine)")
    parser.add_argument("--k-reciprocal", action="append", default=[], metavar="K1,K2,LAMBDA",
                        help="add a k-reciprocal re-ranking row (e.g. 20,6,0.3, the paper's); repeatable")
    args = parser.parse_args(argv)
    try:
        ks = [int(v) for v in args.k.split(",") if v.strip()]
        if not ks or min(ks) < 0:
            raise ValueError
    except ValueError:
        parser.error(f"--k takes comma-separated whole numbers >= 0, not {args.k!r}")
    try:
        reciprocal = [parse_k_reciprocal(text) for text in args.k_reciprocal]
    except ValueError:
        parser.error(f"--k-reciprocal takes K1,K2,LAMBDA with K1, K2 >= 1 and 0 <= LAMBDA <= 1, not "
                     f"{', '.join(args.k_reciprocal)!r}")
    run = open_run_or_say(args.run)
    if run is None:
        return 2
    table, vectors = run.embeddings()
    if not run.config.get("dev_fold"):
        print("note: not a --dev-fold run; these are validation and test numbers, not for choosing k",
              file=sys.stderr)
    rows = [report(table, vectors, k) for k in ks]
    for k1, k2, lam in reciprocal:
        rows.append({"ranking": f"k-reciprocal k1={k1} k2={k2} lambda={lam:g}",
                     **score(table, k_reciprocal(vectors, k1, k2, lam))})
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
