"""Batched image preparation and augmentation on tensors (no per-image Python work on the hot path)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def normalise(images: np.ndarray | torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """uint8 images (n, h, w, 3) -> float32 (n, 3, h, w) normalised with the backbone's mean and std."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def random_flips(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each map of (n, c, h, w) left-right and/or up-down at random; works on activations too."""
    n = x.shape[0]
    h = torch.rand(n, generator=generator) < 0.5
    v = torch.rand(n, generator=generator) < 0.5
    x = x.clone()
    x[h] = x[h].flip(3)
    x[v] = x[v].flip(2)
    return x


def random_affine(x: torch.Tensor, generator: torch.Generator, degrees: float = 30.0,
                  scale: tuple[float, float] = (0.9, 1.15)) -> torch.Tensor:
    """Rotate and zoom each image at random about its centre (dermatoscopy has no upright)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(degrees)
    zoom = scale[0] + torch.rand(n, generator=generator) * (scale[1] - scale[0])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    aspect = x.shape[3] / x.shape[2]
    theta = torch.stack([torch.stack([cos, -sin / aspect, torch.zeros(n)], 1),
                         torch.stack([sin * aspect, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def colour_jitter(x: torch.Tensor, generator: torch.Generator, strength: float = 0.15) -> torch.Tensor:
    """Random brightness, contrast and saturation per image, on normalised tensors."""
    n = x.shape[0]

    def factor() -> torch.Tensor:
        return (1 + (torch.rand(n, generator=generator) * 2 - 1) * strength).view(n, 1, 1, 1)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor() + mean                        # contrast
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * factor() + grey                        # saturation
    return x + (factor() - 1) * 2                           # brightness, in normalised units


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The training augmentation: flips, rotation and zoom, colour jitter."""
    return colour_jitter(random_affine(random_flips(x, generator), generator), generator)


def flip_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The test-time views: the image, its left-right, up-down and both flips."""
    return [x, x.flip(3), x.flip(2), x.flip(2).flip(3)]
