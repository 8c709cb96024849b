"""Triplet and pair miners and the loss on batches small enough to check on paper."""
import math

import pytest
import torch

from skinsim.train.losses import margin_violations, triplet_loss
from skinsim.train.mining import batch_hard, distance_matrix, label_masks, lesion_pairs, sampled_triplets, semi_hard

# four points on a line: 0 and 1 are class 0, 2 and 3 class 1 (2-D so rows are vectors)
EMB = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.5, 0.0], [4.0, 0.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_distance_matrix_and_masks():
    d = distance_matrix(EMB)
    assert d[0, 3] == pytest.approx(4.0, abs=1e-5) and d[1, 2] == pytest.approx(0.5, abs=1e-5)
    pos, neg = label_masks(LABELS)
    assert pos.tolist() == [[False, True, False, False], [True, False, False, False],
                            [False, False, False, True], [False, False, True, False]]
    assert neg[0].tolist() == [False, False, True, True]


def test_batch_hard_picks_farthest_positive_and_nearest_negative():
    a, p, n = batch_hard(EMB, LABELS)
    # anchor 0: positive 1 (d=1), nearest negative 2 (d=1.5)
    # anchor 1: positive 0, nearest negative 2 (d=0.5)
    # anchor 2: positive 3 (d=2.5), nearest negative 1 (d=0.5)
    # anchor 3: positive 2 (d=2.5), nearest negative 1 (d=3)
    assert a.tolist() == [0, 1, 2, 3]
    assert p.tolist() == [1, 0, 3, 2]
    assert n.tolist() == [2, 2, 1, 1]


def test_batch_hard_skips_anchors_without_positive():
    a, _, _ = batch_hard(EMB[:3], LABELS[:3])
    assert a.tolist() == [0, 1]  # point 2 is alone in class 1


def test_semi_hard_keeps_negatives_inside_the_margin():
    # anchor 0, positive 1 (d=1): negative 2 (d=1.5) is semi-hard for margin 1, negative 3 (d=4) is not
    # anchor 3, positive 2 (d=2.5): negative 0 (d=4) is farther but inside 2.5+2, negative 1 (d=3) too
    a, p, n = semi_hard(EMB, LABELS, margin=1.0)
    assert sorted(zip(a.tolist(), p.tolist(), n.tolist())) == [(0, 1, 2), (3, 2, 1)]
    a, p, n = semi_hard(EMB, LABELS, margin=2.0)
    assert (3, 2, 0) in set(zip(a.tolist(), p.tolist(), n.tolist()))


def test_sampled_triplets_layout():
    a, p, n = sampled_triplets(9)
    assert a.tolist() == [0, 1, 2] and p.tolist() == [3, 4, 5] and n.tolist() == [6, 7, 8]


def test_triplet_loss_by_hand():
    triplets = (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([2, 1]))
    # (0,1,2): max(0, 1 - 1.5 + 1) = 0.5 ; (2,3,1): max(0, 2.5 - 0.5 + 1) = 3.0 ; mean 1.75
    loss = triplet_loss(EMB, triplets, margin=1.0)
    assert float(loss) == pytest.approx(1.75, abs=1e-4)


def test_margin_violations_count_every_valid_triplet_of_the_batch():
    # valid triplets (a, p, n): (0,1,2) (0,1,3) (1,0,2) (1,0,3) (2,3,0) (2,3,1) (3,2,0) (3,2,1)
    # d(a,p) + margin > d(a,n)?  margin 1: 1+1>1.5 yes, 1+1>4 no, 1+1>0.5 yes, 1+1>3 no,
    #   2.5+1>1.5 yes, 2.5+1>0.5 yes, 2.5+1>4 no, 2.5+1>3 yes -> 5 of 8
    assert margin_violations(EMB, LABELS, margin=1.0) == pytest.approx(5 / 8)
    # margin 0: only the triplets whose negative is nearer than the positive -> (1,0,2) (2,3,0) (2,3,1)
    assert margin_violations(EMB, LABELS, margin=0.0) == pytest.approx(3 / 8)
    # the semi-hard triplets mined at margin 1 are a subset that violates by construction: the old
    # 'active share of mined triplets' was 1.0 whatever the batch looked like
    assert margin_violations(EMB, LABELS, margin=10.0) == 1.0
    assert math.isnan(margin_violations(EMB, torch.tensor([0, 0, 0, 0]), margin=1.0))  # no negative: no triplet


def test_triplet_loss_backward_is_bitwise_repeatable_on_many_triplets():
    """Thousands of triplets over few rows: the gradient must not depend on thread scheduling."""
    g = torch.Generator().manual_seed(1)
    base = torch.nn.functional.normalize(torch.randn(63, 128, generator=g), dim=1)
    labels = torch.arange(63) // 9
    grads = []
    for _ in range(3):
        emb = base.clone().requires_grad_(True)
        triplets = semi_hard(emb, labels, 0.5)
        assert len(triplets[0]) > 5000
        triplet_loss(emb, triplets, 0.5).backward()
        grads.append(emb.grad)
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])


