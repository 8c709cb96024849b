"""Train a lesion-similarity embedder on HAM10000 and write a complete run folder.

    python -m skinsim.train --data-dir ../shared/ham10000             # the default recipe
    python -m skinsim.train --preset seed --data-dir ../shared/ham10000  # the original course project
    python -m skinsim.train --loss triplet+proxy-anchor --data-dir ...   # a proxy loss beside the triplet term

(This module is that command line: a preset, then every flag given, into one TrainConfig.)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from skinsim.data import DATASETS
from skinsim.runs import folder as runs
from skinsim.runs.config import PRESETS, TrainConfig, preset
from skinsim.train.objective import LOSSES

# The original project's flags keep their names and meaning; the rest are skinsim's.
FLAGS = {
    "em": int, "lr": float, "epochs": int, "gamma": float, "loss_margin": float, "step_size": int,
    "batch_size": int, "seed": int, "log_interval": int, "split_seed": int,
    "backbone": str, "pretrained": str, "mining": str, "image_size": str, "split": str, "device": str,
    "workers": int, "optimizer": str, "weight_decay": float, "scheduler": str, "freeze": int,
    "cache_views": int, "samples_per_class": int, "class_power": float, "max_steps": int, "lesion_weight": float,
    "dataset": str, "csv": str, "image_col": str, "label_col": str, "group_col": str, "loss": str, "compile": str,
    "precision": str, "lesion_merges": str,
}


# what a flag's help says before its default, where the name alone does not say enough
HELP = {"loss": f"{' | '.join(LOSSES)} | triplet+ one of the others (e.g. triplet+proxy-anchor): triplet is the "
                "FaceNet-style loss over --mining's triplets, the others are pytorch-metric-learning's ",
        "compile": "auto | on | off: torch.compile the frozen trunk's passes (the cache); auto: on the CPU for "
                   "2,000+ images; speed only ",
        "lesion_merges": "a CSV of reviewed image pairs (image_a, image_b, verdict same|different|unsure): lesions "
                         "judged the same stay together in the split, the batches and the same-lesion metric; "
                         "without it, the dataset's own: its folder's lesion_merges.csv, else this repository's "
                         "data/<dataset folder>_lesion_merges.csv (data/ham10000_lesion_merges.csv ships with it); "
                         "'none' for no merges ",
        "precision": "auto | bf16 | fp32: the embedding passes without gradients (validation, embeddings, queries) "
                     "in bfloat16 autocast, 2x faster where the device has it natively (auto); training and the cache "
                     "stay float32 "}


# flags of experiments that were measured and dropped: each says where its numbers and its code are
REMOVED = {
    "--look-dims": "two-part embeddings",
    "--look-share": "two-part embeddings",
}
REMOVED_NOTE = ("was removed on 2026-12-05 with the experiment it belonged to ({}): it lost on the dev fold; "
                "docs/results.md keeps its numbers, its command and the commit that still has the code (ae06748)")


def check_removed(argv: list[str]) -> None:
    """Exit with one message when a removed experiment's flag is given."""
    for arg in argv:
        flag = arg.split("=", 1)[0].replace("_", "-")
        if flag in REMOVED:
            print(f"error: {flag} " + REMOVED_NOTE.format(REMOVED[flag]), file=sys.stderr)
            raise SystemExit(2)


def parse_args(argv: list[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    """Build the config: a preset, then every flag given on the command line."""
    check_removed(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m skinsim.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS),
                        help="starting point; other flags override it (full = 20 epochs, 1.8x the default's time; "
                             "seed = the original course project)")
    parser.add_argument("--data-dir", help="dataset folder (default: $SKINSIM_DATA, else data/ham10000; with --csv: "
                                           "the CSV's folder). --dataset: " + " | ".join(DATASETS))
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out rows whose image is missing or unreadable instead of failing")
    parser.add_argument("--out", help="run name under data/runs, or a path (default: date-backbone-split)")
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted run (name or path)")
    parser.add_argument("--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    parser.add_argument("--no-tta", action="store_true", help="embed without flip averaging")
    parser.add_argument("--no-audit", action="store_true", help="skip the dataset audit of the finished run")
    parser.add_argument("--dev-fold", action="store_true",
                        help="choose recipes honestly: train on the training split minus a dev fold and report on "
                             "that fold (its halves are labelled val and test; the real val and test are 'held')")
    defaults = TrainConfig()
    for name, kind in FLAGS.items():
        # both spellings: --loss_margin as the original, --loss-margin as the rest of skinsim
        spellings = sorted({f"--{name}", f"--{name.replace('_', '-')}"})
        parser.add_argument(*spellings, dest=name, type=kind, default=None,
                            help=f"{HELP.get(name, '')}(default preset: {getattr(defaults, name)})")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.skip_missing:
        overrides["skip_missing"] = True
    if args.wandb:
        overrides["wandb"] = True
    if args.no_tta:
        overrides["tta"] = False
    if args.no_audit:
        overrides["audit"] = False
    if args.dev_fold:
        overrides["dev_fold"] = True
    return preset(args.preset, **overrides), args


def out_folder(cfg: TrainConfig, out: str | None) -> Path:
    """Where the run goes: a bare name lands under data/runs."""
    if out is None:
        out = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.backbone}-{cfg.split}"
    path = Path(out)
    return path if len(path.parts) > 1 or path.is_absolute() else runs.runs_dir() / path
