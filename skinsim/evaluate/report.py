"""Retrieval evaluation of a run: queries = validation, search space = test (and test + train).

`python -m skinsim.evaluate RUN` recomputes RUN/metrics.json from RUN/embeddings.parquet (keeping the leak check
that training copied there from the run's audit).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinsim.evaluate import metrics as M
from skinsim.runs.config import TrainConfig
from skinsim.runs.folder import open_run_or_say, write_atomic, write_json
from skinsim.search.neighbours import nearest

KNN_K = 5
KEPT = ("leak_check",)  # metrics.json blocks computed elsewhere (the audit's), which a recomputation keeps
SEED_FIGURE_QUERIES = 200


def neighbour_labels(table: pd.DataFrame, vectors: np.ndarray, queries: str, search: tuple[str, ...],
                     k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(query rows, search rows, neighbour indices into search rows, their distances) for a split pair."""
    q_rows = np.flatnonzero(table["split"].to_numpy() == queries)
    s_rows = np.flatnonzero(table["split"].isin(search).to_numpy())
    idx, dist = nearest(vectors[q_rows], vectors[s_rows], k)
    return q_rows, s_rows, idx, dist


def majority_label(labels: np.ndarray) -> str:
    """The most common label (ties: the first in sorted order): what an 'always the same answer' baseline gives."""
    counts = pd.Series(np.asarray(labels).astype(str)).value_counts()
    return str(min(counts.index[counts == counts.max()]))


