"""The triplet margin loss over mined (anchor, positive, negative) tuples."""
from __future__ import annotations

import torch

from skinsim.mining import Triplets


def triplet_loss(emb: torch.Tensor, triplets: Triplets, margin: float) -> torch.Tensor:
    """Mean over triplets of max(0, d(a, p) - d(a, n) + margin); zero when no triplet was mined."""
    a, p, n = triplets
    if len(a) == 0:
        return emb.sum() * 0.0  # keeps the graph so backward() still works
    d_ap = (emb[a] - emb[p]).norm(dim=1)
    d_an = (emb[a] - emb[n]).norm(dim=1)
    return torch.relu(d_ap - d_an + margin).mean()


def active_fraction(emb: torch.Tensor, triplets: Triplets, margin: float) -> float:
    """Share of the triplets that still violate the margin (a training-health signal)."""
    a, p, n = triplets
    if len(a) == 0:
        return 0.0
    with torch.no_grad():
        d_ap = (emb[a] - emb[p]).norm(dim=1)
        d_an = (emb[a] - emb[n]).norm(dim=1)
        return float((d_ap - d_an + margin > 0).float().mean())
