"""Retrieval benchmark on HAM10000: method x split protocol -> P@1, macro P@1, MAP@R, kNN balanced accuracy, time.

    python -m skinsim.benchmark --data-dir ../shared/ham10000

Rows: always-nv, random retrieval, raw-pixel kNN, frozen ImageNet EfficientNet-Lite0 features, the original
project's recipe (`--preset seed`, shortened to `--seed-steps` batches unless --seed-steps 0), the default
recipe and `--preset full`. Trained rows reuse finished runs named bench-<method>-<protocol> under data/runs when
their config.json holds the recipe asked for, and train them otherwise.
Queries are the validation split, the search space the test split, for both protocols.

A second table trains the old default recipe (before issue 8) with each of `--train-seeds` on the same lesion
split and reports their mean, standard deviation and range: runs are deterministic for one seed, so this is the
noise a change of recipe has to beat. A third trains the old default, the default, the
default at lesion weight 0.5 and `--preset full` (`--recipes` picks some) on each of `--split-seeds` (training seed
42) and reports val -> test once per recipe and split, with mean and spread, beside frozen ImageNet Lite0 features
on each of those splits, then each recipe's per-class P@1, melanoma first.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from skinsim.data import load_dataset, resolve_data_dir
from skinsim.data.images import decode_all
from skinsim.data.merges import applied_record, file_digest, merges_file, with_own_merges
from skinsim.data.splits import make_split
from skinsim.evaluate.report import both_ways_report, majority_baseline, retrieval_report, same_lesion_report
from skinsim.model.embedder import Embedder
from skinsim.model.transforms import normalise
from skinsim.runs import folder as runs
from skinsim.runs.config import PRESETS, TrainConfig, preset

PROTOCOLS = ("lesion", "image")
SPLITS_TITLE = "\nrecipes over split seeds (training seed 42; val -> test)\n"
PER_CLASS_TITLE = "\nper-class P@1 of each recipe, mean over the split seeds (val -> test; queries summed)\n\n"
PIXEL_SIZE = (24, 32)


def pixel_vectors(data_dir: Path, paths: list[str]) -> np.ndarray:
    """Raw pixels at 24x32, centred and L2-normalised, as embeddings."""
    x = decode_all(data_dir, paths, PIXEL_SIZE).reshape(len(paths), -1).astype(np.float32)
    x -= x.mean(0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def frozen_vectors(data_dir: Path, paths: list[str], size: tuple[int, int] = (150, 200)) -> np.ndarray:
    """Globally pooled ImageNet EfficientNet-Lite0 features, L2-normalised, with no training."""
    model = Embedder("efficientnet_lite0", em=1, pretrained="imagenet").eval()
    images = decode_all(data_dir, paths, size)
    feats = []
    with torch.no_grad():
        for i in range(0, len(images), 32):
            feats.append(model.trunk(normalise(images[i:i + 32], model.mean, model.std), len(model.stages)))
    x = torch.cat(feats).numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def row(method: str, protocol: str, report: dict, seconds: float | None, note: str = "") -> dict:
    """One table row from a retrieval report."""
    o = report["overall"]
    mel = report.get("per_class", {}).get("mel") or {}
    both = (report.get("both_ways") or {}).get("both_ways") or {}
    with_train = report.get("with_train", {})
    return {"method": method, "protocol": protocol, "P@1": o["p_at_1"], "macro P@1": o["macro_p_at_1"],
            "mel P@1": mel.get("p_at_1"), "MAP@R": o["map_at_r"], "kNN bal. acc": o["knn_balanced_accuracy"],
            "P@1 (search +train)": with_train.get("overall", {}).get("p_at_1"),
            "same-lesion R@1": (report.get("same_lesion") or {}).get("r_at_1"),
            "macro P@1 both ways": both.get("macro_p_at_1"),
            # melanoma rests on ~111 queries one way: its MAP@R, both ways and with train searched too
            "mel MAP@R": mel.get("map_at_r"), "mel P@1 both ways": both.get("per_class_p_at_1", {}).get("mel"),
            "mel MAP@R both ways": both.get("per_class_map_at_r", {}).get("mel"),
            "mel P@1 (search +train)": (with_train.get("per_class", {}).get("mel") or {}).get("p_at_1"),
            "train+embed s": seconds, "note": note}


def baseline_row(method: str, protocol: str, report: dict) -> dict:
    """A row for always-nv (the majority class) or random retrieval, from a report's baselines block."""
    b = majority_baseline(report["baselines"])[1] if method == "always-nv" else report["baselines"][method]
    mel = 0.0 if method == "always-nv" else None
    return {"method": method, "protocol": protocol, "P@1": b["p_at_1"], "macro P@1": b["macro_p_at_1"],
            "mel P@1": mel, "MAP@R": b.get("map_at_r"), "kNN bal. acc": b.get("knn_balanced_accuracy"),
            "P@1 (search +train)": None,
            "same-lesion R@1": (report.get("same_lesion") or {}).get("random_r_at_1") if method == "random" else None,
            "macro P@1 both ways": None, "mel MAP@R": None, "mel P@1 both ways": None, "mel MAP@R both ways": None,
            "mel P@1 (search +train)": None, "train+embed s": 0.0, "note": "expected value" if method == "random" else ""}


