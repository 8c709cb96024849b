"""The named metric losses: pytorch-metric-learning's class-level losses with the hyperparameters the loss screen
(`python -m skinsim.screen`) published its numbers with, and the objective `python -m skinsim.train --loss` trains.

Training's "triplet" is skinsim's own deterministic triplet loss over `--mining`'s triplets (skinsim.train.losses); the
others come from pytorch-metric-learning, alone or added to the triplet term ("triplet+proxy-anchor").
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from skinsim.train.losses import lesion_contrast, triplet_loss
from skinsim.train.mining import mine

LOSSES = ["triplet", "multi-similarity", "proxy-anchor", "normalized-softmax", "subcenter-arcface", "supcon"]
# what `--loss` accepts: one loss, or the triplet term plus one of the others
TRAIN_LOSSES = LOSSES + [f"triplet+{name}" for name in LOSSES[1:]]


def make_loss(name: str, n_classes: int, embedding_size: int) -> tuple[nn.Module, Any]:
    """(pytorch-metric-learning loss, its miner or None) named `name`, with the screen's fixed hyperparameters."""
    from pytorch_metric_learning import losses, miners

    if name == "triplet":
        return losses.TripletMarginLoss(margin=0.2), miners.TripletMarginMiner(0.2, "semihard")
    if name == "multi-similarity":
        return losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), miners.MultiSimilarityMiner(0.1)
    if name == "proxy-anchor":
        return losses.ProxyAnchorLoss(n_classes, embedding_size, margin=0.1, alpha=32), None
    if name == "normalized-softmax":
        return losses.NormalizedSoftmaxLoss(n_classes, embedding_size, temperature=0.05), None
    if name == "subcenter-arcface":
        return losses.SubCenterArcFaceLoss(num_classes=n_classes, embedding_size=embedding_size, sub_centers=3), None
    if name == "supcon":
        return losses.SupConLoss(temperature=0.1), None
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")


def terms(name: str) -> tuple[bool, str | None]:
    """(with skinsim's triplet term, the pytorch-metric-learning loss added or None) of a `--loss` value."""
    if name not in TRAIN_LOSSES:
        raise ValueError(f"unknown --loss {name!r}; choose {', '.join(LOSSES)}, or triplet+ one of the others "
                         "(e.g. triplet+proxy-anchor)")
    if name == "triplet":
        return True, None
    triplet, _, other = name.rpartition("+")
    return bool(triplet), other


class Objective(nn.Module):
    """The loss a run trains with: the triplet term over mined triplets and/or a named class-level loss, plus
    `lesion_weight` x the lesion term. Its parameters (proxies, class centres) train with the embedder."""

    def __init__(self, name: str, mining: str, margin: float, lesion_weight: float, n_classes: int,
                 embedding_size: int, seed: int):
        super().__init__()
        self.triplet, other = terms(name)
        self.mining, self.margin, self.lesion_weight = mining, margin, lesion_weight
        self.other, self.miner = None, None
        if other is not None:
            # initialised from `seed` on a forked CPU generator: every rank and every run of one seed starts from
            # the same proxies, and the stream the rest of training draws from is the one a triplet run sees
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(seed)
                self.other, self.miner = make_loss(other, n_classes, embedding_size)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor, lesions: torch.Tensor) -> torch.Tensor:
        """The loss of one (global) batch of unit embeddings with their class and lesion labels."""
        loss = None
        if self.triplet:
            loss = triplet_loss(emb, mine(self.mining, emb, labels, self.margin), self.margin)
        if self.other is not None:
            # None: every pair of the batch
            pairs = self.miner(emb, labels) if self.miner is not None else None
            value = self.other(emb, labels, pairs)
            loss = value if loss is None else loss + value
        if self.lesion_weight:
            loss = loss + self.lesion_weight * lesion_contrast(emb, lesions)
        return loss
