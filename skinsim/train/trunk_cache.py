"""Frozen-trunk caching: run the frozen leading stages once per image (and view), keep the activations.

Fine-tuning only the later stages on cached activations makes an epoch several times cheaper on a CPU,
because the high-resolution early stages (most of the arithmetic) run once instead of once per epoch.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from skinsim.compute.distributed import World, share
from skinsim.model.embedder import Embedder
from skinsim.model.transforms import augment, normalise


@torch.no_grad()
def trunk_activations(model: Embedder, images: np.ndarray, stop: int, device: torch.device | str = "cpu",
                      generator: torch.Generator | None = None, batch_size: int = 32,
                      world: World | None = None,
                      forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Half-precision activations after the first `stop` stages for uint8 images (n, h, w, 3).

    With a `generator`, each image is randomly augmented first (one augmented view per call). With a
    distributed `world`, each rank runs the trunk on its own batches and every rank ends with all of them.
    `forward` replaces `model.trunk(x, stop)` (a compiled version of it, skinsim.compute.compiled).
    """
    world = world or World()
    forward = forward or (lambda x: model.trunk(x, stop))
    was_training = model.training
    model.eval()
    chunks, shape = [], None
    for b, i in enumerate(range(0, len(images), batch_size)):
        x = normalise(images[i:i + batch_size], model.mean, model.std)
        if generator is not None:
            # every rank draws every batch's augmentation, so the views do not depend on the number of ranks
            x = augment(x, generator)
        if shape is None and world.distributed:
            shape = model.trunk(x[:1].to(device), stop).shape[1:]
        out = forward(x.to(device)).half() if world.owns(b) else None
        chunks.append(share(out, b % world.size, (len(x), *(shape or ())), torch.float16, torch.device(device),
                            world))
    model.train(was_training)
    return torch.cat(chunks)


def freeze_trunk(model: Embedder, stop: int) -> None:
    """Stop gradients through the first `stop` stages and keep their batch-norm statistics fixed."""
    for stage in model.stages[:stop]:
        stage.eval()
        for param in stage.parameters():
            param.requires_grad_(False)
