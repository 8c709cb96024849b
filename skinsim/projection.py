"""The 2-D map of a run's embeddings (UMAP, seeded), fitted once when the run is written."""
from __future__ import annotations

import numpy as np


def fit_umap(vectors: np.ndarray, seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """(n, 2) float32 UMAP coordinates of unit vectors under the cosine metric."""
    import umap  # heavy (numba): imported only when a run is written

    if len(vectors) <= n_neighbors + 1:  # UMAP needs more points than neighbours
        n_neighbors = max(2, len(vectors) - 2)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                        random_state=seed, init="spectral" if len(vectors) > 10 else "random")
    return reducer.fit_transform(vectors).astype(np.float32)
