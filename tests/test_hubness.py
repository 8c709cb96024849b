"""CSLS re-ranking: the hub penalty and the re-ranked match worked out by hand, and k = 0 equal to plain ranking."""
import numpy as np
import pandas as pd
import pytest

from skinsim.hubness import csls_top1, hub_penalty, main, report


def unit(*xy: float) -> np.ndarray:
    v = np.asarray(xy, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_hub_penalty_by_hand():
    # a.b = 0.8, a.c = 0, b.c = 0.6
    gallery = np.stack([unit(1, 0), unit(0.8, 0.6), unit(0, 1)])
    assert hub_penalty(gallery, 1) == pytest.approx([0.8, 0.8, 0.6])
    assert hub_penalty(gallery, 2) == pytest.approx([0.4, 0.7, 0.3])
    assert hub_penalty(gallery, 0) == pytest.approx([0, 0, 0])
    assert hub_penalty(gallery, 5) == pytest.approx([0.4, 0.7, 0.3])  # k is capped at the other images
    assert hub_penalty(gallery, 1, chunk=1) == pytest.approx([0.8, 0.8, 0.6])


def test_csls_prefers_a_lone_image_over_a_hub():
    """h sits among h2, h3 (a hub); plain cosine picks h for q, CSLS with k = 1 picks the lone x.

    cos(q, x) = 0.9, cos(q, h) = 0.9815; r(x) = 0.8, r(h) = 0.99: CSLS x 1.8 - 0.8 = 1.0 > h 1.963 - 0.99 = 0.973.
    """
    gallery = np.stack([unit(1, 0), unit(0.8, 0.6), unit(0.6, 0.8), unit(1, 1)])
    q = unit(0.9, np.sqrt(1 - 0.81))[None, :]
    assert csls_top1(q, gallery, 0)[0] == 1
    assert csls_top1(q, gallery, 1)[0] == 0
    assert csls_top1(q, gallery, 0, exclude=np.array([1]))[0] != 1


def test_k_zero_is_the_plain_evaluation():
    from skinsim.evaluate import retrieval_report, same_lesion_report

    rng = np.random.default_rng(0)
    n = 120
    v = rng.normal(size=(n, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    table = pd.DataFrame({"dx": rng.choice(["nv", "mel", "bkl"], n), "lesion_id": [f"L{i // 2}" for i in range(n)],
                          "split": rng.choice(["train", "val", "test"], n)})
    row = report(table, v, 0)
    plain = retrieval_report(table, v)
    assert row["P@1"] == pytest.approx(plain["overall"]["p_at_1"])
    assert row["macro P@1"] == pytest.approx(plain["overall"]["macro_p_at_1"])
    assert row["same-lesion R@1"] == pytest.approx(same_lesion_report(table, v)["r_at_1"])
    hubbed = report(table, v, 5)
    assert row["ranking"] == "cosine" and hubbed["ranking"] == "CSLS k=5" and all(0 <= hubbed[key] <= 1 for key in ("P@1", "macro P@1", "same-lesion R@1"))


def test_bad_input_is_one_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--k", "five"])
    assert exc.value.code == 2 and "--k takes comma-separated whole numbers" in capsys.readouterr().err
    assert main([str(tmp_path / "no-such-run")]) == 2
    assert "error:" in capsys.readouterr().err