def majority_baseline(baselines: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(label, metrics) of the majority-class baseline; runs before 2026-11-29 stored it as 'always_nv'."""
    if "majority" in baselines:
        return str(baselines["majority"].get("label", "?")), baselines["majority"]
    return "nv", baselines.get("always_nv") or {}


def quick_p_at_1(q_vec: np.ndarray, q_labels: np.ndarray, s_vec: np.ndarray, s_labels: np.ndarray) -> float:
    """P@1 of queries against a search space (the per-epoch validation number)."""
    idx, _ = nearest(q_vec, s_vec, 1)
    return float(M.precision_at_k(q_labels, s_labels[idx], 1).mean())


def retrieval_report(table: pd.DataFrame, vectors: np.ndarray, queries: str = "val",
                     search: tuple[str, ...] = ("test",), seed: int = 42) -> dict[str, Any]:
    """Every retrieval metric for one choice of queries and search space."""
    dx = table["dx"].to_numpy().astype(str)
    s_rows_all = np.flatnonzero(table["split"].isin(search).to_numpy())
    relevant_by_dx = pd.Series(dx[s_rows_all]).value_counts()
    k = int(max(10, relevant_by_dx.max()))
    q_rows, s_rows, idx, _ = neighbour_labels(table, vectors, queries, search, k)
    q, s = dx[q_rows], dx[s_rows]
    nb = s[idx]
    relevant = relevant_by_dx.reindex(q).fillna(0).to_numpy().astype(int)

    p1, p5, p10 = (M.precision_at_k(q, nb, k) for k in (1, 5, 10))
    r5, r10 = M.hit_at_k(q, nb, 5), M.hit_at_k(q, nb, 10)
    ap = M.average_precision_at_r(q, nb, relevant)
    vote = M.knn_vote(nb, KNN_K)
    top1 = nb[:, 0]
    labels = sorted(set(q) | set(s))  # whatever the dataset's labels are

    per_class = {}
    for c in labels:
        mask = q == c
        n = int(mask.sum())
        predicted_c = top1 == c
        per_class[c] = {
            "n_queries": n, "n_search": int((s == c).sum()),
            "p_at_1": float(p1[mask].mean()) if n else None,
            "p_at_1_ci95": list(M.wilson_interval(p1[mask].sum(), n)) if n else None,
            "p_at_5": float(p5[mask].mean()) if n else None,
            "p_at_10": float(p10[mask].mean()) if n else None,
            "r_at_5": float(r5[mask].mean()) if n else None,
            "map_at_r": float(ap[mask].mean()) if n else None,
            "top1_precision": float((q[predicted_c] == c).mean()) if predicted_c.any() else None,
            "knn_recall": float((vote[mask] == c).mean()) if n else None,
        }
    present = [c for c in labels if per_class[c]["n_queries"]]

    def macro_of(key: str) -> float:
        return float(np.mean([per_class[c][key] for c in present]))

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(q), size=min(SEED_FIGURE_QUERIES, len(q)), replace=False)
    seed_hits = p1[pick].sum()
    overall = {
        "p_at_1": float(p1.mean()), "p_at_5": float(p5.mean()), "p_at_10": float(p10.mean()),
        "map_at_r": float(ap.mean()), "r_at_1": float(p1.mean()), "r_at_5": float(r5.mean()),
        "r_at_10": float(r10.mean()),
        "macro_p_at_1": macro_of("p_at_1"), "macro_p_at_5": macro_of("p_at_5"),
        "macro_p_at_10": macro_of("p_at_10"), "macro_map_at_r": macro_of("map_at_r"),
        "knn_k": KNN_K, "knn_accuracy": float((vote == q).mean()),
        "knn_balanced_accuracy": M.balanced_accuracy(q, vote),
        "p_at_1_ci95": list(M.wilson_interval(p1.sum(), len(q))),
    }
    rand = M.random_retrieval_precision(q, s)
    train = dx[table["split"].to_numpy() == "train"]
    # the baseline may only know what training shows; without a train split, the search space stands in
    majority = majority_label(train if len(train) else s)
    always = (q == majority).astype(float)
    lesions = table["lesion_id"].to_numpy()
    return {
        "queries": queries, "search_space": "+".join(search),
        "n_queries": int(len(q)), "n_search": int(len(s)),
        "overall": overall,
        "per_class": per_class,
        "confusion": {"labels": labels, "matrix": M.confusion(q, top1, labels).tolist()},
        "seed_figure": {"n": int(len(pick)), "p_at_1": float(seed_hits / max(len(pick), 1)),
                        "ci95": list(M.wilson_interval(seed_hits, len(pick)))},
        "baselines": {
            "majority": {"label": majority, "p_at_1": float(always.mean()), "p_at_5": float(always.mean()),
                         "macro_p_at_1": M.macro(M.per_class_mean(q, always)),
                         "knn_accuracy": float(always.mean()),
                         "knn_balanced_accuracy": M.balanced_accuracy(q, np.full(len(q), majority))},
            "random": {"p_at_1": float(rand.mean()), "p_at_5": float(rand.mean()),
                       "macro_p_at_1": M.macro(M.per_class_mean(q, rand)),
                       "map_at_r": float(rand.mean())},
        },
        "lesion_overlap": float(np.isin(lesions[q_rows], lesions[s_rows]).mean()),
    }


def same_lesion_report(table: pd.DataFrame, vectors: np.ndarray, queries: tuple[str, ...] = ("val", "test"),
                       chunk: int = 1024) -> dict[str, Any]:
    """Re-identification: for each query image whose lesion has other images, are they its nearest images?

    The search space is every image of the dataset but the query itself. R@k: one of the lesion's other images
    is among the k nearest; mAP: average precision of the lesion's other images in the full ranking.
    """
    lesions = table["lesion_id"].to_numpy()
    size = pd.Series(lesions).map(pd.Series(lesions).value_counts()).to_numpy()
    q_rows = np.flatnonzero(table["split"].isin(queries).to_numpy() & (size > 1))
    if len(q_rows) == 0:
        return {"queries": "+".join(queries), "n_queries": 0, "search_space": "all images"}
    by_lesion = pd.Series(np.arange(len(lesions))).groupby(lesions).apply(np.asarray)
    first_hit, aps = [], []  # per query: the best rank of the lesion's other images, and their AP
    for start in range(0, len(q_rows), chunk):
        rows = q_rows[start:start + chunk]
        sims = vectors[rows] @ vectors.T
        sims[np.arange(len(rows)), rows] = -np.inf  # the query itself is not in its search space
        for i, q in enumerate(rows):
            others = by_lesion[lesions[q]]
            others = others[others != q]
            ranks = 1 + (sims[i][None, :] > sims[i, others][:, None]).sum(1)
            first_hit.append(ranks.min())
            aps.append(M.average_precision_from_ranks(ranks))
    first_hit = np.asarray(first_hit)
    r1, r5 = (first_hit <= 1).astype(float), (first_hit <= 5).astype(float)
    random_r1 = float(((size[q_rows] - 1) / (len(lesions) - 1)).mean())
    return {"queries": "+".join(queries), "n_queries": int(len(q_rows)), "search_space": "all images",
            "r_at_1": float(r1.mean()), "r_at_5": float(r5.mean()), "map": float(np.mean(aps)),
            "r_at_1_ci95": list(M.wilson_interval(r1.sum(), len(q_rows))),
            "random_r_at_1": random_r1}


def both_ways_report(table: pd.DataFrame, vectors: np.ndarray, splits: tuple[str, str] = ("val", "test"),
                     seed: int = 0) -> dict[str, Any]:
    """P@1, macro P@1 and per-class P@1 and MAP@R with the queries taken both ways (val -> test and test -> val
    pooled), beside val -> test alone, the macro figure with a bootstrap interval: the small classes (melanoma
    among them) rest on a few queries one way."""
    dx = table["dx"].to_numpy().astype(str)
    out: dict[str, Any] = {}
    pooled_q, pooled_hit, pooled_ap = [], [], []
    for q_split, s_split in (splits, splits[::-1]):
        s_dx = dx[table["split"].to_numpy() == s_split]
        if len(s_dx) == 0 or not (table["split"].to_numpy() == q_split).any():
            return {}
        relevant_by_dx = pd.Series(s_dx).value_counts()
        q_rows, s_rows, idx, _ = neighbour_labels(table, vectors, q_split, (s_split,), int(relevant_by_dx.max()))
        q, nb = dx[q_rows], dx[s_rows][idx]
        pooled_q.append(q)
        pooled_hit.append((nb[:, 0] == q).astype(float))
        pooled_ap.append(M.average_precision_at_r(q, nb, relevant_by_dx.reindex(q).fillna(0).to_numpy().astype(int)))
    for key, q, hit, ap in (("one_way", pooled_q[0], pooled_hit[0], pooled_ap[0]),
                            ("both_ways", np.concatenate(pooled_q), np.concatenate(pooled_hit),
                             np.concatenate(pooled_ap))):
        per_class = M.per_class_mean(q, hit)
        out[key] = {"n_queries": int(len(q)), "p_at_1": float(hit.mean()), "macro_p_at_1": M.macro(per_class),
                    "macro_p_at_1_ci95": list(M.macro_interval(q, hit, seed=seed)),
                    "per_class_p_at_1": per_class,
                    "per_class_map_at_r": M.per_class_mean(q, ap),
                    "per_class_n": {c: int((q == c).sum()) for c in per_class}}
    return {"splits": list(splits), **out}


def evaluate(table: pd.DataFrame, vectors: np.ndarray, seed: int = 42) -> dict[str, Any]:
    """The metrics.json block: val against test, val against test + train (`with_train`), same-lesion retrieval,
    and macro P@1 with queries both ways (`both_ways`)."""
    report = retrieval_report(table, vectors, "val", ("test",), seed)
    report["with_train"] = retrieval_report(table, vectors, "val", ("test", "train"), seed)
    report["same_lesion"] = same_lesion_report(table, vectors)
    report["both_ways"] = both_ways_report(table, vectors)
    return report


def summary(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    o, b = report["overall"], report["baselines"]
    majority, always = majority_baseline(b)
    lines = [f"queries {report['queries']} ({report['n_queries']}) -> search {report['search_space']} "
             f"({report['n_search']}), lesion overlap {report['lesion_overlap']:.3f}",
             f"P@1 {o['p_at_1']:.3f}  P@5 {o['p_at_5']:.3f}  P@10 {o['p_at_10']:.3f}  MAP@R {o['map_at_r']:.3f}  "
             f"macro P@1 {o['macro_p_at_1']:.3f}  kNN acc {o['knn_accuracy']:.3f}  "
             f"kNN bal.acc {o['knn_balanced_accuracy']:.3f}",
             f"baselines: always-{majority} P@1 {always['p_at_1']:.3f}, random P@1 {b['random']['p_at_1']:.3f}; "
             f"original figure (200 queries) P@1 {report['seed_figure']['p_at_1']:.3f} "
             f"[{report['seed_figure']['ci95'][0]:.3f}, {report['seed_figure']['ci95'][1]:.3f}]"]
    if "with_train" in report:
        w = report["with_train"]["overall"]
        lines.append(f"search test+train: P@1 {w['p_at_1']:.3f}  macro P@1 {w['macro_p_at_1']:.3f}  "
                     f"MAP@R {w['map_at_r']:.3f}")
    both = (report.get("both_ways") or {}).get("both_ways")
    if both:
        one = report["both_ways"]["one_way"]
        lines.append(f"macro P@1 val->test {one['macro_p_at_1']:.3f} [{one['macro_p_at_1_ci95'][0]:.3f}, "
                     f"{one['macro_p_at_1_ci95'][1]:.3f}]; both ways ({both['n_queries']} queries) "
                     f"{both['macro_p_at_1']:.3f} [{both['macro_p_at_1_ci95'][0]:.3f}, "
                     f"{both['macro_p_at_1_ci95'][1]:.3f}] (95% bootstrap)")
    same = report.get("same_lesion") or {}
    if same.get("n_queries"):
        lines.append(f"same lesion ({same['n_queries']} {same['queries']} images with another view, search all): "
                     f"R@1 {same['r_at_1']:.3f}  R@5 {same['r_at_5']:.3f}  mAP {same['map']:.3f}  "
                     f"(random R@1 {same['random_r_at_1']:.4f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: recompute and print a run's metrics."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.evaluate", description=__doc__)
    parser.add_argument("run", nargs="?", default="latest", help="run folder or name under data/runs")
    args = parser.parse_args(argv)
    run = open_run_or_say(args.run)
    if run is None:
        return 2
    table, vectors = run.embeddings()
    report = evaluate(table, vectors, seed=TrainConfig.from_dict(run.config).split_rng)
    path = Path(run.path) / "metrics.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    report.update({key: old[key] for key in KEPT if key in old})
    write_atomic(path, lambda tmp: write_json(tmp, report))
    print(f"{run.path}\n{summary(report)}")
    return 0

