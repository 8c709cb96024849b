"""The audit of one run: read it, compute its four tables, write them and audit.json atomically beside it."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from skinsim.audit import duplicates, labels, same_lesion
from skinsim.audit import outliers as outliers_module
from skinsim.audit.duplicates import RULES, auto_threshold, find_duplicates
from skinsim.audit.knn import indexed_neighbours, lesion_codes, neighbours, unit_rows
from skinsim.audit.labels import label_issues
from skinsim.audit.leaks import describe as describe_leaks
from skinsim.audit.leaks import leak_check
from skinsim.audit.outliers import outliers
from skinsim.audit.same_lesion import same_lesion_candidates
from skinsim.runs.folder import (
    Run,
    data_folders,
    load_run,
    write_atomic,
    write_json,
    write_parquet_with_meta,
    write_vectors,
)
from skinsim.search.vector_index import AUTO_EXACT_LIMIT, auto_spec

FORMAT_VERSION = 2  # 2: the "possibly the same lesion" table
FILES = {"duplicates": "audit_duplicates.parquet", "label_issues": "audit_label_issues.parquet",
         "outliers": "audit_outliers.parquet", "same_lesion": "audit_same_lesion.parquet"}
SCHEMAS = {"duplicates": duplicates.SCHEMA, "label_issues": labels.SCHEMA, "outliers": outliers_module.SCHEMA,
           "same_lesion": same_lesion.SCHEMA}
SINCE = {"same_lesion": 2}  # the format version that added a table: an older audit has none and is still whole
SAME_LESION_THRESHOLD = 0.5  # the probability from which a candidate counts as a likely leak
SUMMARY = "audit.json"
METADATA_KEY = b"skinsim.audit"
REQUIRED = ["image_id", "lesion_id", "split", "dx"]


class AuditError(ValueError):
    """Input the audit cannot work on; the message says what is wrong and the CLI exits with 2."""


def open_run(run_path: str | Path) -> tuple[Run, pd.DataFrame, np.ndarray]:
    """(run, metadata table, embeddings) of a run folder or name, or AuditError saying why not."""
    path = Path(run_path)
    if path.is_dir() and (path / "config.json").is_file() and not (path / "embeddings.parquet").is_file():
        raise AuditError(f"{path} has no embeddings.parquet, which the audit reads (training writes it last; "
                         "an unfinished run has none)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise AuditError(f"{path} is not a run folder: it has no config.json")
    try:
        run = load_run(run_path)
    except FileNotFoundError as err:
        raise AuditError(str(err)) from None
    except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        raise AuditError(f"cannot read the run {run_path}: {err}") from None
    try:
        table, vectors = run.embeddings()
    except Exception as err:  # pyarrow raises several unrelated types for a damaged file
        raise AuditError(f"cannot read {run.path / 'embeddings.parquet'}: {err}") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise AuditError(f"{run.path / 'embeddings.parquet'} lacks the columns {missing}")
    if len(table) < 2:
        raise AuditError(f"{run.path / 'embeddings.parquet'} holds {len(table)} images; the audit needs two")
    if not np.isfinite(vectors).all():
        raise AuditError(f"{run.path / 'embeddings.parquet'} holds non-finite numbers")
    return run, table, vectors


def read_audit_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """An audit table and the metadata it was written with (format_version, table, audit_id, params)."""
    arrow = pq.read_table(path)
    meta = json.loads((arrow.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    return arrow.to_pandas(), meta


@dataclass(frozen=True)
class AuditTables:
    """A run's stored audit: audit.json and its tables, and whether they all come from one audit."""

    summary: dict[str, Any]
    duplicates: pd.DataFrame
    label_issues: pd.DataFrame
    outliers: pd.DataFrame
    same_lesion: pd.DataFrame
    complete: bool  # False when a table is missing or was written by another audit than audit.json describes


def read_audit(run_path: str | Path) -> AuditTables | None:
    """The audit stored in a run folder, None when it has none, AuditError when it cannot be read."""
    path = Path(run_path)
    if not (path / SUMMARY).is_file():
        return None
    try:
        summary = json.loads((path / SUMMARY).read_text())
    except (OSError, ValueError) as err:
        raise AuditError(f"cannot read {path / SUMMARY}: {err}") from None
    if summary.get("format_version", 0) > FORMAT_VERSION:
        raise AuditError(f"{path / SUMMARY} has format {summary.get('format_version')}, newer than this skinsim "
                         f"reads ({FORMAT_VERSION}); update skinsim or audit the run again")
    tables, ids = {}, set()
    for name, file in FILES.items():
        if (path / file).is_file():
            try:
                tables[name], meta = read_audit_table(path / file)
            except Exception as err:  # pyarrow raises several unrelated types for a damaged file
                raise AuditError(f"cannot read {path / file}: {err}") from None
            ids.add(meta.get("audit_id"))
        else:
            tables[name] = SCHEMAS[name].empty_table().to_pandas()
            if summary.get("format_version", 1) >= SINCE.get(name, 1):
                ids.add(None)
    return AuditTables(summary=summary, complete=ids == {summary.get("audit_id")}, **tables)


