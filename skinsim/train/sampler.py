"""Batch samplers: class-balanced P x K batches, and the original project's random triplets."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class PKSampler:
    """Yields batches of P classes x K indices each, for mining triplets inside the batch.

    Contract: every batch holds exactly `p * k` indices: `p` distinct labels (all labels if there are
    fewer than `p`, then more images of each so the batch size holds), each with the same number of
    indices, drawn without replacement within a class while it has enough images and with replacement
    otherwise. Labels are drawn with probability proportional to count ** `class_power` (0 balances the
    classes, 1 follows their frequency). An epoch is `len(labels) // (p * k)` batches. The sequence is
    fixed by `seed` and the epoch number set with `set_epoch`.

    With `groups` (lesion ids), each class's share is drawn as pairs: an image, then another image of its group
    (itself when its group has no other), so that a lesion-level loss has positives; an odd share ends with a
    lone image. Without `groups` the batches are exactly those of earlier versions.
    """

    def __init__(self, labels: np.ndarray, p: int, k: int, class_power: float = 0.5, seed: int = 0,
                 groups: np.ndarray | None = None):
        self.labels = np.asarray(labels)
        self.groups = None if groups is None else np.asarray(groups)
        if self.groups is not None:
            order = np.argsort(self.groups, kind="stable")
            starts = np.flatnonzero(np.r_[True, self.groups[order][1:] != self.groups[order][:-1]])
            members = np.split(order, starts[1:])
            self.mates = {int(i): m for m in members for i in m}
        self.classes, counts = np.unique(self.labels, return_counts=True)
        self.by_class = [np.nonzero(self.labels == c)[0] for c in self.classes]
        self.p = min(p, len(self.classes))
        self.k = (p * k) // self.p
        weights = counts.astype(float) ** class_power
        self.probs = weights / weights.sum()
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch, so each epoch draws different batches and resuming repeats them."""
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, len(self.labels) // (self.p * self.k))

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(len(self)):
            chosen = rng.choice(len(self.classes), size=self.p, replace=False, p=self.probs)
            batch = []
            for c in chosen:
                pool = self.by_class[c]
                if self.groups is None:
                    batch.extend(rng.choice(pool, size=self.k, replace=len(pool) < self.k).tolist())
                    continue
                share = []
                half = (self.k + 1) // 2
                for i in rng.choice(pool, size=half, replace=len(pool) < half).tolist():
                    others = self.mates[i][self.mates[i] != i]
                    share += [i, int(rng.choice(others)) if len(others) else i]
                batch.extend(share[:self.k])
            yield batch


class TripletSampler:
    """Yields batches of `n` random triplets laid out as [anchors, positives, negatives] (3n indices).

    Contract: anchor i is uniform over all images, positive i a different image of the same label (the
    anchor itself only when its label has one image), negative i uniform over images of other labels;
    as in the original project, class frequencies are left as they are. `len(labels) // n` batches an
    epoch; fixed by `seed` and `set_epoch`.
    """

    def __init__(self, labels: np.ndarray, n: int, seed: int = 0):
        self.labels = np.asarray(labels)
        self.n, self.seed, self.epoch = n, seed, 0
        self.by_label = {c: np.nonzero(self.labels == c)[0] for c in np.unique(self.labels)}
        self.others = {c: np.nonzero(self.labels != c)[0] for c in self.by_label}

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, len(self.labels) // self.n)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.labels))
        for b in range(len(self)):
            anchors = order[b * self.n:(b + 1) * self.n]
            positives, negatives = [], []
            for a in anchors:
                same = self.by_label[self.labels[a]]
                pos = a
                while pos == a and len(same) > 1:
                    pos = rng.choice(same)
                positives.append(int(pos))
                negatives.append(int(rng.choice(self.others[self.labels[a]])))
            yield [int(a) for a in anchors] + positives + negatives
