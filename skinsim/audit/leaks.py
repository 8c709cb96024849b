"""The leak check: how many likely "possibly the same lesion" pairs cross a run's split, before and after the
reviewed merges, and what the reviewers said of each.

A pair of images filed under two lesion ids that shows one lesion leaks when its two images fall into two splits:
one can be the query and the other its answer. Merging reviewed `same` pairs (skinsim.data.merges) keeps them on
one side, so after the merges no pair judged the same should cross; the pairs that still cross are those judged
unsure or different, and those nobody reviewed yet. "Before" is the split the run's seed draws from the dataset's
own lesion ids, as the run would have been split without the merges.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinsim.data.merges import MergeError, applied_path, applied_record, read_merges
from skinsim.data.splits import dev_fold, make_split
from skinsim.runs.config import TrainConfig

VERDICT_KEYS = ("same", "different", "unsure", "unreviewed")


def split_without_merges(table: pd.DataFrame, config: dict[str, Any]) -> np.ndarray | None:
    """The split the run's protocol and seed draw from the dataset's own lesion ids (`filed_lesion_id`); None when
    the run merged no lesions or records no split of its own."""
    if "filed_lesion_id" not in table or not config.get("split"):
        return None
    cfg = TrainConfig.from_dict(config)
    filed = table.assign(lesion_id=table["filed_lesion_id"])
    split = make_split(filed, cfg.split, cfg.split_rng)
    return dev_fold(filed.assign(split=split)) if cfg.dev_fold else split


def read_verdicts(path: Path | None) -> dict[frozenset, str]:
    """Each reviewed pair's verdict, as the merges file says now; empty when there is no file or it is unreadable."""
    if path is None or not path.is_file():
        return {}
    try:
        rows = read_merges(path)
    except MergeError:
        return {}
    return {frozenset(pair): v for *pair, v in zip(rows["image_a"], rows["image_b"], rows["verdict"])}


def crossing(pairs: pd.DataFrame, image_ids: pd.Series, split: np.ndarray,
             verdicts: dict[frozenset, str]) -> dict[str, Any]:
    """How many `pairs` (image_a, image_b) have their two images in two splits, and those by verdict."""
    side = dict(zip(image_ids.astype(str), split))
    crosses = np.array([side[a] != side[b] for a, b in zip(pairs["image_a"], pairs["image_b"])], dtype=bool)
    said = [verdicts.get(frozenset((a, b)), "unreviewed") for a, b in zip(pairs["image_a"], pairs["image_b"])]
    said = np.array(said, dtype=object)
    return {"crossing": int(crosses.sum()), "by_verdict": {v: int((crosses & (said == v)).sum()) for v in VERDICT_KEYS}}


def leak_check(candidates: pd.DataFrame, table: pd.DataFrame, config: dict[str, Any],
               threshold: float) -> dict[str, Any]:
    """The candidates with probability >= `threshold` that cross the split drawn without the reviewed merges
    ("before_merges") and the run's own split ("after_merges"), each with the merges file's verdicts on them."""
    likely = candidates[candidates["probability"] >= threshold]
    # the file the run applied, as config.json records it (skinsim.data.merges.recorded_path)
    recorded = applied_record(config).get("path")
    path = applied_path(recorded) if recorded else None
    verdicts = read_verdicts(path)
    after = crossing(likely, table["image_id"], table["split"].to_numpy(), verdicts)
    unmerged = split_without_merges(table, config) if path is not None else None
    before = after if unmerged is None else crossing(likely, table["image_id"], unmerged, verdicts)
    return {"threshold": threshold, "likely": len(likely), "merges": recorded,
            "before_merges": before, "after_merges": after}


def describe(check: dict[str, Any]) -> str:
    """One line: the likely pairs across splits before and after the merges, and the verdicts on those left."""
    after = check["after_merges"]
    said = ", ".join(f"{n} {'not reviewed' if v == 'unreviewed' else v}" for v, n in after["by_verdict"].items() if n)
    head = f"leak check: {check['likely']} pairs possibly of one lesion (p >= {check['threshold']:g}); "
    if check["merges"] is None:
        return head + f"{after['crossing']} cross the split (no reviewed merges applied)" + (f": {said}" if said else "")
    return (head + f"{check['before_merges']['crossing']} would cross the split without the reviewed merges, "
            f"{after['crossing']} cross the run's split" + (f" ({said})" if said else ""))
