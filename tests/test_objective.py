"""The named metric losses: each trains (a finite loss and gradients), the screen keeps its hyperparameters, the
triplet objective is the hand-written loss exactly, and proxies start from the seed without moving torch's stream."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytorch_metric_learning")
from skinsim.bench import screen  # noqa: E402
from skinsim.train import objective  # noqa: E402
from skinsim.train.losses import lesion_contrast, triplet_loss  # noqa: E402
from skinsim.train.objective import LOSSES, TRAIN_LOSSES, Objective, make_loss, terms  # noqa: E402
from skinsim.train.mining import mine  # noqa: E402

N_CLASSES, DIM = 4, 16


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A P x K batch (4 classes x 4 images, lesion pairs) of unit embeddings that need a gradient."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(16, DIM, generator=g), dim=1).requires_grad_()
    labels = torch.arange(N_CLASSES).repeat_interleave(4)
    lesions = torch.arange(8).repeat_interleave(2)
    return emb, labels, lesions


@pytest.mark.parametrize("name", TRAIN_LOSSES)
@pytest.mark.parametrize("lesion_weight", [0.0, 0.5])
def test_each_loss_gives_a_finite_loss_and_gradients(name: str, lesion_weight: float) -> None:
    emb, labels, lesions = batch()
    objective = Objective(name, "semi-hard", 0.2, lesion_weight, N_CLASSES, DIM, seed=0)
    loss = objective(emb, labels, lesions)
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss) and float(loss.detach()) > 0
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    for param in objective.parameters():  # proxies and class centres learn too
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_the_triplet_objective_is_the_hand_written_loss_exactly() -> None:
    emb, labels, lesions = batch(1)
    for mining in ("semi-hard", "batch-hard"):
        expected = triplet_loss(emb, mine(mining, emb, labels, 0.2), 0.2) + 0.5 * lesion_contrast(emb, lesions)
        got = Objective("triplet", mining, 0.2, 0.5, N_CLASSES, DIM, seed=0)(emb, labels, lesions)
        assert torch.equal(got, expected)
    assert list(Objective("triplet", "semi-hard", 0.2, 0.0, N_CLASSES, DIM, seed=0).parameters()) == []


def test_a_triplet_plus_term_adds_the_two_losses() -> None:
    emb, labels, lesions = batch(2)
    both = Objective("triplet+multi-similarity", "semi-hard", 0.2, 0.0, N_CLASSES, DIM, seed=0)(emb, labels, lesions)
    alone = Objective("multi-similarity", "semi-hard", 0.2, 0.0, N_CLASSES, DIM, seed=0)(emb, labels, lesions)
    triplet = triplet_loss(emb, mine("semi-hard", emb, labels, 0.2), 0.2)
    torch.testing.assert_close(both, alone + triplet)


def test_proxies_start_from_the_seed_and_leave_torch_s_stream_alone() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = Objective("proxy-anchor", "semi-hard", 0.2, 0.0, N_CLASSES, DIM, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # a proxy run draws its batches as a triplet run does
    torch.manual_seed(999)
    b = Objective("proxy-anchor", "semi-hard", 0.2, 0.0, N_CLASSES, DIM, seed=7)
    c = Objective("proxy-anchor", "semi-hard", 0.2, 0.0, N_CLASSES, DIM, seed=8)
    assert torch.equal(a.other.proxies, b.other.proxies) and not torch.equal(a.other.proxies, c.other.proxies)
    assert set(a.state_dict()) == {"other.proxies"}


def test_the_screen_keeps_its_losses_and_hyperparameters() -> None:
    """The screen's published numbers were made with these; training's --loss uses the same ones."""
    assert screen.LOSSES is objective.LOSSES
    expected = {"triplet": ("TripletMarginLoss", {"margin": 0.2}, "TripletMarginMiner"),
                "multi-similarity": ("MultiSimilarityLoss", {"alpha": 2, "beta": 50, "base": 0.5},
                                     "MultiSimilarityMiner"),
                "proxy-anchor": ("ProxyAnchorLoss", {"margin": 0.1, "alpha": 32}, None),
                "normalized-softmax": ("NormalizedSoftmaxLoss", {"temperature": 0.05}, None),
                "subcenter-arcface": ("SubCenterArcFaceLoss", {"sub_centers": 3}, None),
                "supcon": ("SupConLoss", {"temperature": 0.1}, None)}
    assert list(expected) == LOSSES
    for name, (kind, params, miner_kind) in expected.items():
        [(loss, miner)], lesion = screen.make_loss(name, np.array([5, 3, 2]))
        assert type(loss).__name__ == kind and lesion is None
        assert {k: getattr(loss, k) for k in params} == params, name
        assert (type(miner).__name__ if miner is not None else None) == miner_kind
    _, miner = make_loss("triplet", 3, DIM)
    assert (miner.margin, miner.type_of_triplets) == (0.2, "semihard")
    _, miner = make_loss("multi-similarity", 3, DIM)
    assert miner.epsilon == 0.1
    loss, _ = make_loss("subcenter-arcface", 3, DIM)
    assert loss.W.shape == (DIM, 3 * 3)  # three sub-centres a class
    _, lesion = screen.make_loss("supcon+lesion", np.array([5, 3, 2]))
    assert type(lesion).__name__ == "SupConLoss" and lesion.temperature == 0.1


def test_loss_names() -> None:
    assert terms("triplet") == (True, None)
    assert terms("proxy-anchor") == (False, "proxy-anchor")
    assert terms("triplet+subcenter-arcface") == (True, "subcenter-arcface")
    for bad in ("arcface", "triplet+triplet", "proxy-anchor+triplet", "triplet+", "Triplet"):
        with pytest.raises(ValueError, match=r"unknown --loss .*supcon, or triplet\+ one of the others"):
            terms(bad)
    with pytest.raises(ValueError, match="unknown loss 'arc'.*supcon"):
        make_loss("arc", 3, DIM)
