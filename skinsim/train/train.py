"""Train a lesion-similarity embedder on HAM10000 and write a complete run folder.

    python -m skinsim.train --data-dir ../shared/ham10000             # the default recipe
    python -m skinsim.train --preset seed --data-dir ../shared/ham10000  # the original course project
    python -m skinsim.train --loss triplet+proxy-anchor --data-dir ...   # a proxy loss beside the triplet term

Reads top to bottom: config -> data and split -> model and frozen-trunk cache -> epochs -> embeddings ->
metrics, map and run folder. Each phase lives in its own module of this package (cli, inputs, setup, epoch,
outputs); this one only orders them.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from skinsim.compute import distributed
from skinsim.compute.allocator import keep_freed_memory
from skinsim.compute.compiled import check_setting
from skinsim.compute.device import pick_device
from skinsim.data import DataError
from skinsim.data.merges import OFF, read_merges
from skinsim.model.backbones import WeightsError
from skinsim.runs import folder as runs
from skinsim.runs.config import TrainConfig
from skinsim.train.cli import out_folder, parse_args
from skinsim.train.curves import save_curves
from skinsim.train.epoch import load_state, save_state, score_epoch, train_epoch
from skinsim.train.inputs import Inputs, load_data
from skinsim.train.outputs import finish
from skinsim.train.setup import (build_model, check_objective, join_world, make_deterministic, make_objective,
                                 make_optimizer, make_sampler, make_scheduler, start_run_folder, start_wandb)


def train(cfg: TrainConfig, final: Path, resume: bool = False) -> Path:
    """Run the whole pipeline for one config and return the finished run folder (every rank returns it)."""
    check_objective(cfg)
    if cfg.lesion_merges and cfg.lesion_merges != OFF:
        read_merges(Path(cfg.lesion_merges).expanduser())  # a bad file says so before any folder is written
    check_setting(cfg.compile)
    keep_freed_memory()  # 10% off a CPU training step, a quarter off the cache: no page faults per batch
    clock: dict[str, float] = {}
    tick = time.perf_counter()
    make_deterministic(cfg.seed)
    device, world = join_world(cfg)
    writer, work = start_run_folder(cfg, final, resume, world)
    state_path = work / "train_state.pt"

    # data: checked metadata, the split, every image decoded once into memory
    data = load_data(cfg, work, resume, world)
    clock["decode"] = time.perf_counter() - tick

    # model, with the first `freeze` stages frozen and their activations computed once
    tick = time.perf_counter()
    model, net = build_model(cfg, device, world)
    generator = torch.Generator().manual_seed(cfg.seed)
    inputs = Inputs(cfg, model, data, device, generator, world)
    clock["cache"] = time.perf_counter() - tick

    # the objective, its optimiser and the batches; a resumed run takes them back from its state file
    objective = make_objective(cfg, len(data.classes), device)
    opt = make_optimizer(cfg, model, objective)
    sched = make_scheduler(cfg, opt)
    sampler = make_sampler(cfg, data.table["dx"].to_numpy()[data.train_rows],
                           data.table["lesion_id"].to_numpy()[data.train_rows])
    first_epoch, curves = 0, []
    if resume and state_path.is_file():
        first_epoch, curves = load_state(state_path, model, objective, opt, sched, generator)
        if world.is_main:
            print(f"resuming {work} after epoch {first_epoch}")
    wb = start_wandb(cfg, final.name) if world.is_main else None
    clock["train"] = sum(r["time_s"] for r in curves)

    for epoch in range(first_epoch, cfg.epochs):
        tick = time.perf_counter()
        row = train_epoch(cfg, epoch, model, net, objective, inputs, sampler, opt, generator, world, wb)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        curves.append(score_epoch(cfg, epoch, row, lr, inputs, tick, world, wb))
        clock["train"] += curves[-1]["time_s"]
        if world.is_main:
            save_curves(curves, work)
            save_state(state_path, epoch + 1, model, objective, opt, sched, generator, curves)

    tick = time.perf_counter()
    vectors = inputs.embed(np.arange(len(data.table)), cfg.tta)  # sharded across ranks, gathered on each
    clock["embed"] = time.perf_counter() - tick
    if world.is_main:
        finish(cfg, writer, data, vectors, curves, model, device, clock, wb)
    world.barrier()  # no rank leaves (and tears the group down) before the run folder is in place
    distributed.stop(world)
    return final


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
        world = distributed.start(pick_device(cfg.device))  # under torchrun: join the group before naming the run
        final = distributed.same_on_all(final, world)  # a name made from the clock could differ between ranks
        train(cfg, final, resume=resume)
    except (DataError, WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: python -m skinsim.train --resume {final}", file=sys.stderr)
        return 130
    return 0
