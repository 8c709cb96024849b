"""Retrieval benchmark on HAM10000: method x split protocol -> P@1, macro P@1, MAP@R, kNN balanced accuracy, time.

    python -m skinsim.benchmark --data-dir ../shared/ham10000

Rows: always-nv, random retrieval, raw-pixel kNN, frozen ImageNet EfficientNet-Lite0 features, the original
project's recipe (`--preset seed`, shortened to `--seed-steps` batches unless --seed-steps 0), and the default
recipe. Trained rows reuse finished runs named bench-<method>-<protocol> under data/runs (or train them).
Queries are the validation split, the search space the test split, for both protocols.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from skinsim import runs
from skinsim.config import preset
from skinsim.data import load_dataset, resolve_data_dir
from skinsim.data.images import decode_all
from skinsim.evaluate import retrieval_report
from skinsim.model import Embedder
from skinsim.splits import make_split
from skinsim.transforms import normalise

PROTOCOLS = ("lesion", "image")
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
    return {"method": method, "protocol": protocol, "P@1": o["p_at_1"], "macro P@1": o["macro_p_at_1"],
            "MAP@R": o["map_at_r"], "kNN bal. acc": o["knn_balanced_accuracy"],
            "P@1 (search +train)": report.get("with_train", {}).get("overall", {}).get("p_at_1"),
            "train+embed s": seconds, "note": note}


def baseline_row(method: str, protocol: str, report: dict) -> dict:
    """A row for always-nv or random retrieval, from a report's baselines block."""
    b = report["baselines"][method.replace("-", "_")]
    return {"method": method, "protocol": protocol, "P@1": b["p_at_1"], "macro P@1": b["macro_p_at_1"],
            "MAP@R": b.get("map_at_r"), "kNN bal. acc": b.get("knn_balanced_accuracy"),
            "P@1 (search +train)": None, "train+embed s": 0.0, "note": "expected value" if method == "random" else ""}


def trained_row(method: str, protocol: str, data_dir: Path, overrides: dict, note: str, force: bool) -> dict:
    """Reuse or train the run bench-<method>-<protocol> and report its stored metrics and times."""
    folder = runs.runs_dir() / f"bench-{method}-{protocol}"
    if force or not runs.is_run(folder):
        from skinsim.train import train

        base = "seed" if method == "seed" else "default"
        train(preset(base, data_dir=str(data_dir), split=protocol, **overrides), folder)
    run = runs.load_run(folder)
    t = run.config.get("meta", {}).get("time_s", {})
    seconds = sum(t.get(k, 0.0) for k in ("decode", "cache", "train", "embed", "umap"))
    return row(method, protocol, run.metrics, seconds, note)


def format_table(rows: list[dict]) -> str:
    """A Markdown table."""
    table = pd.DataFrame(rows)
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.0f}" if v > 1.5 else f"{v:.3f}"
        return str(v)

    return head + "\n".join("| " + " | ".join(cell(v) for v in r) + " |" for r in table.itertuples(index=False))


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--seed-steps", type=int, default=30,
                        help="batches of 32 triplets the shortened seed recipe trains for (0: the full 12 epochs)")
    parser.add_argument("--skip-trained", action="store_true", help="only the rows that need no training")
    parser.add_argument("--retrain", action="store_true", help="train the bench-* runs again even if they exist")
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    table = load_dataset(data_dir, check_images=False)
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
        rows.append(baseline_row("always-nv", protocol, base_report))
        rows.append(baseline_row("random", protocol, base_report))
        for name, vectors, secs in (("raw-pixel kNN", pixels, pixel_s), ("frozen ImageNet Lite0", frozen, frozen_s)):
            report = retrieval_report(t, vectors)
            report["with_train"] = retrieval_report(t, vectors, "val", ("test", "train"))
            rows.append(row(name, protocol, report, secs))
        print(format_table(rows[-4:]), flush=True)

    if not args.skip_trained:
        # torchvision's ImageNet weights cannot be downloaded here, so the seed recipe starts from scratch
        seed_over = {"pretrained": "none", **({"max_steps": args.seed_steps, "epochs": 1} if args.seed_steps else {})}
        seed_note = (f"ResNet18 from scratch; 1 epoch of {args.seed_steps} batches" if args.seed_steps
                     else "ResNet18 from scratch; full 12 epochs")
        plan = [("default", "lesion", {}, ""), ("default", "image", {}, ""),
                ("seed", "image", seed_over, seed_note), ("seed", "lesion", seed_over, seed_note)]
        for method, protocol, over, note in plan:
            rows.append(trained_row(method, protocol, data_dir, over, note, args.retrain))
            print(format_table(rows[-1:]), flush=True)

    print("\nqueries: val, search space: test (seed 42)\n")
    print(format_table(sorted(rows, key=lambda r: (r["protocol"], str(r["method"])))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
