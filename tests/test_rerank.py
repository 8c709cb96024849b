"""k-reciprocal re-ranking on cases worked out by hand, and lambda = 1 equal to plain ranking."""
import math

import numpy as np
import pandas as pd
import pytest

from skinsim.hubness import csls, k_reciprocal, main, score
from skinsim.rerank import k_reciprocal_distances, reciprocal


def at(*degrees: float) -> np.ndarray:
    return np.stack([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees])


def test_reciprocal_neighbours_by_hand():
    # each row: the image itself first, then its neighbours; 2 ranks 1 first, but 1 ranks 0 before 2
    ranks = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]])
    assert sorted(reciprocal(ranks, 0, 1).tolist()) == [0, 1]
    assert reciprocal(ranks, 2, 1).tolist() == [2]
    assert sorted(reciprocal(ranks, 2, 2).tolist()) == [0, 1, 2]


def test_jaccard_distances_by_hand():
    # two pairs far apart: a (0 deg), b (10 deg); c (90 deg), d (100 deg). With k1 = 1 each pair is its own
    # reciprocal set, weighted exp(-squared distance) and normalised: own 1 / (1 + e^-d), mate e^-d / (1 + e^-d)
    d_ab = 2 - 2 * math.cos(math.radians(10))
    own, mate = 1 / (1 + math.exp(-d_ab)), math.exp(-d_ab) / (1 + math.exp(-d_ab))
    overlap = 2 * min(own, mate)
    dist = k_reciprocal_distances(at(0, 10, 90, 100), np.array([0]), k1=1, k2=1, lam=0.0)[0]
    assert dist[0] == pytest.approx(0.0, abs=1e-6)
    assert dist[1] == pytest.approx(1 - overlap / (2 - overlap), abs=1e-6)
    assert dist[2] == pytest.approx(1.0) and dist[3] == pytest.approx(1.0)  # no shared neighbour
    # lambda mixes in the original distance, scaled by the query's largest (to d, 100 deg away)
    mixed = k_reciprocal_distances(at(0, 10, 90, 100), np.array([0]), k1=1, k2=1, lam=0.5)[0]
    far = 2 - 2 * math.cos(math.radians(100))
    assert mixed[2] == pytest.approx(0.5 * 1.0 + 0.5 * 2.0 / far, abs=1e-6)


def table_and_vectors(n: int = 90, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    table = pd.DataFrame({"dx": rng.choice(["nv", "mel", "bkl"], n), "lesion_id": [f"L{i // 2}" for i in range(n)],
                          "split": rng.choice(["train", "val", "test"], n)})
    return table, v


def test_lambda_one_is_plain_ranking():
    table, v = table_and_vectors()
    assert score(table, k_reciprocal(v, 5, 3, 1.0)) == pytest.approx(score(table, csls(v, 0)))
    reranked = score(table, k_reciprocal(v, 5, 3, 0.3))
    assert all(0 <= reranked[key] <= 1 for key in ("P@1", "macro P@1", "same-lesion R@1"))


def test_k_reciprocal_flag_adds_rows_and_refuses_bad_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--k-reciprocal", "20,6"])
    assert exc.value.code == 2 and "--k-reciprocal takes K1,K2,LAMBDA" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--k-reciprocal", "20,6,1.5"])
    assert "not '20,6,1.5'" in capsys.readouterr().err


def test_k_reciprocal_rows_on_a_run(tiny_run, capsys):
    assert main([str(tiny_run), "--k", "0", "--k-reciprocal", "5,2,0.3"]) == 0
    out = capsys.readouterr().out
    assert "| cosine |" in out and "| k-reciprocal k1=5 k2=2 lambda=0.3 |" in out
