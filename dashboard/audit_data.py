"""The run's stored dataset audit (near-duplicates, label-issue candidates, outliers, pairs possibly of one lesion
under two ids) for the data quality page, behind Streamlit's cache (run as a path string plus `version`, as in
dashboard.run_data, and each audit file's mtime), and the filters and scores the page shows with it."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.run_data import cached_embeddings, mtime, stamp

AUDIT_FILES = ("audit.json", "audit_duplicates.parquet", "audit_label_issues.parquet", "audit_outliers.parquet",
               "audit_same_lesion.parquet")
FILTER_COLUMNS = ("dx", "split", "dx_type")  # the page's filters, in the order `passes` takes them
DUPLICATE_SCORES = ["rule", "cosine_distance", "phash_distance", "pixel_distance", "same_lesion", "crosses_split"]


class AuditUnreadable(RuntimeError):
    """The run's audit files exist but cannot be read; the message says why."""


def audit(run: Path) -> Any:
    """The run's stored audit (skinsim.audit.AuditTables), or None when `python -m skinsim.audit` has not run."""
    if not (Path(run) / "audit.json").is_file():
        return None
    versions = tuple(mtime(Path(run) / name) for name in AUDIT_FILES)
    return _audit(str(run), stamp(run), versions)


@st.cache_data(show_spinner="Reading the audit ...", max_entries=8)
def _audit(run: str, version: float, audit_versions: tuple[float, ...]) -> Any:
    from skinsim.audit import AuditError, read_audit

    try:
        found = read_audit(run)
    except AuditError as err:
        raise AuditUnreadable(str(err)) from None
    meta, _ = cached_embeddings(run, version)
    extra = meta.drop_duplicates("image_id").set_index("image_id")[["dx_type"]] if "dx_type" in meta else None
    # the page filters every list by dx_type, which the pair and outlier tables do not store
    if extra is not None:
        dups, same = (pairs.assign(dx_type_a=pairs["image_a"].map(extra["dx_type"]),
                                   dx_type_b=pairs["image_b"].map(extra["dx_type"]))
                      for pairs in (found.duplicates, found.same_lesion))
        outs = found.outliers.join(extra, on="image_id") if "dx_type" not in found.outliers else found.outliers
        found = dataclasses.replace(found, duplicates=dups, outliers=outs, same_lesion=same)
    return found


def has_same_lesion(summary: dict[str, Any]) -> bool:
    """Whether the audit looked for one lesion filed under two ids (audits before format 2 did not)."""
    return "same_lesion" in summary and "same_lesion_likely_crossing_split" in summary.get("counts", {})


def _pairs(frame: pd.DataFrame) -> set[frozenset[str]]:
    return {frozenset(p) for p in zip(frame["image_a"].astype(str), frame["image_b"].astype(str))}


def leaking_pairs(found: Any) -> int:
    """Pairs across splits that may leak a lesion, each once: near-duplicate pairs across splits
    (`counts.duplicates_crossing_split`) plus pairs possibly of one lesion with a probability from the audit's
    threshold across splits (`counts.same_lesion_likely_crossing_split`), less the pairs that are both."""
    counts = found.summary["counts"]
    total = counts["duplicates_crossing_split"]
    if not has_same_lesion(found.summary):
        return total
    dups, same = found.duplicates, found.same_lesion
    likely = same[(same["probability"] >= found.summary["same_lesion"]["threshold"]) & same["crosses_split"]]
    both = _pairs(dups[dups["crosses_split"]]) & _pairs(likely)
    return total + counts["same_lesion_likely_crossing_split"] - len(both)


def same_lesion_shown(pairs: pd.DataFrame, flt: tuple[set[str], set[str], set[str]], at_least: float,
                      crossing: bool) -> pd.DataFrame:
    """The candidate pairs the page lists, best first: either image passes the filters, the probability is at
    least `at_least`, and (when `crossing`) the two images are in different splits."""
    keep = (passes(pairs, flt, "_a") | passes(pairs, flt, "_b")) & (pairs["probability"] >= at_least)
    if crossing:
        keep &= pairs["crosses_split"].astype(bool)
    return pairs[keep].sort_values("rank")


def passes(frame: pd.DataFrame, flt: tuple[set[str], set[str], set[str]], suffix: str = "") -> pd.Series:
    """Which rows of an audit table pass the diagnosis, split and dx_type filters (empty = all); `suffix` picks
    one image of a duplicate pair ('_a' or '_b')."""
    keep = pd.Series(True, index=frame.index)
    for column, allowed in zip(FILTER_COLUMNS, flt):
        if allowed and f"{column}{suffix}" in frame:
            keep &= frame[f"{column}{suffix}"].astype(str).isin(allowed)
    return keep


def duplicate_scores(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per image of the duplicate pairs, indexed by image_id: the image it pairs with and the pair's scores
    (an image in several pairs keeps its first)."""
    rows = []
    for side, other_side in (("a", "b"), ("b", "a")):
        part = pairs[[f"image_{side}", f"image_{other_side}", *DUPLICATE_SCORES]]
        rows.append(part.rename(columns={f"image_{side}": "image_id", f"image_{other_side}": "pair_with"}))
    return pd.concat(rows).drop_duplicates("image_id").set_index("image_id")
