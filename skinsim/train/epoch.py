"""One epoch of training: P x K (or random-triplet) batches, forward on this rank's share, the objective on the
whole batch, one optimiser step each; and the state file that lets `--resume` continue after any epoch."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from skinsim.compute.distributed import World, gather
from skinsim.evaluate.report import quick_p_at_1
from skinsim.model.embedder import Embedder
from skinsim.runs.config import TrainConfig
from skinsim.train.inputs import Inputs
from skinsim.train.losses import margin_violations
from skinsim.train.objective import Objective
from skinsim.train.trunk_cache import freeze_trunk


def train_step(cfg: TrainConfig, net: torch.nn.Module, objective: Objective, inputs: Inputs, batch: list[int],
               generator: torch.Generator, world: World) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward and backward of one global batch: this rank embeds its share, mining and the loss see all of it.

    Every rank computes the objective on the whole batch, so the objective's own parameters (proxies) get the same
    gradient on every rank without being reduced. Returns (loss, embeddings, labels) of the global batch, detached.
    """
    x = inputs.train_batch(batch, generator)  # the whole batch on every rank: the same augmentation draws
    rows = inputs.data.train_rows[np.asarray(batch)]
    y = inputs.data.labels[rows].to(inputs.device)
    emb = gather(net(x[world.share_of(len(x))], cfg.freeze), world)
    loss = objective(emb, y, inputs.lesions[rows].to(inputs.device))
    loss.backward()
    return loss.detach(), emb.detach(), y


def train_epoch(cfg: TrainConfig, epoch: int, model: Embedder, net: torch.nn.Module, objective: Objective,
                inputs: Inputs, sampler, opt: torch.optim.Optimizer, generator: torch.Generator,
                world: World = World(), wb=None) -> dict[str, float]:
    """One pass over the sampler's batches; returns the epoch's mean loss and margin-violation share.

    `net` is `model` itself, or its DistributedDataParallel wrapper when there are several ranks.
    """
    model.train()
    if cfg.freeze:
        freeze_trunk(model, cfg.freeze)
    sampler.set_epoch(epoch)
    n_batches = min(len(sampler), cfg.max_steps) if cfg.max_steps else len(sampler)
    losses, violating = [], []
    bar = tqdm(sampler, total=n_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", mininterval=2,
               file=sys.stderr, disable=None if world.is_main else True)
    for step, batch in enumerate(bar):
        if step >= n_batches:
            break
        opt.zero_grad(set_to_none=True)
        loss, emb, y = train_step(cfg, net, objective, inputs, batch, generator, world)
        opt.step()
        losses.append(loss.item())
        violating.append(margin_violations(emb, y, cfg.loss_margin))
        if (step + 1) % max(1, cfg.log_interval) == 0:
            recent = float(np.mean(losses[-cfg.log_interval:]))
            bar.set_postfix(loss=f"{recent:.4f}", violating=f"{np.nanmean(violating[-cfg.log_interval:]):.2f}")
            if wb is not None:
                wb.log({"train/loss": recent, "epoch": epoch + step / n_batches})
    return {"train_loss": float(np.mean(losses)) if losses else float("nan"),
            "violating_triplets": float(np.nanmean(violating)) if violating else float("nan")}


def score_epoch(cfg: TrainConfig, epoch: int, row: dict[str, float], lr: float, inputs: Inputs, started: float,
                world: World = World(), wb=None) -> dict[str, float]:
    """The epoch's row of the training curves: its loss, the validation P@1 (val queries, test search space), lr
    and time since `started`; printed, and logged to W&B when a run is open."""
    data, dx = inputs.data, inputs.data.table["dx"].to_numpy()
    val_p1 = quick_p_at_1(inputs.embed(data.val_rows, False), dx[data.val_rows],
                          inputs.embed(data.test_rows, False), dx[data.test_rows])
    seconds = time.perf_counter() - started
    if world.is_main:
        print(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.4f}, triplets violating the margin "
              f"{row['violating_triplets']:.3f}, val P@1 {val_p1:.3f}, {seconds:.0f} s")
    if wb is not None:
        wb.log({"val/p_at_1": val_p1, "train/epoch_loss": row["train_loss"],
                "train/violating_triplets": row["violating_triplets"], "epoch": epoch + 1})
    return {"epoch": epoch + 1, **row, "val_p_at_1": val_p1, "lr": lr, "time_s": seconds}


def save_state(path: Path, epoch: int, model: Embedder, objective: Objective, opt, sched,
               generator: torch.Generator, curves: list[dict]) -> None:
    """Everything --resume needs, in one file replaced atomically (a kill -9 leaves the previous epoch's)."""
    tmp = path.with_suffix(".tmp")
    # the objective's parameters (a proxy loss's proxies) resume with the model; the exported checkpoint leaves them out
    torch.save({"epoch": epoch, "model": model.state_dict(), "objective": objective.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "curves": curves}, tmp)
    os.replace(tmp, path)


def load_state(path: Path, model: Embedder, objective: Objective, opt, sched,
               generator: torch.Generator) -> tuple[int, list[dict]]:
    """Restore what `save_state` wrote; returns (epochs done, curves so far)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model" not in state:
        raise ValueError(f"{path} was written by an older skinsim and cannot be resumed exactly; start the run again")
    model.load_state_dict(state["model"])
    objective.load_state_dict(state.get("objective", {}))  # states from before --loss: triplet, nothing to load
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"]), list(state["curves"])
