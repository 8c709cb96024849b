"""Score an ensemble of runs: the embeddings of k runs of one split joined side by side and re-normalised.

    python -m skinsim.bench.ensemble data/runs/dev-a data/runs/dev-b

Each run's unit vectors are concatenated (k x 128 dimensions) and scaled back to unit length, so the ensemble's
cosine similarity is the mean of the runs' similarities. The runs must hold the same images in the same split
(one split seed, one dev fold); their training seeds differ. Issue 22's compute-scaling table uses it to ask
whether k runs' worth of compute buys more as an ensemble than as longer training.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from skinsim.bench.retrieval import format_table, row, stage_seconds
from skinsim.evaluate.report import evaluate
from skinsim.runs import folder as runs
from skinsim.runs.config import TrainConfig


def joined(vectors: list[np.ndarray]) -> np.ndarray:
    """Unit vectors of several runs side by side, re-normalised: cosine similarity becomes their mean."""
    out = np.concatenate(vectors, axis=1).astype(np.float64)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def same_images(tables: list[pd.DataFrame]) -> str | None:
    """Why the runs' tables cannot be joined (other images, order or split), or None when they can."""
    first = tables[0]
    for t in tables[1:]:
        if len(t) != len(first) or not (t["image_id"].to_numpy() == first["image_id"].to_numpy()).all():
            return "the runs hold different images or another order"
        if not (t["split"].to_numpy() == first["split"].to_numpy()).all():
            return "the runs were trained on different splits (split seed, dev fold or lesion merges differ)"
    return None


def ensemble_row(loaded: list[runs.Run]) -> dict:
    """The benchmark row of the joined embeddings of `loaded` runs; their training and embedding times add up."""
    tables, vectors = zip(*(run.embeddings() for run in loaded))
    problem = same_images(list(tables))
    if problem:
        raise ValueError(f"cannot join these runs: {problem}")
    report = evaluate(tables[0], joined(list(vectors)), seed=TrainConfig.from_dict(loaded[0].config).split_rng)
    seconds = sum(stage_seconds(run.config, ("decode", "cache", "train", "embed")) for run in loaded)
    return row(f"ensemble of {len(loaded)}: " + " + ".join(run.name for run in loaded), "lesion", report, seconds,
               "train+embed s: the runs' sum, without their maps")


def main(argv: list[str] | None = None) -> int:
    """CLI: print the ensemble's row, and each run's own row above it."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.bench.ensemble", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="two or more run folders (or names under data/runs) of one split")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        print("error: an ensemble needs two or more runs", file=sys.stderr)
        return 2
    try:
        loaded = [runs.load_run(p) for p in args.runs]
        rows = [row(run.name, "lesion", run.metrics, None) for run in loaded] + [ensemble_row(loaded)]
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