def test_triplet_loss_without_triplets_is_zero_and_differentiable():
    emb = EMB.clone().requires_grad_(True)
    empty = (torch.tensor([], dtype=torch.long),) * 3
    loss = triplet_loss(emb, empty, margin=0.2)
    loss.backward()
    assert loss.item() == 0.0


def test_triplet_loss_agrees_with_pytorch_metric_learning():
    """On unit vectors our loss equals pytorch-metric-learning's TripletMarginLoss with a mean reducer."""
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.reducers import MeanReducer

    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(12, 5, generator=g), dim=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    triplets = batch_hard(emb, labels)
    theirs = TripletMarginLoss(margin=0.3, reducer=MeanReducer())(emb, labels, indices_tuple=triplets)
    assert float(triplet_loss(emb, triplets, 0.3)) == pytest.approx(float(theirs), abs=1e-5)


def test_the_lesion_term_is_low_when_lesions_sit_together_and_zero_without_pairs() -> None:
    from skinsim.train.losses import lesion_contrast

    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    lesions = torch.tensor([0, 0, 1, 1])
    together = torch.stack([a, a, b, b])  # each image beside its lesion mate, far from the other lesion
    apart = torch.stack([a, b, a, b])  # each image beside the other lesion
    assert lesion_contrast(together, lesions) < lesion_contrast(apart, lesions)
    assert float(lesion_contrast(together, torch.tensor([0, 1, 2, 3]))) == 0.0  # no positives: no signal


# five images: lesions A A B C D; classes mel mel mel nv nv
LESIONS = torch.tensor([0, 0, 1, 2, 3])
CLASSES = torch.tensor([0, 0, 0, 1, 1])


def pairs_as_sets(pairs):
    a1, p, a2, n = (t.tolist() for t in pairs)
    return set(zip(a1, p)), set(zip(a2, n))


def test_lesion_pairs_take_lesion_mates_as_positives_and_choose_the_negatives():
    pos, neg = pairs_as_sets(lesion_pairs(LESIONS, CLASSES, "all"))
    assert pos == {(0, 1), (1, 0)}
    assert neg == {(i, j) for i in range(5) for j in range(5) if LESIONS[i] != LESIONS[j]}
    pos, neg = pairs_as_sets(lesion_pairs(LESIONS, CLASSES, "other-class"))
    assert pos == {(0, 1), (1, 0)}
    assert neg == {(i, j) for i in (0, 1, 2) for j in (3, 4)} | {(i, j) for i in (3, 4) for j in (0, 1, 2)}
    pos, neg = pairs_as_sets(lesion_pairs(LESIONS, CLASSES, "same-class"))
    assert neg == {(0, 2), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)}
    with pytest.raises(ValueError, match="unknown lesion negatives 'none'"):
        lesion_pairs(LESIONS, CLASSES, "none")
