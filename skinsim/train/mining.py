"""Miners: each returns index tensors into the batch, (anchor, positive, negative) triplets or pytorch-metric-learning's
(anchor, positive, anchor, negative) pairs, for a loss to consume."""
from __future__ import annotations

import torch

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
LESION_NEGATIVES = ("all", "other-class", "same-class")


def distance_matrix(emb: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between all rows of `emb`."""
    sq = (emb * emb).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * emb @ emb.T
    return d2.clamp_min(0).add(1e-12).sqrt()


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive mask: same label and not the same row, negative mask: different label)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def sampled_triplets(batch_len: int, device: torch.device | str = "cpu") -> Triplets:
    """The triplets a `TripletSampler` batch already holds: rows [0, n), [n, 2n), [2n, 3n)."""
    n = batch_len // 3
    a = torch.arange(n, device=device)
    return a, a + n, a + 2 * n


def batch_hard(emb: torch.Tensor, labels: torch.Tensor) -> Triplets:
    """For each anchor with a positive in the batch: its farthest positive and nearest negative."""
    dist = distance_matrix(emb.detach())
    pos, neg = label_masks(labels)
    anchors = torch.nonzero(pos.any(1) & neg.any(1)).squeeze(1)
    hardest_pos = dist.masked_fill(~pos, float("-inf")).argmax(1)
    hardest_neg = dist.masked_fill(~neg, float("inf")).argmin(1)
    return anchors, hardest_pos[anchors], hardest_neg[anchors]


def semi_hard(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> Triplets:
    """All triplets whose negative is farther than the positive but inside the margin (FaceNet)."""
    dist = distance_matrix(emb.detach())
    pos, neg = label_masks(labels)
    d_ap = dist[:, :, None]
    d_an = dist[:, None, :]
    valid = pos[:, :, None] & neg[:, None, :] & (d_an > d_ap) & (d_an < d_ap + margin)
    a, p, n = torch.nonzero(valid, as_tuple=True)
    return a, p, n


def lesion_pairs(lesions: torch.Tensor, classes: torch.Tensor, negatives: str = "all") -> Pairs:
    """Pairs for a lesion-level loss: an image's positives are the other images of its lesion; its negatives are the
    images of other lesions, either all of them, only those of other classes, or only those of its own class."""
    if negatives not in LESION_NEGATIVES:
        raise ValueError(f"unknown lesion negatives {negatives!r}; choose {', '.join(LESION_NEGATIVES)}")
    pos, other_lesion = label_masks(lesions)
    if negatives != "all":
        same_class = classes[:, None] == classes[None, :]
        other_lesion = other_lesion & (same_class if negatives == "same-class" else ~same_class)
    a1, p = torch.nonzero(pos, as_tuple=True)
    a2, n = torch.nonzero(other_lesion, as_tuple=True)
    return a1, p, a2, n


def mine(method: str, emb: torch.Tensor, labels: torch.Tensor, margin: float) -> Triplets:
    """Dispatch to a miner by its CLI name."""
    if method == "random":
        return sampled_triplets(len(labels), emb.device)
    if method == "batch-hard":
        return batch_hard(emb, labels)
    if method == "semi-hard":
        return semi_hard(emb, labels, margin)
    raise ValueError(f"unknown mining {method!r}; choose random, batch-hard or semi-hard")
