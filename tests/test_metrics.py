"""Retrieval metrics on neighbour tables worked out by hand."""
import numpy as np
import pandas as pd
import pytest

from skinsim.evaluate import metrics as M
# three queries; their neighbours' labels, nearest first
Q = np.array(["a", "b", "a"])
NB = np.array([["a", "b", "a", "a"],
               ["a", "a", "b", "b"],
               ["b", "b", "b", "a"]])


def test_precision_at_k():
    assert M.precision_at_k(Q, NB, 1).tolist() == [1.0, 0.0, 0.0]
    assert M.precision_at_k(Q, NB, 2).tolist() == [0.5, 0.0, 0.0]
    assert M.precision_at_k(Q, NB, 4).tolist() == [0.75, 0.5, 0.25]


def test_hit_at_k():
    assert M.hit_at_k(Q, NB, 1).tolist() == [1, 0, 0]
    assert M.hit_at_k(Q, NB, 3).tolist() == [1, 1, 0]


def test_map_at_r():
    # query 0, R=3: hits at ranks 1 and 3 -> (1/1 + 2/3) / 3 = 5/9
    # query 1, R=2: no hit in the first 2 -> 0
    # query 2, R=3: no hit in the first 3 -> 0 (the hit at rank 4 is beyond R)
    ap = M.average_precision_at_r(Q, NB, np.array([3, 2, 3]))
    assert ap == pytest.approx([5 / 9, 0.0, 0.0])
    # a perfect ranking scores 1
    assert M.average_precision_at_r(np.array(["a"]), np.array([["a", "a", "b"]]), np.array([2]))[0] == 1.0


def test_map_at_r_needs_enough_columns():
    with pytest.raises(ValueError):
        M.average_precision_at_r(Q, NB, np.array([5, 1, 1]))


def test_knn_vote_majority_and_tie():
    assert M.knn_vote(NB, 3).tolist() == ["a", "a", "b"]
    # k=4, row 1 is a,a,b,b: a tie, and "a" is met first
    # k=2 in row 0 is a tie a/b: the label met first (the nearest) wins
    assert M.knn_vote(NB, 2).tolist() == ["a", "a", "b"]


def test_balanced_accuracy_and_confusion():
    truth = np.array(["a", "a", "a", "b"])
    pred = np.array(["a", "a", "b", "b"])
    assert M.balanced_accuracy(truth, pred) == pytest.approx((2 / 3 + 1) / 2)
    assert M.confusion(truth, pred, ["a", "b"]).tolist() == [[2, 1], [0, 1]]


def test_wilson_interval():
    lo, hi = M.wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = M.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)


def test_random_retrieval_and_macro():
    rand = M.random_retrieval_precision(np.array(["a", "b"]), np.array(["a", "a", "a", "b"]))
    assert rand.tolist() == [0.75, 0.25]
    per = M.per_class_mean(np.array(["a", "a", "b"]), np.array([1.0, 0.0, 1.0]))
    assert per == {"a": 0.5, "b": 1.0}
    assert M.macro(per) == 0.75


def test_agrees_with_pytorch_metric_learning():
    """Cross-check P@1 and MAP@R against pytorch-metric-learning's AccuracyCalculator."""
    torch = pytest.importorskip("torch")
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    from skinsim.search.neighbours import nearest

    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(40, 8)).astype(np.float32), rng.normal(size=(60, 8)).astype(np.float32)
    ql, gl = rng.integers(0, 3, 40), rng.integers(0, 3, 60)
    idx, _ = nearest(q, g, 60)
    relevant = np.array([(gl == c).sum() for c in ql])
    mine = {"precision_at_1": M.precision_at_k(ql, gl[idx], 1).mean(),
            "mean_average_precision_at_r": M.average_precision_at_r(ql, gl[idx], relevant).mean()}
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    calc = AccuracyCalculator(include=tuple(mine), k="max_bin_count", device=torch.device("cpu"),
                              knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))
    theirs = calc.get_accuracy(torch.tensor(q), torch.tensor(ql), torch.tensor(g), torch.tensor(gl), False)
    for key, value in mine.items():
        assert value == pytest.approx(theirs[key], abs=1e-6), key


def test_average_precision_from_ranks_by_hand():
    from skinsim.evaluate.metrics import average_precision_from_ranks

    assert average_precision_from_ranks([3, 1]) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision_from_ranks([1, 2, 3]) == 1.0
    assert average_precision_from_ranks([]) == 0.0


def test_same_lesion_report_by_hand():
    """Five unit vectors at angles 0, 0.1, 0.25, 1.0, 1.05 rad; lesion A has three images, B and C one each."""
    import pandas as pd

    from skinsim.evaluate.report import same_lesion_report

    angles = np.array([0.0, 0.1, 0.25, 1.0, 1.05])
    vectors = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    table = pd.DataFrame({"lesion_id": ["A", "A", "B", "A", "C"], "split": ["val", "test", "train", "test", "val"]})
    report = same_lesion_report(table, vectors)
    # queries: the A images (row 4's lesion has no other image). Nearest other image and ranks of the other A's:
    #   row 0: order 1, 2, 3, 4 -> hit; A's at ranks 1, 3 -> AP (1 + 2/3) / 2
    #   row 1: order 0, 2, 3, 4 -> hit; A's at ranks 1, 3 -> AP (1 + 2/3) / 2
    #   row 3: order 4, 2, 1, 0 -> miss (C); A's at ranks 3, 4 -> AP (1/3 + 2/4) / 2; a hit within 5
    assert report["n_queries"] == 3
    assert report["r_at_1"] == pytest.approx(2 / 3) and report["r_at_5"] == 1.0
    assert report["map"] == pytest.approx(((1 + 2 / 3) / 2 * 2 + (1 / 3 + 2 / 4) / 2) / 3)
    assert report["random_r_at_1"] == pytest.approx(2 / 4)  # each A query: 2 other A's among 4 images


