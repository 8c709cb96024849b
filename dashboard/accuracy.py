"""Retrieval accuracy for the accuracy page: P@1, P@k and recall@k per class and overall, recomputed from a run's
stored embeddings (behind Streamlit's cache, run as a path string plus `version`) with their baselines and
intervals, and the tables the page shows beside them from the runs' metrics.json."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.run_data import cached_embeddings, classes_all, run_info, split_rows, stamp
from skinsim.evaluate import metrics as M
from skinsim.evaluate.report import majority_label
from skinsim.search.neighbours import nearest

METRICS = [("p_at_1", "P@1"), ("p_at_k", "P@{k}"), ("recall_at_k", "recall@{k}")]


@dataclass(frozen=True)
class Retrieval:
    """Retrieval quality at one k, recomputed from stored embeddings (queries = val, search = test)."""

    k: int
    n_queries: int
    n_search: int
    per_class: pd.DataFrame  # index dx; p_at_1, p_at_k, recall_at_k with _lo/_hi 95% bounds; baseline columns
    overall: pd.DataFrame  # index metric; columns micro, macro, majority_micro, ..., random_macro
    confusion: pd.DataFrame  # rows: query dx, columns: top-1 neighbour dx, counts
    majority: str  # the label the majority baseline always answers (the commonest in the train split)


def retrieval(run: Path, k: int) -> Retrieval | None:
    """Per-class and overall P@1, P@k and recall@k at `k`, or None when the run lacks val or test images."""
    return retrieval_at_k(str(run), stamp(run), int(k))


@st.cache_data(show_spinner="Computing neighbours ...", max_entries=64)
def retrieval_at_k(run: str, version: float, k: int) -> Retrieval | None:
    """The one place the accuracy page's numbers are computed: queries = val, search space = test."""
    meta, vectors = cached_embeddings(run, version)
    queries = split_rows(meta, ("val",))
    gallery = split_rows(meta, ("test",))
    if len(queries) == 0 or len(gallery) == 0:
        return None
    k = max(1, min(k, len(gallery)))
    idx, _ = nearest(vectors[queries], vectors[gallery], k)
    dx = meta["dx"].to_numpy().astype(str)
    train = dx[meta["split"].to_numpy() == "train"]
    majority = majority_label(train if len(train) else dx[gallery])
    return _score(dx[queries], dx[gallery][idx], dx[gallery], k, majority)


def _score(query_dx: np.ndarray, labels: np.ndarray, search_dx: np.ndarray, k: int, majority: str) -> Retrieval:
    # labels: (n_queries, k) diagnoses of each query's neighbours, nearest first
    per_query = {"p_at_1": M.precision_at_k(query_dx, labels, 1), "p_at_k": M.precision_at_k(query_dx, labels, k),
                 "recall_at_k": M.hit_at_k(query_dx, labels, k)}
    random_p = M.random_retrieval_precision(query_dx, search_dx)
    baselines = {"random_p_at_1": random_p, "random_p_at_k": random_p,
                 # chance that at least one of k random picks has the query's diagnosis
                 "random_recall_at_k": 1 - (1 - random_p) ** k}
    always = (query_dx == majority).astype(float)
    baselines.update({f"majority_{m}": always for m in per_query})
    rows = []
    for c in classes_all(query_dx):
        mask = query_dx == c
        row: dict[str, Any] = {"dx": c, "n_queries": int(mask.sum()), "n_search": int((search_dx == c).sum())}
        for metric, values in per_query.items():
            row[metric] = float(values[mask].mean())
            row[f"{metric}_lo"], row[f"{metric}_hi"] = _interval(metric, values[mask])
        row.update({name: float(values[mask].mean()) for name, values in baselines.items()})
        rows.append(row)
    per_class = pd.DataFrame(rows).set_index("dx")
    overall = {}
    for metric, values in per_query.items():
        lo, hi = _interval(metric, values)
        overall[metric] = {"micro": float(values.mean()), "micro_lo": lo, "micro_hi": hi,
                           "macro": float(per_class[metric].mean())}
        for base in ("random", "majority"):
            overall[metric][f"{base}_micro"] = float(baselines[f"{base}_{metric}"].mean())
            overall[metric][f"{base}_macro"] = float(per_class[f"{base}_{metric}"].mean())
    everything = classes_all(query_dx, labels[:, 0])
    confusion = pd.DataFrame(M.confusion(query_dx, labels[:, 0], everything), index=pd.Index(everything,
                             name="query diagnosis"), columns=pd.Index(everything, name="top-1 neighbour diagnosis"))
    return Retrieval(k=k, n_queries=len(query_dx), n_search=len(search_dx), per_class=per_class,
                     overall=pd.DataFrame(overall).T, confusion=confusion, majority=majority)


def _interval(metric: str, values: np.ndarray) -> tuple[float, float]:
    # P@k is a mean of fractions, not a count of successes, so Wilson's interval does not apply to it
    return mean_interval(values) if metric == "p_at_k" else M.wilson_interval(values.sum(), len(values))


def mean_interval(values: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean of per-query values in [0, 1]."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / np.sqrt(n) if n > 1 else 1.0
    return (max(0.0, mean - half), min(1.0, mean + half))


def overall_table(results: dict[str, Retrieval]) -> pd.DataFrame:
    """Micro and macro averages of each run beside its baselines, one row per run and metric."""
    rows = []
    for name, res in results.items():
        for metric, label in METRICS:
            o = res.overall.loc[metric]
            rows.append({"run": name, "metric": label.format(k=res.k), "micro": o["micro"], "macro": o["macro"],
                         "majority (micro)": o["majority_micro"], "random (micro)": o["random_micro"],
                         "random (macro)": o["random_macro"]})
    return pd.DataFrame(rows)


def same_lesion_table(runs: dict[str, Path]) -> pd.DataFrame | None:
    """The stored same-lesion block of each run's metrics.json (runs older than the metric have none)."""
    rows = []
    for name, path in runs.items():
        same = run_info(path).metrics.get("same_lesion") or {}
        if same.get("n_queries"):
            lo, hi = same["r_at_1_ci95"]
            rows.append({"run": name, "queries": same["n_queries"], "R@1": same["r_at_1"], "R@1 95% low": lo,
                         "R@1 95% high": hi, "R@5": same["r_at_5"], "mAP": same["map"],
                         "random R@1": same["random_r_at_1"]})
    return pd.DataFrame(rows) if rows else None


def both_ways_table(runs: dict[str, Path]) -> pd.DataFrame | None:
    """Macro P@1 val -> test and with test -> val pooled, with bootstrap intervals (runs before it have none)."""
    rows = []
    for name, path in runs.items():
        block = run_info(path).metrics.get("both_ways") or {}
        for key, label in (("one_way", "val -> test"), ("both_ways", "val -> test and test -> val")):
            if block.get(key):
                b = block[key]
                lo, hi = b["macro_p_at_1_ci95"]
                rows.append({"run": name, "queries": label, "n": b["n_queries"], "macro P@1": b["macro_p_at_1"],
                             "95% low": lo, "95% high": hi,
                             "smallest class": min(b["per_class_n"], key=b["per_class_n"].get),
                             "its queries": min(b["per_class_n"].values())})
    return pd.DataFrame(rows) if rows else None
