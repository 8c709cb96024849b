"""The run's 2-D map: UMAP on all points, or fitted on a sample with the rest placed; and the file says which."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skinsim.evaluate.projection import fit_umap, main
from skinsim.runs.folder import map_method

pytest.importorskip("umap")


def two_clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` unit vectors in two tight, far-apart clusters, and each one's cluster."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, 2, size=n)
    centres = np.eye(16)[:2] * 5
    x = centres[which] + 0.3 * rng.normal(size=(n, 16))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), which


def test_up_to_the_limit_umap_is_fitted_on_every_point() -> None:
    x, _ = two_clusters(150)
    projection = fit_umap(x, seed=3, fit_limit=200)
    assert projection.coords.shape == (150, 2) and projection.coords.dtype == np.float32
    assert projection.method["fitted_on"] == 150 and projection.method["placed_by_transform"] == 0
    np.testing.assert_array_equal(projection.coords, fit_umap(x, seed=3, fit_limit=200).coords)


def test_above_the_limit_the_rest_is_placed_beside_its_own_cluster() -> None:
    x, which = two_clusters(400)
    projection = fit_umap(x, seed=3, fit_limit=150)
    m = projection.method
    assert m["fitted_on"] == 150 and m["placed_by_transform"] == 250 and m["n_points"] == 400
    coords = projection.coords
    assert np.isfinite(coords).all()
    centre = [coords[which == c].mean(0) for c in (0, 1)]
    own = np.linalg.norm(coords - np.array(centre)[which], axis=1)
    other = np.linalg.norm(coords - np.array(centre)[1 - which], axis=1)
    assert (own < other).mean() > 0.95  # placed points land in their own cluster, not the other one
    np.testing.assert_array_equal(coords, fit_umap(x, seed=3, fit_limit=150).coords)  # seeded


def test_a_trained_run_says_how_its_map_was_made(tiny_run: Path) -> None:
    import json

    method = map_method(tiny_run / "umap.parquet")
    assert method["method"] == "umap" and method["fitted_on"] == method["n_points"] > 0
    assert json.loads((tiny_run / "config.json").read_text())["meta"]["map"] == method


def test_the_benchmark_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["--bench", "300", "--fit-limit", "100"]) == 0
    assert "'placed_by_transform': 200" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--bench", "5"])