def trained_row(method: str, protocol: str, data_dir: Path, overrides: dict, note: str, force: bool,
                name: str | None = None, start: str | None = None) -> dict:
    """Reuse or train the run `name` (default bench-<method>-<protocol>) and report its stored metrics and times.

    The recipe is the preset `start` (default: the one named `method`, else the default) with `overrides`.
    """
    folder = runs.runs_dir() / (name or f"bench-{method}-{protocol}")
    # eager and float32: docs/results.md's runs were made so; a compiled cache would make each of them another run,
    # and bfloat16 embedding passes would round their stored embeddings differently
    overrides = {"compile": "off", "precision": "fp32", **overrides}
    start = start or (method if method in PRESETS else "default")
    cfg = preset(start, data_dir=str(data_dir), split=protocol, **overrides)
    stored = runs.is_run(folder)
    stale = stored and recipe_changes(runs.load_run(folder).config, cfg)
    if stale:
        print(f"{folder.name} was trained with another recipe ({', '.join(stale)}); training it again", flush=True)
    if force or stale or not stored:
        from skinsim.train.train import train

        train(cfg, folder)
    run = runs.load_run(folder)
    return row(method, protocol, run.metrics, stage_seconds(run.config), note)


def stage_seconds(config: dict, stages: tuple[str, ...] = ("decode", "cache", "train", "embed", "umap")) -> float:
    """The seconds a run's config.json records for `stages` (meta.time_s), added up."""
    t = (config.get("meta") or {}).get("time_s") or {}
    return float(sum(t.get(k, 0.0) for k in stages))


# settings that change where a run is read from, how it reports or how fast it runs, not what it learns
NOT_RECIPE = {"data_dir", "dataset", "device", "workers", "wandb", "audit", "log_interval", "compile", "preset"}


def recipe_changes(saved: dict, cfg: TrainConfig) -> list[str]:
    """'field: stored -> wanted' for each recipe setting where a stored run's config.json differs from `cfg`, and
    the reviewed merges when the stored run applied another file (or none): they change its lesion split."""
    stored_cfg = TrainConfig.from_dict(saved)
    stored, wanted = stored_cfg.to_dict(), cfg.to_dict()
    # no split seed means the training seed's split: the same split as naming that seed
    stored["split_seed"], wanted["split_seed"] = stored_cfg.split_rng, cfg.split_rng
    changes = [f"{k}: {stored[k]} -> {v}" for k, v in wanted.items() if k not in NOT_RECIPE and stored[k] != v]
    had = applied_record(saved).get("sha256")
    path = merges_file(cfg.lesion_merges, cfg.data_dir or ".")
    wants = file_digest(path) if path else None
    if had != wants:
        changes.append(f"lesion merges: {(had or 'none')[:12]} -> {(wants or 'none')[:12]}")
    return changes


# The default recipe before issue 8 (2026-11-29): class-only triplets for 10 epochs over 3 cached views.
OLD_DEFAULT = {"lesion_weight": 0.0, "epochs": 10, "cache_views": 3}


