"""Exact nearest neighbours on points checkable on paper."""
import numpy as np

from skinsim.neighbours import nearest, nearest_to_row

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