def run_audit(run_path: str | Path, k: int = 10, dup_k: int = 10, dup_threshold: float | None = None,
              phash_threshold: int = 4, smoothing: float = 0.1, images: bool = True,
              data_dir: str | Path | None = None, block_bytes: int = 64 << 20, quiet: bool = False) -> dict[str, Any]:
    """Audit a run: write audit_duplicates/label_issues/outliers/same_lesion.parquet and audit.json into it; return
    the summary.

    `k` neighbours vote for labels and score outliers; `dup_k` nearest are duplicate candidates; `dup_threshold`
    is the cosine distance for 'almost the same embedding' (None: `auto_threshold`). Images are looked for in
    `data_dir`, else `skinsim.runs.folder.data_folders`; `images=False` skips them. Existing run files are only read.
    """
    if min(k, dup_k) < 1 or phash_threshold < 0 or smoothing <= 0:
        raise AuditError("k and dup_k must be at least 1, phash_threshold at least 0, smoothing above 0")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise AuditError(f"the image folder {data_dir} does not exist")
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        seconds[name] = round(now - since, 3)
        return now

    run, table, raw = open_run(run_path)
    table = table.reset_index(drop=True)
    for col in REQUIRED + ["dx_type", "filed_lesion_id"]:
        if col in table:  # the tables' schemas hold text ids, whatever type a run stored them as
            table[col] = table[col].astype(object).where(table[col].isna(), table[col].astype(str))
    vectors = unit_rows(raw)  # a copy: the run's own embeddings are never touched
    t = lap("read", t_start)

    lesions = lesion_codes(table["lesion_id"])
    largest = int(np.bincount(lesions).max())
    # enough neighbours that k of them come from other lesions without a second search, bounded for odd data
    m = max(dup_k, k + min(largest - 1, 64))
    if len(vectors) > AUTO_EXACT_LIMIT:
        nb = indexed_neighbours(vectors, lesions, k=k, m=m, spec=auto_spec(len(vectors)))
    else:
        nb = neighbours(vectors, lesions, k=k, m=m, block_bytes=block_bytes)
    t = lap("knn", t)

    hashes, folders = None, []
    if images and "path" in table.columns:
        from skinsim.audit.images import hash_images, locate_images

        folders = [Path(data_dir)] if data_dir is not None else data_folders(run.config)
        files = locate_images(table["path"], folders)
        if any(f is not None for f in files):
            hashes = hash_images(files)
    t = lap("hash", t)

    threshold = auto_threshold(nb) if dup_threshold is None else float(dup_threshold)
    dups = find_duplicates(table, vectors, nb, hashes, threshold, phash_threshold, dup_k)
    t = lap("duplicates", t)
    issues = label_issues(table, nb, smoothing)
    t = lap("label_issues", t)
    outs = outliers(table, nb, k)
    t = lap("outliers", t)
    # pairs filed under two of the dataset's own ids, reviewed merges or not: a merged pair stays listed (with its
    # verdict in the dashboard) and, being one lesion of the run, on one side of its split
    filed = table.assign(lesion_id=table["filed_lesion_id"]) if "filed_lesion_id" in table else table
    same, calibration = same_lesion_candidates(filed, vectors, nb, lesion_codes(filed["lesion_id"]), hashes, k=k)
    leaks = leak_check(same, table, run.config, SAME_LESION_THRESHOLD)
    t = lap("same_lesion", t)

    audit_id = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = {"knn": "exact" if len(vectors) <= AUTO_EXACT_LIMIT else auto_spec(len(vectors)), "k": k,
              "dup_k": dup_k, "dup_threshold": threshold, "dup_threshold_auto": dup_threshold is None,
              "phash_threshold": phash_threshold, "smoothing": smoothing, "images": images}
    for name, frame in (("duplicates", dups), ("label_issues", issues), ("outliers", outs), ("same_lesion", same)):
        meta = {"format_version": FORMAT_VERSION, "table": name, "audit_id": audit_id, "run": run.name,
                "params": params}
        write_atomic(run.path / FILES[name],
                     lambda p: write_parquet_with_meta(p, frame, METADATA_KEY, meta, SCHEMAS[name]))
    t = lap("write", t)
    seconds["total"] = round(time.perf_counter() - t_start, 3)

    likely = same["probability"] >= SAME_LESION_THRESHOLD
    summary = {
        "format_version": FORMAT_VERSION, "audit_id": audit_id, "run": run.name,
        "n_images": len(table), "dim": int(raw.shape[1]),
        "has_checkpoint": (run.path / "checkpoint.safetensors").is_file(),
        "params": params,
        "images": {"folders": [str(f) for f in folders], "found": hashes.found if hashes else 0,
                   "unreadable": hashes.unreadable if hashes else 0},
        "counts": {
            "duplicates": len(dups),
            "duplicates_by_rule": {r: int((dups["rule"] == r).sum()) for r in RULES},
            "duplicates_crossing_split": int(dups["crosses_split"].sum()),
            "duplicates_other_lesion": int((~dups["same_lesion"]).sum()),
            "duplicates_crossing_split_other_lesion": int((dups["crosses_split"] & ~dups["same_lesion"]).sum()),
            "label_issues": int(issues["is_label_issue"].sum()),
            "label_issues_histo": int((issues["is_label_issue"] & (issues["dx_type"] == "histo")).sum()),
            "same_lesion": len(same),
            "same_lesion_likely": int(likely.sum()),
            "same_lesion_likely_crossing_split": int((likely & same["crosses_split"]).sum()),
        },
        "same_lesion": {"threshold": SAME_LESION_THRESHOLD, "how": calibration.describe(),
                        "held_out_auc": None if np.isnan(calibration.auc) else round(calibration.auc, 4)},
        "leak_check": leaks,
        "seconds": seconds,
        "files": list(FILES.values()),
    }
    # written last: a summary whose audit_id matches the tables' says they belong together
    write_atomic(run.path / SUMMARY, lambda p: write_json(p, summary))
    if not quiet:
        print(format_summary(summary))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal: counts per rule, flagged labels and seconds."""
    c, s, im = summary["counts"], summary["seconds"], summary["images"]
    by_rule = ", ".join(f"{r} {n}" for r, n in c["duplicates_by_rule"].items())
    return "\n".join([
        f"audit of {summary['run']}: {summary['n_images']} images, {im['found']} image files found"
        + (f" ({im['unreadable']} unreadable)" if im["unreadable"] else ""),
        f"near-duplicate pairs: {c['duplicates']} ({by_rule}); {c['duplicates_crossing_split']} cross splits, "
        f"{c['duplicates_crossing_split_other_lesion']} of them between different lesions; "
        f"embedding threshold {summary['params']['dup_threshold']:.3g}",
        f"label-issue candidates: {c['label_issues']} flagged by cleanlab ({c['label_issues_histo']} histo-confirmed)",
        f"possibly the same lesion under two ids: {c['same_lesion_likely']} pairs with probability >= "
        f"{summary['same_lesion']['threshold']}, {c['same_lesion_likely_crossing_split']} of them across splits "
        f"({c['same_lesion']} candidates listed)",
        *([describe_leaks(summary["leak_check"])] if "leak_check" in summary else []),
        "seconds: " + ", ".join(f"{name} {v:.2f}" for name, v in s.items()),
        "wrote " + ", ".join(summary["files"] + [SUMMARY]),
    ])


def synthetic_run(folder: Path, n: int, dim: int = 128, seed: int = 0) -> Path:
    """Write a run folder with `n` clustered unit vectors (7 classes, 1-3 views per lesion) and no images."""
    rng = np.random.default_rng(seed)
    share = np.array([327, 514, 1099, 115, 1113, 6705, 142], dtype=float)
    classes = np.array(["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"])
    n_lesions = max(1, int(n / 1.4))
    lesion = np.sort(rng.integers(0, n_lesions, size=n))
    lesion_dx = rng.choice(len(classes), size=n_lesions, p=share / share.sum())
    centres = rng.normal(size=(len(classes), dim))
    lesion_centres = centres[lesion_dx] + 0.8 * rng.normal(size=(n_lesions, dim))
    vectors = lesion_centres[lesion] + 0.3 * rng.normal(size=(n, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    table = pd.DataFrame({
        "image_id": [f"SYN_{i:07d}" for i in range(n)], "lesion_id": [f"LES_{v:07d}" for v in lesion],
        "split": rng.choice(["train", "val", "test"], size=n_lesions, p=[0.8, 0.1, 0.1])[lesion],
        "dx": classes[lesion_dx[lesion]], "dx_type": rng.choice(["histo", "follow_up"], size=n),
        "age": np.full(n, 50.0), "sex": "unknown", "localization": "back", "path": None,
    })
    folder.mkdir(parents=True, exist_ok=True)
    write_vectors(folder / "embeddings.parquet", table, vectors)
    write_json(folder / "config.json", {"data_dir": None, "meta": {"complete": True, "synthetic": True}})
    return folder


def bench(n: int = 100_000, dim: int = 128, k: int = 10) -> dict[str, Any]:
    """Time the audit on `n` synthetic clustered `dim`-d unit vectors without images; returns its summary."""
    with tempfile.TemporaryDirectory(prefix="skinsim-audit-bench-") as tmp:
        run = synthetic_run(Path(tmp) / "bench", n, dim)
        return run_audit(run, k=k, images=False)
