"""The 2-D map of a run's embeddings (UMAP, seeded), fitted once when the run is written.

Up to FIT_LIMIT images UMAP is fitted on all of them. Above it, UMAP is fitted on a seeded random sample of
FIT_LIMIT and every other image is placed with the fitted model's `transform`, in chunks: fitting grows
faster than linearly with the number of points, placing grows linearly, so a map of a million images stays
within minutes. `Projection.method` says which was done; the run stores it with the map.

    python -m skinsim.evaluate.projection --bench 100000     # time both ways on synthetic clustered vectors
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FIT_LIMIT = 50_000
CHUNK = 50_000


@dataclass
class Projection:
    """(n, 2) float32 coordinates and how they were made."""

    coords: np.ndarray
    method: dict[str, Any] = field(default_factory=dict)


def fit_umap(vectors: np.ndarray, seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1,
             fit_limit: int = FIT_LIMIT) -> Projection:
    """UMAP coordinates of unit vectors under the cosine metric: fitted on all, or on a sample and the rest placed."""
    import umap  # heavy (numba): imported only when a map is made

    n = len(vectors)
    if n <= n_neighbors + 1:  # UMAP needs more points than neighbours
        n_neighbors = max(2, n - 2)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                        random_state=seed, init="spectral" if n > 10 else "random")
    method: dict[str, Any] = {"method": "umap", "metric": "cosine", "n_neighbors": n_neighbors,
                              "min_dist": min_dist, "seed": seed, "n_points": n}
    start = time.perf_counter()
    if n <= fit_limit:
        coords = reducer.fit_transform(vectors).astype(np.float32)
        method.update(fitted_on=n, placed_by_transform=0, fit_s=round(time.perf_counter() - start, 1))
        return Projection(coords, method)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=fit_limit, replace=False))
    coords = np.empty((n, 2), dtype=np.float32)
    coords[sample] = reducer.fit_transform(vectors[sample])
    fitted = time.perf_counter()
    rest = np.setdiff1d(np.arange(n), sample)
    for i in range(0, len(rest), CHUNK):
        part = rest[i:i + CHUNK]
        coords[part] = reducer.transform(vectors[part])
    method.update(fitted_on=fit_limit, sample_seed=seed, placed_by_transform=int(len(rest)),
                  fit_s=round(fitted - start, 1), transform_s=round(time.perf_counter() - fitted, 1))
    return Projection(coords, method)


def clustered_vectors(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    """`n` seeded unit vectors in 7 clusters of sub-clusters, as trained embeddings are (for benchmarks)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(7, dim))
    sub = centres[rng.integers(0, 7, size=max(1, n // 3))] + 0.8 * rng.normal(size=(max(1, n // 3), dim))
    x = sub[rng.integers(0, len(sub), size=n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """CLI: time the map of N synthetic vectors (sampled fit + transform above FIT_LIMIT)."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.evaluate.projection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", type=int, metavar="N", required=True, help="number of synthetic 128-d vectors")
    parser.add_argument("--fit-limit", type=int, default=FIT_LIMIT, help=f"fit on at most this many (default "
                                                                          f"{FIT_LIMIT:,})")
    args = parser.parse_args(argv)
    if args.bench < 20 or args.fit_limit < 20:
        parser.error("--bench and --fit-limit need at least 20 points")
    vectors = clustered_vectors(args.bench)
    start = time.perf_counter()
    projection = fit_umap(vectors, fit_limit=args.fit_limit)
    print(f"{args.bench:,} points: {time.perf_counter() - start:.1f} s in all; {projection.method}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
