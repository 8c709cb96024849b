"""The pieces a training run is built from, each from the config: determinism, device and process group, the
run folder being written, model, objective, optimiser, scheduler, sampler, logging."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from skinsim.compute import distributed
from skinsim.compute.device import pick_device
from skinsim.compute.distributed import World, global_batch_norm
from skinsim.compute.precision import resolve as resolve_precision
from skinsim.model.embedder import Embedder
from skinsim.runs import folder as runs
from skinsim.runs.config import TrainConfig
from skinsim.train.objective import Objective, terms
from skinsim.train.sampler import PKSampler, TripletSampler
from skinsim.train.trunk_cache import freeze_trunk


def make_deterministic(seed: int) -> None:
    """Seed torch and numpy and ask torch for deterministic kernels, so one seed gives one result.

    On the CPU this makes accumulating index writes serial; on CUDA, kernels without a deterministic
    version (adaptive pooling's backward) only warn.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode also fills every new tensor with NaN to catch reads of uninitialised memory: 10% of a CPU
    # training step and 15% of a trunk pass; no kernel here reads memory it has not written, so results are the same
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.manual_seed(seed)
    np.random.seed(seed)


def join_world(cfg: TrainConfig) -> tuple[torch.device, World]:
    """The device and the process group (a world of one without torchrun); resolves the run's precision on it."""
    device = pick_device(cfg.device)
    world = distributed.start(device)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    cfg.precision = resolve_precision(cfg.precision, device)  # the run records bf16 or fp32, what searching it uses
    return device, world


def start_run_folder(cfg: TrainConfig, final: Path, resume: bool,
                     world: World) -> tuple[runs.RunWriter | None, Path]:
    """The run's writer (rank 0's) and its work folder, with the unfinished config in it for a new run."""
    writer = runs.RunWriter(final, resume=resume) if world.is_main else None
    work = final.parent / f".{final.name}.partial"
    if world.is_main and not resume:
        runs.write_json(work / "config.json", cfg.saved({"complete": False}))
    world.barrier()  # the work folder exists before any rank reads or writes in it
    return writer, work


def check_objective(cfg: TrainConfig) -> None:
    """ValueError for an unknown --loss, a negative lesion weight, or a lesion term or class-level loss without the
    P x K batches it needs (checked before any work is done)."""
    if cfg.lesion_weight < 0:
        raise ValueError(f"--lesion-weight must be 0 or more, not {cfg.lesion_weight}")
    _, other = terms(cfg.loss)
    if cfg.mining != "random":
        return
    if cfg.lesion_weight:
        raise ValueError("--lesion-weight needs P x K batches (--mining semi-hard or batch-hard), not the "
                         "original's random triplets: add --lesion-weight 0 to train random triplets alone")
    if other is not None:
        raise ValueError(f"--loss {cfg.loss} needs P x K batches (--mining semi-hard or batch-hard), not the "
                         "original's random triplets")


def build_model(cfg: TrainConfig, device: torch.device, world: World) -> tuple[Embedder, torch.nn.Module]:
    """The embedder (first `freeze` stages frozen) and what training calls: itself, or its DDP wrapper."""
    model = Embedder(cfg.backbone, cfg.em, cfg.pretrained).to(device)
    if cfg.freeze:
        freeze_trunk(model, cfg.freeze)
    if not world.distributed:
        return model, model
    model = global_batch_norm(model, device)
    ids = [world.local_rank] if device.type == "cuda" else None
    return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def make_objective(cfg: TrainConfig, n_classes: int, device: torch.device) -> Objective:
    """The named loss with the lesion term; its parameters start from `cfg.seed` alike on every rank."""
    return Objective(cfg.loss, cfg.mining, cfg.loss_margin, cfg.lesion_weight, n_classes, cfg.em, cfg.seed).to(device)


def make_optimizer(cfg: TrainConfig, model: Embedder, objective: Objective) -> torch.optim.Optimizer:
    """Adagrad (the original project's), AdamW or SGD with momentum over the trainable parameters; a proxy loss's
    own parameters in a group of their own (the triplet loss has none, and its optimiser is as before)."""
    params = [p for p in model.parameters() if p.requires_grad]
    extra = list(objective.parameters())
    params = [{"params": params}, {"params": extra}] if extra else params
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


def make_sampler(cfg: TrainConfig, train_labels: np.ndarray,
                 train_lesions: np.ndarray | None = None) -> PKSampler | TripletSampler:
    """Random triplets (the original's) or P x K class-balanced batches for in-batch mining; with a lesion term,
    P x K batches that draw lesion mates side by side (`train` has checked the lesion term already)."""
    if cfg.mining == "random":
        return TripletSampler(train_labels, cfg.batch_size, seed=cfg.seed)
    p = max(2, cfg.batch_size // cfg.samples_per_class)
    groups = train_lesions if cfg.lesion_weight else None
    return PKSampler(train_labels, p, cfg.samples_per_class, cfg.class_power, seed=cfg.seed, groups=groups)


def start_wandb(cfg: TrainConfig, name: str):  # -> wandb run or None
    """Open a W&B run when asked; wandb is an optional extra."""
    if not cfg.wandb:
        return None
    try:
        import wandb
    except ImportError:
        raise SystemExit("error: --wandb needs the optional extra: pip install 'skinsim[wandb]'") from None
    return wandb.init(project="skinsim", name=name, config=cfg.to_dict())
