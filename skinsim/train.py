"""Train a lesion-similarity embedder on HAM10000 and write a complete run folder.

    python -m skinsim.train --data-dir ../shared/ham10000             # the default recipe
    python -m skinsim.train --preset seed --data-dir ../shared/ham10000  # the original course project

Reads top to bottom: config -> data -> split -> model -> (frozen-trunk cache) -> epochs -> embeddings ->
metrics -> UMAP -> run folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

import skinsim
from skinsim import runs
from skinsim.backbones import WeightsError
from skinsim.config import PRESETS, TrainConfig, preset
from skinsim.curves import save_curves
from skinsim.data import DataError, load_dataset, resolve_data_dir
from skinsim.data.images import decode_all, parse_size
from skinsim.embed import embed_batches, pick_device
from skinsim.evaluate import evaluate, quick_p_at_1, summary
from skinsim.losses import active_fraction, triplet_loss
from skinsim.mining import mine
from skinsim.model import Embedder
from skinsim.sampler import PKSampler, TripletSampler
from skinsim.splits import make_split
from skinsim.transforms import augment, normalise, random_flips
from skinsim.trunk_cache import freeze_trunk, trunk_activations

# ---------------------------------------------------------------------------------------------- CLI
# The original project's flags keep their names and meaning; the rest are skinsim's.
FLAGS = {
    "em": int, "lr": float, "epochs": int, "gamma": float, "loss_margin": float, "step_size": int,
    "batch_size": int, "seed": int, "log_interval": int,
    "backbone": str, "pretrained": str, "mining": str, "image_size": str, "split": str, "device": str,
    "workers": int, "optimizer": str, "weight_decay": float, "scheduler": str, "freeze": int,
    "cache_views": int, "samples_per_class": int, "class_power": float, "max_steps": int,
}


def parse_args(argv: list[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    """Build the config: a preset, then every flag given on the command line."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS),
                        help="starting point; other flags override it (seed = the original course project)")
    parser.add_argument("--data-dir", help="HAM10000 folder (default: $SKINSIM_DATA, else data/ham10000)")
    parser.add_argument("--out", help="run name under data/runs, or a path (default: date-backbone-split)")
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted run (name or path)")
    parser.add_argument("--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    parser.add_argument("--no-tta", action="store_true", help="embed without flip averaging")
    defaults = TrainConfig()
    for name, kind in FLAGS.items():
        # both spellings: --loss_margin as the original, --loss-margin as the rest of skinsim
        spellings = sorted({f"--{name}", f"--{name.replace('_', '-')}"})
        parser.add_argument(*spellings, dest=name, type=kind, default=None,
                            help=f"(default preset: {getattr(defaults, name)})")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.wandb:
        overrides["wandb"] = True
    if args.no_tta:
        overrides["tta"] = False
    return preset(args.preset, **overrides), args


def out_folder(cfg: TrainConfig, out: str | None) -> Path:
    """Where the run goes: a bare name lands under data/runs."""
    if out is None:
        out = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.backbone}-{cfg.split}"
    path = Path(out)
    return path if len(path.parts) > 1 or path.is_absolute() else runs.runs_dir() / path


# ----------------------------------------------------------------------------------------- training
def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adagrad (the original project's), AdamW or SGD with momentum."""
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adagrad, adamw or sgd")


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """StepLR(step_size, gamma) as the original, or cosine decay over the epochs; stepped once per epoch."""
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs), eta_min=cfg.lr * 0.02)
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}; choose step or cosine")


def start_wandb(cfg: TrainConfig, name: str):  # -> wandb run or None
    """Open a W&B run when asked; wandb is an optional extra."""
    if not cfg.wandb:
        return None
    try:
        import wandb
    except ImportError:
        raise SystemExit("error: --wandb needs the optional extra: pip install 'skinsim[wandb]'") from None
    return wandb.init(project="skinsim", name=name, config=cfg.to_dict())