def summarised(label: str, rows: list[dict]) -> list[dict]:
    """`rows` followed by their mean, standard deviation and range (max - min) over the numeric columns."""
    table = pd.DataFrame(rows)
    numeric = table[[c for c in table.columns if c not in ("method", "protocol", "note")]].astype(float)
    sd = numeric.std(ddof=1) if len(rows) > 1 else numeric.mean() * np.nan
    out = list(rows)
    for name, values in (("mean", numeric.mean()), ("sd", sd), ("max - min", numeric.max() - numeric.min())):
        out.append({"method": f"{label}, {name} of {len(rows)}", "protocol": "lesion", **values.to_dict(),
                    "note": ""})
    return out


def spread_rows(data_dir: Path, seeds: list[int], force: bool) -> list[dict]:
    """The old default recipe trained with each seed on the same lesion split (split seed 42), then mean and spread.

    Runs are deterministic for a seed, so the spread is what a change of recipe must beat to count.
    """
    rows = []
    for seed in seeds:
        over = {**OLD_DEFAULT, "seed": seed, "split_seed": 42}
        rows.append(trained_row(f"old default seed {seed}", "lesion", data_dir, over, "", force,
                                name=f"bench-default-lesion-seed{seed}"))
        print(format_table(rows[-1:]), flush=True)
    return summarised("old default", rows)


class SplitRecipe(NamedTuple):
    """One recipe of the split-seed table."""

    key: str        # its name for --recipes
    label: str      # its name in the tables
    start: str      # the preset it starts from
    over: dict      # settings over that preset
    prefix: str     # run folders are <prefix><split seed>


SPLIT_RECIPES = [SplitRecipe("old-default", "old default", "default", OLD_DEFAULT, "bench-old-default-split"),
                 SplitRecipe("default", "default", "default", {}, "bench-default-split"),
                 # the one measured point between the two (issue 8's second round): half the lesion term
                 SplitRecipe("lw05", "lesion weight 0.5", "default", {"lesion_weight": 0.5}, "bench-lw05-split"),
                 SplitRecipe("full", "full", "full", {}, "bench-full-split")]
CLASS_ORDER = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]  # melanoma first: the class that matters most


def split_run_name(label: str, prefix: str, split_seed: int) -> str:
    """The run folder of one recipe on one split seed; the old default's split-42 run is the spread table's."""
    return "bench-default-lesion-seed42" if (label == "old default" and split_seed == 42) else f"{prefix}{split_seed}"


def split_seed_rows(data_dir: Path, split_seeds: list[int], force: bool, trained_only: bool = False,
                    recipes: list[str] | None = None) -> list[dict]:
    """The split-seed recipes (those keyed `recipes`, default all) on each split seed (training seed 42):
    val -> test once per recipe.

    The old default's split-42 run is the spread table's seed-42 run. `trained_only` reports the runs that
    exist and names the missing ones instead of training them.
    """
    rows = []
    for key, label, start, over, prefix in SPLIT_RECIPES:
        if recipes is not None and key not in recipes:
            continue
        these = []
        for s in split_seeds:
            name = split_run_name(label, prefix, s)
            if trained_only and not runs.is_run(runs.runs_dir() / name):
                print(f"{label} split {s}: run {name} not trained (--trained-only)", flush=True)
                continue
            these.append(trained_row(f"{label} split {s}", "lesion", data_dir, {**over, "seed": 42, "split_seed": s},
                                     "", force, name=name, start=start))
            print(format_table(these[-1:]), flush=True)
        rows += summarised(f"{label} over split seeds", these) if these else []
    return rows