def test_majority_label_is_found_from_the_data_ties_by_name():
    from skinsim.evaluate.report import majority_label, majority_baseline

    assert majority_label(np.array(["nv", "mel", "nv", "bkl"])) == "nv"
    assert majority_label(np.array(["MEL", "NEV", "NEV", "MEL"])) == "MEL"  # a tie goes to the first name
    assert majority_baseline({"majority": {"label": "benign", "p_at_1": 0.9}}) == ("benign", {"label": "benign",
                                                                                             "p_at_1": 0.9})
    assert majority_baseline({"always_nv": {"p_at_1": 0.67}}) == ("nv", {"p_at_1": 0.67})  # runs before 2026-11-29


def test_a_report_on_any_label_set():
    """ISIC 2020's benign/malignant: the labels, per-class blocks and the majority baseline come from the data."""
    from skinsim.evaluate.report import retrieval_report

    # train: 3 benign, 1 malignant; val queries: benign, malignant; test: one of each, at the query's place
    table = pd.DataFrame({"image_id": list("abcdefgh"), "lesion_id": list("abcdefgh"),
                          "split": ["train"] * 4 + ["val", "val", "test", "test"],
                          "dx": ["benign", "benign", "benign", "malignant", "benign", "malignant", "benign",
                                 "malignant"]})
    vectors = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [1, 0.1], [0.1, 1], [1, 0], [0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    report = retrieval_report(table, vectors)
    assert sorted(report["per_class"]) == ["benign", "malignant"]
    assert report["confusion"]["labels"] == ["benign", "malignant"]
    assert report["overall"]["p_at_1"] == 1.0
    assert report["baselines"]["majority"]["label"] == "benign"  # from train (3 of 4), not from the queries
    assert report["baselines"]["majority"]["p_at_1"] == 0.5 and "always_nv" not in report["baselines"]


def test_macro_interval_by_hand():
    """Classes that are all hits or all misses have no spread; a mixed class spreads the macro mean."""
    from skinsim.evaluate.metrics import macro_interval

    queries = np.array(["a", "a", "b", "b", "b"])
    assert macro_interval(queries, np.array([1, 1, 0, 0, 0])) == (0.5, 0.5)
    # class a: 1 hit of 2 -> its resampled mean is 0, 0.5 or 1; class b always 1: macro in [0.5, 1]
    lo, hi = macro_interval(queries, np.array([1, 0, 1, 1, 1]), n_boot=4000)
    assert lo == 0.5 and hi == 1.0
    assert macro_interval(np.array([]), np.array([])) != macro_interval(queries, np.ones(5))  # nan for no queries


def test_both_ways_report_by_hand():
    """1-d points: val queries find test neighbours and test queries find val neighbours; both are pooled."""
    from skinsim.evaluate.report import both_ways_report

    angles = np.array([0.0, 0.1, 1.0, 1.1, 2.0, 2.1])
    vectors = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    table = pd.DataFrame({"lesion_id": list("abcdef"), "split": ["val", "test"] * 3,
                          "dx": ["x", "x", "y", "z", "z", "z"]})
    report = both_ways_report(table, vectors)
    # val -> test: 0 -> 1 (x, hit), 2 -> 3 (z, miss for y), 4 -> 5 (z, hit): classes x 1, y 0, z 1
    one = report["one_way"]
    assert one["n_queries"] == 3 and one["macro_p_at_1"] == pytest.approx(2 / 3)
    # test -> val: 1 -> 0 (hit), 3 -> 2 (y, miss for z), 5 -> 4 (hit): pooled x 2/2, y 0/1, z 2/3
    both = report["both_ways"]
    assert both["n_queries"] == 6 and both["per_class_n"] == {"x": 2, "y": 1, "z": 3}
    assert both["macro_p_at_1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    lo, hi = both["macro_p_at_1_ci95"]
    assert lo <= both["macro_p_at_1"] <= hi
    # MAP@R, val -> test (R: x 1, y 0, z 2): 0 finds x first (1); y has nothing to find (0); 4 finds z, z (1).
    # test -> val (R = 1 each): 1 finds x (1), 3 finds y (0), 5 finds z (1). Pooled: x 1, y 0, z 2/3
    assert one["per_class_map_at_r"] == {"x": 1.0, "y": 0.0, "z": 1.0}
    assert both["per_class_map_at_r"] == pytest.approx({"x": 1.0, "y": 0.0, "z": 2 / 3})


def test_one_way_map_at_r_per_class_is_the_retrieval_reports() -> None:
    from skinsim.evaluate.report import both_ways_report, retrieval_report

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = pd.DataFrame({"lesion_id": [f"L{i}" for i in range(300)], "split": rng.choice(["val", "test"], 300),
                          "dx": rng.choice(["mel", "nv", "bkl"], 300, p=[0.2, 0.6, 0.2])})
    one = both_ways_report(table, vectors)["one_way"]["per_class_map_at_r"]
    per_class = retrieval_report(table, vectors)["per_class"]
    assert one == pytest.approx({c: per_class[c]["map_at_r"] for c in per_class})
