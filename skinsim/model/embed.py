"""Turning images (or cached trunk activations) into embeddings, in batches, without gradients."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from skinsim.compute.distributed import World, share
from skinsim.compute.precision import autocast
from skinsim.model.embedder import Embedder
from skinsim.model.transforms import flip_views


@torch.no_grad()
def embed_batches(model: Embedder, n: int, get_batch: Callable[[slice], torch.Tensor], start: int = 0,
                  tta: bool = False, batch_size: int = 32, device: torch.device | str = "cpu",
                  world: World | None = None, precision: str = "fp32") -> np.ndarray:
    """Embed n inputs fetched by `get_batch(slice)`; with `tta`, average over the four flips.

    `precision` 'bf16' runs the stages from `start` on in bfloat16 autocast
    (skinsim.compute.precision); the head stays float32.
    When `start` > 0 the inputs are activations after `start` stages, and the flips are applied to them.
    With a distributed `world`, each rank embeds its own batches and every rank returns all the embeddings.
    """
    world = world or World()
    was_training = model.training
    model.eval()
    out = []
    for b, i in enumerate(range(0, n, batch_size)):
        rows = slice(i, min(n, i + batch_size))
        emb = None
        if world.owns(b):
            x = get_batch(rows).to(device, non_blocking=True).float()
            with autocast(precision, device):  # the stages after `start`; a trunk run by get_batch stays float32
                emb = _embed(model, x, start, tta)
        emb = share(emb, b % world.size, (rows.stop - rows.start, model.fc.out_features), torch.float32,
                    torch.device(device), world)
        out.append(emb.float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.fc.out_features), np.float32)


def _embed(model: Embedder, x: torch.Tensor, start: int, tta: bool) -> torch.Tensor:
    if not tta:
        return model(x, start)
    mean = torch.stack([model(v, start) for v in flip_views(x)]).mean(0)
    return F.normalize(mean, dim=1)