def per_class_rows(split_seeds: list[int], recipes: list[str] | None = None) -> list[dict]:
    """Per-class P@1 (melanoma first) and same-lesion R@1 of each split-seed recipe (those keyed `recipes`,
    default all), as the mean over the split seeds whose runs exist; a last row counts the val queries of each
    class over those splits."""
    rows, counts = [], None
    for key, label, _, _, prefix in SPLIT_RECIPES:
        if recipes is not None and key not in recipes:
            continue
        found = [runs.runs_dir() / split_run_name(label, prefix, s) for s in split_seeds]
        metrics = [runs.load_run(f).metrics for f in found if runs.is_run(f)]
        if not metrics:
            continue
        row: dict = {"recipe": label, "splits": len(metrics)}
        for c in CLASS_ORDER:
            per = [m["per_class"][c]["p_at_1"] for m in metrics if c in m.get("per_class", {})]
            row[c] = float(np.mean(per)) if per else None
        same = [m["same_lesion"]["r_at_1"] for m in metrics if m.get("same_lesion")]
        row["same-lesion R@1"] = float(np.mean(same)) if same else None
        rows.append(row)
        if counts is None:  # one lesion split per seed: every recipe has the same queries
            counts = {"recipe": "queries (same-lesion: val + test)", "splits": len(metrics),
                      **{c: sum(m["per_class"].get(c, {}).get("n_queries", 0) for m in metrics) for c in CLASS_ORDER},
                      "same-lesion R@1": sum((m.get("same_lesion") or {}).get("n_queries", 0) for m in metrics)}
    return rows + ([counts] if counts else [])


def frozen_split_rows(data_dir: Path, split_seeds: list[int],
                      frozen: tuple[pd.DataFrame, np.ndarray, float] | None = None) -> list[dict]:
    """Frozen ImageNet Lite0 features on each split seed's lesion split: the baseline same-lesion R@1 must beat.

    `frozen` is (table, features, seconds) where the caller has the features already; else they are computed.
    """
    if frozen is None:
        table = with_own_merges(load_dataset(data_dir, check_images=False), data_dir)
        tick = time.perf_counter()
        frozen = table, frozen_vectors(data_dir, list(table["path"])), time.perf_counter() - tick
    table, vectors, seconds = frozen
    rows = []
    for s in split_seeds:
        t = table.assign(split=make_split(table, "lesion", s))
        report = retrieval_report(t, vectors)
        report["with_train"] = retrieval_report(t, vectors, "val", ("test", "train"))
        report["same_lesion"] = same_lesion_report(t, vectors)
        report["both_ways"] = both_ways_report(t, vectors)
        rows.append(row(f"frozen ImageNet Lite0 split {s}", "lesion", report, seconds))
    return rows


def splits_table(data_dir: Path, split_seeds: list[int], force: bool, trained_only: bool = False,
                 frozen: tuple[pd.DataFrame, np.ndarray, float] | None = None, recipes: list[str] | None = None) -> str:
    """The split-seed table: the recipes on each split seed, then the frozen features on each."""
    rows = split_seed_rows(data_dir, split_seeds, force, trained_only, recipes)
    table = format_table(rows + frozen_split_rows(data_dir, split_seeds, frozen))
    classes = per_class_rows(split_seeds, recipes)
    return table + (PER_CLASS_TITLE + format_table(classes) if classes else "")


