"""Hubness-aware re-ranking (CSLS) measured on a run: does penalising "hub" images help its neighbours?

    python -m skinsim.hubness data/runs/NAME --k 0,5,10,20

In a high-dimensional embedding a few images ("hubs") are the nearest neighbour of many queries. CSLS (Conneau
et al. 2018, cross-domain similarity local scaling) ranks a gallery image x for a query q by
2 cos(q, x) - r(x), where r(x) is x's mean similarity to its k nearest gallery images: hubs, close to
everything, are pushed down. (The query's own term, r(q), is the same for every x and does not change its
ranking.) This prints, per k (0 = plain cosine ranking), P@1, macro P@1 and melanoma P@1 of val -> test,
macro P@1 with queries both ways, and same-lesion R@1 over all images. Measure it on a `--dev-fold` run:
choosing k on a run's real validation and test numbers would tune on what is reported.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from skinsim import metrics as M


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
    if exclude is not None:
        mask = exclude >= 0
        scores[np.flatnonzero(mask), exclude[mask]] = -np.inf
    return scores.argmax(1)


def report(table: pd.DataFrame, vectors: np.ndarray, k: int) -> dict[str, float]:
    """P@1, macro P@1, melanoma P@1 (val -> test), macro P@1 both ways and same-lesion R@1 under CSLS with k."""
    dx, split = table["dx"].to_numpy().astype(str), table["split"].to_numpy()
    pooled = []
    for q_split, s_split in (("val", "test"), ("test", "val")):
        q, s = np.flatnonzero(split == q_split), np.flatnonzero(split == s_split)
        pooled.append((dx[q], (dx[s][csls_top1(vectors[q], vectors[s], k)] == dx[q]).astype(float)))
    (q_dx, hit), both = pooled[0], pooled
    lesions = table["lesion_id"].to_numpy()
    size = pd.Series(lesions).map(pd.Series(lesions).value_counts()).to_numpy()
    same_q = np.flatnonzero(np.isin(split, ["val", "test"]) & (size > 1))
    top = csls_top1(vectors[same_q], vectors, k, exclude=same_q)
    return {"k": k, "P@1": float(hit.mean()), "macro P@1": M.macro(M.per_class_mean(q_dx, hit)),
            "mel P@1": float(hit[q_dx == "mel"].mean()) if (q_dx == "mel").any() else float("nan"),
            "macro P@1 both ways": M.macro(M.per_class_mean(np.concatenate([b[0] for b in both]),
                                                            np.concatenate([b[1] for b in both]))),
            "same-lesion R@1": float((lesions[top] == lesions[same_q]).mean()) if len(same_q) else float("nan")}


def main(argv: list[str] | None = None) -> int:
    """CLI: one row per k for a run."""
    from skinsim.benchmark import format_table
    from skinsim.runs import open_run_or_say

    parser = argparse.ArgumentParser(prog="python -m skinsim.hubness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or name under data/runs (a --dev-fold run to choose k)")
    parser.add_argument("--k", default="0,5,10,20", help="comma-separated neighbourhood sizes (0: plain cosine)")
    args = parser.parse_args(argv)
    try:
        ks = [int(v) for v in args.k.split(",") if v.strip()]
        if not ks or min(ks) < 0:
            raise ValueError
    except ValueError:
        parser.error(f"--k takes comma-separated whole numbers >= 0, not {args.k!r}")
    run = open_run_or_say(args.run)
    if run is None:
        return 2
    table, vectors = run.embeddings()
    if not run.config.get("dev_fold"):
        print("note: not a --dev-fold run; these are validation and test numbers, not for choosing k",
              file=sys.stderr)
    print(format_table([report(table, vectors, k) for k in ks]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
