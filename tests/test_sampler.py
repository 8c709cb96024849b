"""The batch samplers keep the contracts their docstrings state."""
from collections import Counter

import numpy as np

from skinsim.train.sampler import PKSampler, TripletSampler

LABELS = np.array(["a"] * 50 + ["b"] * 20 + ["c"] * 3 + ["d"] * 7)


def test_pk_batches_have_p_classes_of_k():
    sampler = PKSampler(LABELS, p=3, k=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(LABELS) // 12
    for batch in batches:
        counts = Counter(LABELS[batch])
        assert len(batch) == 12 and len(counts) == 3 and set(counts.values()) == {4}


def test_pk_with_fewer_classes_than_p_keeps_the_batch_size():
    sampler = PKSampler(LABELS, p=8, k=2, seed=0)
    batch = next(iter(sampler))
    assert len(batch) == 16 and set(Counter(LABELS[batch]).values()) == {4}


def test_pk_no_repeats_within_a_class_when_it_has_enough():
    for batch in PKSampler(LABELS, p=2, k=5, seed=3):
        for c in "abd":
            picked = [i for i in batch if LABELS[i] == c]
            assert len(picked) == len(set(picked))


def test_pk_class_power_balances_classes():
    balanced = Counter(LABELS[i] for b in PKSampler(LABELS, 1, 4, class_power=0.0, seed=0) for i in b)
    natural = Counter(LABELS[i] for b in PKSampler(LABELS, 1, 4, class_power=1.0, seed=0) for i in b)
    assert balanced["c"] > natural["c"]


def test_pk_is_deterministic_per_seed_and_epoch():
    s1, s2 = PKSampler(LABELS, 2, 4, seed=7), PKSampler(LABELS, 2, 4, seed=7)
    assert list(s1) == list(s2)
    s2.set_epoch(1)
    assert list(s1) != list(s2)


def test_triplet_sampler_layout():
    sampler = TripletSampler(LABELS, n=8, seed=0)
    for batch in sampler:
        a, p, n = batch[:8], batch[8:16], batch[16:]
        for i in range(8):
            assert LABELS[a[i]] == LABELS[p[i]] and a[i] != p[i]
            assert LABELS[n[i]] != LABELS[a[i]]
    assert len(sampler) == len(LABELS) // 8


def test_with_groups_each_image_comes_with_a_mate_of_its_group() -> None:
    labels = np.array([0] * 12 + [1] * 12)
    groups = np.array([0, 0, 1, 1, 2, 3, 3, 3, 4, 5, 6, 6] + [7, 7, 8, 9, 9, 10, 11, 11, 12, 13, 14, 14])
    sampler = PKSampler(labels, p=2, k=4, seed=0, groups=groups)
    for batch in sampler:
        assert len(batch) == 8 and len({labels[i] for i in batch}) == 2
        for a, b in zip(batch[0::2], batch[1::2]):
            assert groups[a] == groups[b]  # pairs: an image, then one of its lesion
            alone = (groups == groups[a]).sum() == 1
            assert (a == b) == alone  # itself only when its lesion has no other image
    plain = [list(b) for b in PKSampler(labels, p=2, k=4, seed=0)]
    again = [list(b) for b in PKSampler(labels, p=2, k=4, seed=0, groups=None)]
    assert plain == again  # without groups, the batches of earlier versions


def test_an_odd_share_ends_with_a_lone_image() -> None:
    labels = np.array([0] * 6 + [1] * 6)
    groups = np.repeat(np.arange(6), 2)
    batch = next(iter(PKSampler(labels, p=2, k=3, seed=1, groups=groups)))
    assert len(batch) == 6
    assert groups[batch[0]] == groups[batch[1]] and groups[batch[3]] == groups[batch[4]]