def format_table(rows: list[dict]) -> str:
    """A Markdown table."""
    table = pd.DataFrame(rows)
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.0f}" if abs(v) > 1.5 else f"{v:.3f}"
        return str(v)

    return head + "\n".join("| " + " | ".join(cell(v) for v in r) + " |" for r in table.itertuples(index=False))


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="HAM10000 folder (default: $SKINSIM_DATA, else data/ham10000)")
    parser.add_argument("--seed-steps", type=int, default=30,
                        help="batches of 32 triplets the shortened seed recipe trains for (0: the full 12 epochs)")
    parser.add_argument("--skip-trained", action="store_true", help="only the rows that need no training")
    parser.add_argument("--train-seeds", default="42,43,44",
                        help="seeds of the default recipe's spread table (same split, seed 42); '' skips it")
    parser.add_argument("--only-spread", action="store_true", help="only the spread table over --train-seeds")
    parser.add_argument("--split-seeds", default="42,43,44",
                        help="split seeds of the recipes' val -> test table (training seed 42); '' skips it")
    parser.add_argument("--only-splits", action="store_true", help="only the table over --split-seeds")
    parser.add_argument("--recipes", help="recipes of the split-seed table, comma-separated: "
                                          + ", ".join(r.key for r in SPLIT_RECIPES) + " (default: all)")
    parser.add_argument("--trained-only", action="store_true",
                        help="with --only-splits: report the runs already trained, name the missing ones")
    parser.add_argument("--retrain", action="store_true", help="train the bench-* runs again even if they exist")
    args = parser.parse_args(argv)
    recipes = None
    if args.recipes is not None:
        keys = [k.strip() for k in args.recipes.split(",") if k.strip()]
        known = [r.key for r in SPLIT_RECIPES]
        unknown = [k for k in keys if k not in known]
        if unknown or not keys:
            parser.error(f"--recipes: no recipe {', '.join(unknown) or 'given'}; choose from {', '.join(known)}")
        recipes = keys
    data_dir = resolve_data_dir(args.data_dir)
    seeds = [int(s) for s in args.train_seeds.split(",") if s.strip()]
    split_seeds = [int(s) for s in args.split_seeds.split(",") if s.strip()]
    if args.only_splits:
        print(SPLITS_TITLE)
        print(splits_table(data_dir, split_seeds, args.retrain, args.trained_only, recipes=recipes))
        return 0
    if args.only_spread:
        print("\nthe old default recipe over training seeds (lesion split, split seed 42)\n")
        print(format_table(spread_rows(data_dir, seeds, args.retrain)))
        return 0
    table = with_own_merges(load_dataset(data_dir, check_images=False), data_dir)  # the default training's split
    paths = list(table["path"])
    rows: list[dict] = []

    tick = time.perf_counter()
    pixels = pixel_vectors(data_dir, paths)
    pixel_s = time.perf_counter() - tick
    tick = time.perf_counter()
    frozen = frozen_vectors(data_dir, paths)
    frozen_s = time.perf_counter() - tick
    for protocol in PROTOCOLS:
        t = table.assign(split=make_split(table, protocol, 42))
        base_report = retrieval_report(t, pixels)
        base_report["same_lesion"] = same_lesion_report(t, pixels)
        rows.append(baseline_row("always-nv", protocol, base_report))
        rows.append(baseline_row("random", protocol, base_report))
        for name, vectors, secs in (("raw-pixel kNN", pixels, pixel_s), ("frozen ImageNet Lite0", frozen, frozen_s)):
            report = retrieval_report(t, vectors)
            report["with_train"] = retrieval_report(t, vectors, "val", ("test", "train"))
            report["same_lesion"] = same_lesion_report(t, vectors)
            rows.append(row(name, protocol, report, secs))
        print(format_table(rows[-4:]), flush=True)

    if not args.skip_trained:
        # torchvision's ImageNet weights cannot be downloaded here, so the seed recipe starts from scratch
        seed_over = {"pretrained": "none", **({"max_steps": args.seed_steps, "epochs": 1} if args.seed_steps else {})}
        seed_note = (f"ResNet18 from scratch; 1 epoch of {args.seed_steps} batches" if args.seed_steps
                     else "ResNet18 from scratch; full 12 epochs")
        plan = [("default", "lesion", {"split_seed": 42}, "", "bench-default-split42"),
                ("full", "lesion", {"split_seed": 42}, "--preset full", "bench-full-split42"),
                ("old default", "lesion", OLD_DEFAULT, "before issue 8", "bench-default-lesion-seed42"),
                ("default", "image", {}, "", None),
                ("seed", "image", seed_over, seed_note, None), ("seed", "lesion", seed_over, seed_note, None)]
        for method, protocol, over, note, name in plan:
            rows.append(trained_row(method, protocol, data_dir, over, note, args.retrain, name))
            print(format_table(rows[-1:]), flush=True)

    print("\nqueries: val, search space: test (seed 42)\n")
    print(format_table(sorted(rows, key=lambda r: (r["protocol"], str(r["method"])))))
    if seeds and not args.skip_trained:
        print("\nthe old default recipe over training seeds (lesion split, split seed 42)\n")
        print(format_table(spread_rows(data_dir, seeds, args.retrain)))
    if split_seeds and not args.skip_trained:
        # the frozen features computed above serve the split-seed rows too (no second pass over the images)
        print(SPLITS_TITLE)
        print(splits_table(data_dir, split_seeds, args.retrain, frozen=(table, frozen, frozen_s), recipes=recipes))
    return 0

