"""Exact nearest neighbours on points checkable on paper, and in their true order where float32 cannot tell."""
import numpy as np
import pytest

from skinsim.search.exact import nearest_numpy, squared_distances
from skinsim.search.neighbours import nearest, nearest_to_row

# five points on a line
V = np.array([[0.0], [1.0], [1.5], [4.0], [10.0]], dtype=np.float32)


def test_nearest_orders_by_distance():
    idx, dist = nearest(V[[0]], V, 3)
    assert idx.tolist() == [[0, 1, 2]] and np.allclose(dist, [[0.0, 1.0, 1.5]])


def test_nearest_to_row_never_returns_the_row_itself():
    rows, dist = nearest_to_row(V, 1, np.arange(5), 2)
    assert rows.tolist() == [2, 0] and np.allclose(dist, [0.5, 1.0])
    # a gallery that does not hold the row: nothing to exclude
    rows, _ = nearest_to_row(V, 1, np.array([3, 4]), 1)
    assert rows.tolist() == [3]


@pytest.mark.parametrize("search", [nearest, nearest_numpy])
def test_ties_are_broken_by_gallery_index(search):
    gallery = np.array([[1.0], [-1.0], [2.0], [-1.0], [1.0]], dtype=np.float32)  # distances 1, 1, 2, 1, 1 from 0
    idx, dist = search(np.zeros((1, 1), dtype=np.float32), gallery, 5)
    assert idx.tolist() == [[0, 1, 3, 4, 2]] and dist.tolist() == [[1, 1, 1, 1, 2]]


@pytest.mark.parametrize("search", [nearest, nearest_numpy])
def test_exclusion_and_k_beyond_the_gallery(search):
    idx, dist = search(V, V, 10, exclude=np.arange(5))
    assert idx.shape == (5, 4)  # k is capped at the gallery less the excluded row
    assert not (idx == np.arange(5)[:, None]).any()
    assert idx[0].tolist() == [1, 2, 3, 4] and idx[4].tolist() == [3, 2, 1, 0]
    assert np.allclose(dist[1], [0.5, 1.0, 3.0, 9.0])
    idx, _ = search(V[[1]], V, 10, exclude=np.array([-1]))  # -1 excludes nothing, but k still leaves one out
    assert idx.tolist() == [[1, 2, 0, 3]]
    idx, _ = search(V[[1]], V, 10)
    assert idx.tolist() == [[1, 2, 0, 3, 4]]


def test_no_queries_or_k_zero_give_empty_results():
    idx, dist = nearest(np.zeros((0, 1), dtype=np.float32), V, 3)
    assert idx.shape == (0, 0) and dist.shape == (0, 0)
    idx, _ = nearest(V, V, 0)
    assert idx.shape == (5, 0)


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match="dimensions"):
        nearest(np.zeros((1, 3)), np.zeros((4, 2)), 1)
    with pytest.raises(ValueError, match="exclude holds 1 entries for 2 queries"):
        nearest(V[:2], V, 1, exclude=np.array([0]))


def collapsed(n: int, dim: int, spread: float, seed: int) -> np.ndarray:
    """Unit float32 vectors bunched around one direction, as a trained run's embeddings are."""
    rng = np.random.default_rng(seed)
    x = np.ones(dim) + spread * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_order(q: np.ndarray, g: np.ndarray, k: int) -> list[list[int]]:
    """The k nearest by exact integer arithmetic: float32 values are integers times 2^-149."""
    def ints(a: np.ndarray) -> list[list[int]]:
        return [[int(v * 2.0 ** 149) for v in row.astype(np.float64)] for row in a]

    qi, gi = ints(q), ints(g)
    out = []
    for row in qi:
        d2 = [sum((a - b) ** 2 for a, b in zip(row, other)) for other in gi]
        out.append(sorted(range(len(gi)), key=lambda j: (d2[j], j))[:k])
    return out


def test_near_ties_come_in_their_true_order():
    """Neighbours a few float32 roundings apart are put in the order exact arithmetic gives; float32 fails here."""
    g = collapsed(400, 16, 1e-3, seed=0)
    q = collapsed(20, 16, 1e-3, seed=1)
    truth = exact_order(q, g, 10)
    assert nearest(q, g, 10)[0].tolist() == truth
    assert nearest_numpy(q, g, 10)[0].tolist() == truth
    # what skinsim used to do, all in float32: the same data defeats it, so the test above can fail
    d2 = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T
    old = np.lexsort((np.broadcast_to(np.arange(len(g)), d2.shape), d2), axis=1)[:, :10]
    assert old.tolist() != truth


def test_a_pair_has_one_distance_wherever_it_is_computed():
    """The float64 distance of a pair does not depend on the batch around it, so two searches agree to the bit."""
    rng = np.random.default_rng(3)
    g = rng.standard_normal((300, 128)).astype(np.float32)
    q = rng.standard_normal((6, 128)).astype(np.float32)
    cand = np.stack([rng.permutation(300)[:120] for _ in range(6)])
    cand[2, 5] = -1
    full = squared_distances(q, g, cand)
    assert full[2, 5] == np.inf
    for i, j in [(0, 0), (1, 77), (5, 119), (3, 40)]:
        assert squared_distances(q[i:i + 1], g, cand[i:i + 1, j:j + 1])[0, 0] == full[i, j]
        assert squared_distances(q[i:i + 1], g, cand[i:i + 1, ::-1])[0, 119 - j] == full[i, j]
    expected = ((q[0].astype(np.float64) - g[cand[0, 0]].astype(np.float64)) ** 2).sum()
    assert np.isclose(full[0, 0], expected, rtol=1e-15)
