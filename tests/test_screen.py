"""The loss screen: its dev fold never touches validation or test, its batches hold lesion mates, bad names get
one message, and a head trained with each loss separates classes that frozen features mix."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pytorch_metric_learning")
from skinsim.bench import screen  # noqa: E402
from skinsim.data.splits import dev_fold  # noqa: E402


def table(n_lesions: int = 300, seed: int = 0) -> pd.DataFrame:
    """Lesions of 1-3 images, 3 diagnoses, already split train/val/test by lesion."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, size=n_lesions)
    lesion = np.repeat(np.arange(n_lesions), sizes)
    dx = np.array(["mel", "nv", "bkl"])[lesion % 3]
    split = np.where(lesion % 10 == 0, "val", np.where(lesion % 10 == 1, "test", "train"))
    return pd.DataFrame({"image_id": [f"I{i}" for i in range(len(lesion))], "lesion_id": [f"L{v}" for v in lesion],
                         "dx": dx, "split": split})


def test_the_dev_fold_comes_from_training_lesions_only() -> None:
    t = table()
    fold = dev_fold(t)
    assert (fold[t["split"] != "train"] == "held").all()  # validation and test are never screened on
    assert set(fold[t["split"] == "train"]) == {"train", "val", "test"}
    for part in ("val", "test"):
        lesions = set(t.loc[fold == part, "lesion_id"])
        assert not lesions & set(t.loc[fold == "train", "lesion_id"])  # grouped: a lesion is on one side
    share = (fold[t["split"] == "train"] != "train").mean()
    assert 0.2 < share < 0.4  # two folds of about 15% each
    assert list(dev_fold(t)) == list(fold)


def test_a_batch_has_k_per_class_and_lesion_mates_side_by_side() -> None:
    t = table()
    dx, lesion = t["dx"].to_numpy(), t["lesion_id"].to_numpy()
    rows = screen.batches(dx, lesion, np.random.default_rng(0))
    assert len(rows) == 3 * screen.K  # three diagnoses here, K images each
    pairs = rows.reshape(-1, 2)
    assert (lesion[pairs[:, 0]] == lesion[pairs[:, 1]]).all()
    multi = pd.Series(lesion).map(pd.Series(lesion).value_counts()).to_numpy() > 1
    assert (pairs[multi[pairs[:, 0]], 0] != pairs[multi[pairs[:, 0]], 1]).all()  # a mate, not itself, when one exists


def test_unknown_losses_are_refused_with_the_known_names() -> None:
    counts = np.array([5, 3, 2])
    with pytest.raises(ValueError, match="unknown term.*'arc'.*supcon.*la-softmax"):
        screen.make_loss("arc", counts)
    with pytest.raises(ValueError, match="'patient'.*optionally '\\+lesion'"):
        screen.make_loss("supcon+patient", counts)
    terms, lesion = screen.make_loss("triplet+la-softmax+lesion", counts)
    assert len(terms) == 2 and lesion is not None
    with pytest.raises(SystemExit):
        screen.main(["--losses", "nope"])


def test_lesion_term_settings_name_their_rows_and_bad_ones_are_refused(capsys: pytest.CaptureFixture) -> None:
    assert screen.LesionTerm().label() == ""  # the published rows keep their names
    assert screen.LesionTerm("other-class", 0.3).label() == " (negatives other-class, temperature 0.3)"
    with pytest.raises(SystemExit):
        screen.main(["--losses", "triplet+lesion", "--lesion-temperature", "0"])
    assert "--lesion-temperature must be above 0, not 0.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        screen.main(["--losses", "triplet+lesion", "--lesion-negatives", "some"])
    assert "invalid choice: 'some'" in capsys.readouterr().err


@pytest.mark.parametrize("name,term", [("triplet", screen.LesionTerm()), ("proxy-anchor", screen.LesionTerm()),
                                       ("supcon+lesion", screen.LesionTerm()), ("xbm-triplet", screen.LesionTerm()),
                                       ("triplet+la-softmax+lesion", screen.LesionTerm()),
                                       ("triplet+lesion", screen.LesionTerm("other-class", 0.2))])
def test_a_head_separates_classes_that_the_features_mix(name: str, term: screen.LesionTerm,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(screen, "STEPS", 150)
    rng = np.random.default_rng(0)
    t = table(240)
    n = len(t)
    code = pd.Series(t["dx"]).map({"mel": 0, "nv": 1, "bkl": 2}).to_numpy()
    # the class sits in 8 of 64 dimensions; the rest is louder noise, so raw features retrieve poorly
    feats = rng.normal(size=(n, 2, 64)).astype(np.float32) * 2
    feats[:, :, :8] += (np.eye(3)[code] @ rng.normal(size=(3, 8)) * 1.5)[:, None, :].astype(np.float32)
    train = (t["split"] == "train").to_numpy()
    head = screen.train_head(feats[train], t["dx"].to_numpy()[train], t["lesion_id"].to_numpy()[train], name, 0,
                             term)
    before = screen.score(t, screen.embed(None, feats))["P@1"]
    after = screen.score(t, screen.embed(head, feats))["P@1"]
    assert after > before + 0.1


def test_logit_adjustment_adds_the_log_prior_to_each_class_logit() -> None:
    import torch

    loss = screen.LogitAdjustedSoftmax(np.array([6, 3, 1]), embedding_size=2, temperature=1.0)
    with torch.no_grad():
        loss.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    x = torch.tensor([[1.0, 0.0]])
    # logits cos = (1, 0, -1), plus log(0.6, 0.3, 0.1): cross-entropy of class 2 worked out by hand
    logits = np.array([1.0, 0.0, -1.0]) + np.log([0.6, 0.3, 0.1])
    expected = -(logits[2] - np.log(np.exp(logits).sum()))
    assert loss(x, torch.tensor([2])).item() == pytest.approx(expected, rel=1e-6)
