"""Training on several processes with torch.distributed, started by torchrun; one process is a world of one.

    torchrun --nproc_per_node 4 -m skinsim.train ...                 # 4 GPUs (nccl) or 4 CPU processes (gloo)
    torchrun --nnodes 2 --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:29400 --nproc_per_node 8 \\
        -m skinsim.train ...                                          # two machines

The recipe means the same at any world size: every rank draws the same global P x K batch, embeds its own
contiguous share of it, and mining and the loss run on the gathered global batch (`gather`, which keeps the
gradient). DistributedDataParallel then averages the parameter gradients, which gives the single-process
gradient of the global batch. Batch norm in the trained stages uses the statistics of the global batch:
torch's SyncBatchNorm on GPUs, and on CPUs (where SyncBatchNorm does not run) `global_batch_norm`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run folder, logs and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.size > 1

    def owns(self, chunk: int) -> bool:
        """Chunks of work (batches to cache or embed) are dealt out round-robin."""
        return chunk % self.size == self.rank

    def share_of(self, n: int) -> slice:
        """This rank's contiguous share of a batch of `n` (shares differ by at most one)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a world of one)."""
        if self.distributed:
            dist.barrier()


def start(device: torch.device, timeout: timedelta | None = None) -> World:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK...); else a world of one.

    `timeout` bounds how long a collective waits for the slowest rank (torch's default when None).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local)


def same_on_all(value: object, world: World) -> object:
    """Rank 0's `value` on every rank (e.g. a run name made from the clock, which ranks could disagree on)."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: object, world: World) -> list[object]:
    """Every rank's `value` (any picklable object), in rank order, on every rank."""
    if not world.distributed:
        return [value]
    out: list[object] = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def stop(world: World) -> None:
    """Leave the process group."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def gather(local: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's rows, concatenated in rank order, with the gradient flowing back to each rank's own rows."""
    if not world.distributed:
        return local
    from torch.distributed.nn.functional import all_gather

    n = torch.tensor([local.shape[0]], device=local.device)
    sizes = [torch.zeros_like(n) for _ in range(world.size)]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    # all_gather needs equal shapes: pad the shorter shares, then cut the padding off again
    padded = F.pad(local, (0, 0) * (local.dim() - 1) + (0, longest - local.shape[0]))
    parts = all_gather(padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def share(tensor: torch.Tensor | None, owner: int, shape: tuple[int, ...], dtype: torch.dtype,
          device: torch.device, world: World) -> torch.Tensor:
    """The owner's tensor, on every rank (others pass None and the tensor's shape and dtype)."""
    if not world.distributed:
        assert tensor is not None
        return tensor
    # a channels_last tensor would arrive laid out as a contiguous one: send every tensor contiguous
    tensor = torch.empty(shape, dtype=dtype, device=device) if tensor is None else tensor.contiguous()
    dist.broadcast(tensor, src=owner)
    return tensor


def _global_batch_norm_forward(bn: nn.modules.batchnorm._BatchNorm):
    plain = bn.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not bn.training:
            return plain(x)
        from torch.distributed.nn.functional import all_reduce

        channels = x.shape[1]
        dims = [d for d in range(x.dim()) if d != 1]
        count = x.new_tensor([x.numel() / channels])
        stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = stats[-1]
        mean = stats[:channels] / n
        var = stats[channels:2 * channels] / n - mean * mean
        with torch.no_grad():
            m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked + 1)
            bn.running_mean.mul_(1 - m).add_(m * mean.detach())
            bn.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
            bn.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + bn.eps)
        if bn.affine:
            y = y * bn.weight.view(shape) + bn.bias.view(shape)
        # timm's BatchNormAct2d follows the normalisation with dropout and an activation
        for after in ("drop", "act"):
            if isinstance(getattr(bn, after, None), nn.Module):
                y = getattr(bn, after)(y)
        return y

    return forward


def global_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every batch norm in `module` normalise with the statistics of the global batch while training."""
    if device.type == "cuda":
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(module)  # SyncBatchNorm, also for timm's BatchNormAct2d
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.forward = _global_batch_norm_forward(child)
    return module