def train(cfg: TrainConfig, final: Path, resume: bool = False) -> Path:
    """Run the whole pipeline for one config and return the finished run folder."""
    clock: dict[str, float] = {}
    tick = time.perf_counter()
    writer = runs.RunWriter(final, resume=resume)
    work = writer.work
    state_path = work / "train_state.pt"
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = pick_device(cfg.device)

    # data: checked metadata, the split, every image decoded once into memory
    data_dir = resolve_data_dir(cfg.data_dir)
    table = load_dataset(data_dir)
    if resume and (work / "split.parquet").is_file():
        saved = pd.read_parquet(work / "split.parquet").set_index("image_id")["split"]
        table["split"] = saved.reindex(table["image_id"]).to_numpy()
    else:
        table["split"] = make_split(table, cfg.split, cfg.seed)
    table[["image_id", "lesion_id", "dx", "split"]].to_parquet(work / "split.parquet", index=False)
    if not resume:
        runs.write_json(work / "config.json", {**cfg.to_dict(), "meta": {"complete": False}})
    size = parse_size(cfg.image_size)
    images = decode_all(data_dir, list(table["path"]), size, workers=cfg.workers)
    clock["decode"] = time.perf_counter() - tick
    split = table["split"].to_numpy()
    train_rows = np.flatnonzero(split == "train")
    val_rows, test_rows = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    classes = sorted(table["dx"].unique())
    label_of = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor(table["dx"].map(label_of).to_numpy())
    dx = table["dx"].to_numpy()
    print(f"data: {len(table)} images from {data_dir}; split '{cfg.split}' (seed {cfg.seed}): "
          f"{len(train_rows)} train / {len(val_rows)} val / {len(test_rows)} test; size {size[0]}x{size[1]}")

    # model, with the first `freeze` stages frozen and their activations computed once
    model = Embedder(cfg.backbone, cfg.em, cfg.pretrained).to(device)
    if cfg.freeze:
        freeze_trunk(model, cfg.freeze)
    tick = time.perf_counter()
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.freeze:
        plain = trunk_activations(model, images, cfg.freeze, device)  # every image, unaugmented
        views = [plain[train_rows]] + [
            trunk_activations(model, images[train_rows], cfg.freeze, device, generator)
            for _ in range(max(0, cfg.cache_views - 1))]
        print(f"frozen trunk: {cfg.freeze} stages cached for {len(plain)} images, {len(views)} view(s) of "
              f"train, {sum(v.numel() for v in [plain, *views[1:]]) * 2 / 2**20:.0f} MiB")
    clock["cache"] = time.perf_counter() - tick

    def eval_batch(rows: np.ndarray):
        """A batch getter for embed_batches over table rows."""
        if cfg.freeze:
            return lambda s: plain[rows[s]]
        return lambda s: normalise(images[rows[s]], model.mean, model.std)

    def embed_rows(rows: np.ndarray, tta: bool) -> np.ndarray:
        return embed_batches(model, len(rows), eval_batch(rows), cfg.freeze, tta, device=device)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(cfg, params)
    sched = make_scheduler(cfg, opt)
    train_labels = dx[train_rows]
    if cfg.mining == "random":
        sampler = TripletSampler(train_labels, cfg.batch_size, seed=cfg.seed)
    else:
        p = max(2, cfg.batch_size // cfg.samples_per_class)
        sampler = PKSampler(train_labels, p, cfg.samples_per_class, cfg.class_power, seed=cfg.seed)
    curves: list[dict] = []
    first_epoch = 0
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(load_file(work / "checkpoint.safetensors"))
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        first_epoch = int(state["epoch"])
        curves = pd.read_csv(work / "curves.csv").to_dict("records")
        print(f"resuming {work} after epoch {first_epoch}")
    wb = start_wandb(cfg, final.name)
    clock["train"] = sum(r["time_s"] for r in curves)

    for epoch in range(first_epoch, cfg.epochs):
        tick = time.perf_counter()
        model.train()
        if cfg.freeze:
            freeze_trunk(model, cfg.freeze)
        sampler.set_epoch(epoch)
        n_batches = min(len(sampler), cfg.max_steps) if cfg.max_steps else len(sampler)
        losses, actives = [], []
        bar = tqdm(sampler, total=n_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", mininterval=2,
                   file=sys.stderr, disable=None)
        for step, batch in enumerate(bar):
            if step >= n_batches:
                break
            rows = train_rows[np.asarray(batch)]
            if cfg.freeze:
                local = torch.as_tensor(np.asarray(batch))
                view = torch.randint(len(views), (len(batch),), generator=generator)
                x = torch.stack([views[v][i] for v, i in zip(view.tolist(), local.tolist())])
                x = random_flips(x.to(device).float(), generator)
            else:
                x = augment(normalise(images[rows], model.mean, model.std), generator).to(device)
            y = labels[rows].to(device)
            emb = model(x, cfg.freeze)
            triplets = mine(cfg.mining, emb, y, cfg.loss_margin)
            loss = triplet_loss(emb, triplets, cfg.loss_margin)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            actives.append(active_fraction(emb.detach(), triplets, cfg.loss_margin))
            if (step + 1) % max(1, cfg.log_interval) == 0:
                recent = float(np.mean(losses[-cfg.log_interval:]))
                bar.set_postfix(loss=f"{recent:.4f}", active=f"{np.mean(actives[-cfg.log_interval:]):.2f}")
                if wb is not None:
                    wb.log({"train/loss": recent, "epoch": epoch + step / n_batches})
        lr = opt.param_groups[0]["lr"]
        sched.step()
        val_p1 = quick_p_at_1(embed_rows(val_rows, False), dx[val_rows], embed_rows(test_rows, False),
                              dx[test_rows])
        seconds = time.perf_counter() - tick
        curves.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                       "active_triplets": float(np.mean(actives)) if actives else float("nan"),
                       "val_p_at_1": val_p1, "lr": lr, "time_s": seconds})
        clock["train"] += seconds
        print(f"epoch {epoch + 1}/{cfg.epochs}: loss {curves[-1]['train_loss']:.4f}, "
              f"active triplets {curves[-1]['active_triplets']:.2f}, val P@1 {val_p1:.3f}, {seconds:.0f} s")
        if wb is not None:
            wb.log({"val/p_at_1": val_p1, "train/epoch_loss": curves[-1]["train_loss"], "epoch": epoch + 1})
        # everything --resume needs, written each epoch
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, work / "checkpoint.safetensors")
        save_curves(curves, work)
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "generator": generator.get_state(), "epoch": epoch + 1}, state_path)
        runs.write_json(work / "config.json", {**cfg.to_dict(), "meta": {"complete": False}})

    # embeddings of every image, metrics, UMAP, then the run folder is moved into place
    tick = time.perf_counter()
    vectors = embed_rows(np.arange(len(table)), cfg.tta)
    clock["embed"] = time.perf_counter() - tick
    tick = time.perf_counter()
    report = evaluate(table, vectors, seed=cfg.seed)
    clock["evaluate"] = time.perf_counter() - tick
    tick = time.perf_counter()
    from skinsim.projection import fit_umap

    coords = fit_umap(vectors, seed=cfg.seed)
    clock["umap"] = time.perf_counter() - tick
    meta_cols = runs.META_COLUMNS
    runs.write_vectors(work / "embeddings.parquet", table[meta_cols], vectors)
    umap_table = table[meta_cols].assign(x=coords[:, 0], y=coords[:, 1])
    umap_table.to_parquet(work / "umap.parquet", index=False)
    runs.write_json(work / "metrics.json", report)
    if not curves:
        save_curves(curves, work)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, work / "checkpoint.safetensors")
    clock["total"] = sum(v for k, v in clock.items())
    meta = {"complete": True, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "data_dir": str(data_dir.resolve()),
            "n_images": len(table), "classes": classes, "device": str(device),
            "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
            "versions": {"skinsim": skinsim.__version__, "torch": torch.__version__, "python": platform.python_version()},
            "time_s": clock}
    runs.write_json(work / "config.json", {**cfg.to_dict(), "meta": meta})
    if wb is not None:
        wb.summary.update({f"test/{k}": v for k, v in report["overall"].items()})
        wb.finish()
    path = writer.commit()
    print(summary(report))
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in clock.items()))
    print(f"run written to {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    cfg, args = parse_args(argv)
    resume = False
    if args.resume:
        final = out_folder(cfg, args.resume)
        work = final.parent / f".{final.name}.partial"
        if not (work / "config.json").is_file():
            print(f"error: nothing to resume at {work} (no interrupted run of that name)", file=sys.stderr)
            return 2
        saved = runs.read_json(work / "config.json")
        cfg = dataclasses.replace(TrainConfig.from_dict(saved), device=cfg.device, workers=cfg.workers)
        resume = True
    else:
        final = out_folder(cfg, args.out)
    try:
        train(cfg, final, resume=resume)
    except (DataError, WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: python -m skinsim.train --resume {final}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
