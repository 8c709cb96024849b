"""Plain-words summaries of a run: what it was trained on and how, and its headline numbers beside baselines."""
from __future__ import annotations

from typing import Any

import pandas as pd

from skinsim.evaluate.report import majority_baseline

HEADLINE = [("p_at_1", "P@1"), ("p_at_5", "P@5"), ("p_at_10", "P@10"), ("map_at_r", "mAP@R"),
            ("macro_p_at_1", "macro P@1"), ("r_at_5", "recall@5"), ("knn_balanced_accuracy", "kNN balanced acc.")]
# config keys (skinsim.runs.config.TrainConfig) worth naming on the home page; the rest stay in the full-config expander
TOPICS = {
    "data": ("data_dir", "split", "seed", "split_seed", "image_size"),
    "model": ("backbone", "pretrained", "em", "freeze", "tta"),
    "training": ("preset", "mining", "loss_margin", "batch_size", "samples_per_class", "class_power", "optimizer",
                 "lr", "weight_decay", "scheduler", "gamma", "step_size", "epochs", "max_steps", "cache_views",
                 "device"),
}
SPLIT_PROTOCOLS = {
    "lesion": "by lesion: all images of a lesion fall in one split, so no lesion is both query and answer",
    "image": "by image (the original project's protocol): images of one lesion can land in different splits, "
             "which flatters retrieval",
}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {'a.b': value}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def topic(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The config entries of one topic that the run records, in the topic's order."""
    return {key: config[key] for key in TOPICS[name] if key in config}


def split_protocol(config: dict[str, Any]) -> str:
    """The split protocol in words."""
    split = config.get("split")
    return SPLIT_PROTOCOLS.get(str(split), f"`{split}`" if split is not None else "not recorded")


def created(config: dict[str, Any]) -> str:
    """When the run was made, as the config records it."""
    meta = config.get("meta") or {}
    for key in ("created", "created_at", "date", "time", "started"):
        if meta.get(key):
            return str(meta[key]).replace("T", " ")[:19]
    return "unknown"


def majority(metrics: dict[str, Any]) -> str:
    """The label of the run's majority-class baseline ('nv' for HAM10000)."""
    return majority_baseline(metrics.get("baselines") or {})[0]


def headline(metrics: dict[str, Any]) -> pd.DataFrame:
    """The run's overall metrics beside the majority-class ('always-nv' for HAM10000) and random baselines."""
    overall = metrics.get("overall") or {}
    baselines = metrics.get("baselines") or {}
    majority, always = majority_baseline(baselines)
    rows = []
    for key, label in HEADLINE:
        if key not in overall:
            continue
        rows.append({"metric": label, "this run": overall.get(key), f"always-{majority}": always.get(key),
                     "random": (baselines.get("random") or {}).get(key)})
    columns = ["metric", "this run", f"always-{majority}", "random"]
    table = pd.DataFrame(rows, columns=columns).set_index("metric")
    return table.apply(pd.to_numeric, errors="coerce")  # None -> NaN, shown as a dash


def split_counts(meta: pd.DataFrame) -> pd.DataFrame:
    """Images and lesions per split."""
    grouped = meta.groupby("split")
    table = pd.DataFrame({"images": grouped.size(), "lesions": grouped["lesion_id"].nunique()})
    order = [s for s in ("train", "val", "test") if s in table.index]
    return table.reindex(order + [s for s in table.index if s not in order])
