"""FAISS indexes over unit vectors, each named by one factory string, as FAISS names them.

    "Flat"              exact search (the default; equal to skinsim.neighbours' numpy search)
    "HNSW32"            a graph: fast approximate search for large galleries, no training
    "IVF1024,PQ16x8"    inverted lists + product quantisation: small memory, trained on the vectors

Similarity is the inner product of unit vectors; distances come back as Euclidean, sqrt(2 - 2 ip), as everywhere
else in skinsim. faiss is imported inside these functions, so `import skinsim` stays light.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

AUTO_EXACT_LIMIT = 200_000  # above this many vectors, `auto_spec` picks an approximate index
SEARCH_EFFORT = {"efSearch": 128, "nprobe": 32}  # recall over speed; `set_effort` changes them


class IndexMismatch(ValueError):
    """A stored index that does not belong to the vectors it is opened with; the message says how."""


def auto_spec(n: int) -> str:
    """The index for a gallery of `n` vectors: exact up to AUTO_EXACT_LIMIT, HNSW above."""
    return "Flat" if n <= AUTO_EXACT_LIMIT else "HNSW32"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ImportError("skinsim's search needs faiss: pip install faiss-cpu") from None
    return faiss


def _as_rows(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))


def set_effort(index: Any, **params: int) -> None:
    """Set search parameters that the index has (efSearch for HNSW, nprobe for IVF); others are ignored."""
    faiss = _faiss()
    space = faiss.ParameterSpace()
    for name, value in params.items():
        try:
            space.set_index_parameter(index, name, value)
        except RuntimeError:
            pass  # e.g. nprobe on a flat index: nothing to set


def build(vectors: np.ndarray, spec: str = "Flat", seed: int = 0, use_gpu: bool = True) -> Any:
    """An index of `spec` over `vectors` (n, d), trained on them when the index type needs training."""
    faiss = _faiss()
    x = _as_rows(vectors)
    try:
        index = faiss.index_factory(x.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise ValueError(f"{spec!r} is not a FAISS index factory string ({str(err).splitlines()[0]})") from None
    if not index.is_trained:
        # a seeded sample keeps training repeatable and bounded for millions of vectors
        rng = np.random.default_rng(seed)
        cap = min(len(x), 256 * max(256, _n_centroids(spec)))
        sample = x if cap >= len(x) else x[np.sort(rng.choice(len(x), cap, replace=False))]
        index.train(sample)
    if use_gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(x)
    set_effort(index, **SEARCH_EFFORT)
    return index


def _n_centroids(spec: str) -> int:
    for part in spec.split(","):
        if part.startswith("IVF") and part[3:].isdigit():
            return int(part[3:])
    return 0


def search(index: Any, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                                               np.ndarray]:
    """Indices and Euclidean distances of the k nearest indexed vectors to each query, nearest first.

    `exclude[i]`, when given, is an index that query i may not return (-1: none). Ties are ordered by index,
    as in skinsim.neighbours. Rows with fewer than k results are padded with index -1 and distance inf.
    """
    q = _as_rows(queries)
    k = int(min(k, index.ntotal - (1 if exclude is not None else 0)))
    if k <= 0 or len(q) == 0:
        return np.zeros((len(q), 0), dtype=np.int64), np.zeros((len(q), 0), dtype=np.float32)
    extra = 1 if exclude is not None else 0
    sims, idx = index.search(q, k + extra)
    if exclude is not None:
        keep = idx != np.asarray(exclude, dtype=np.int64)[:, None]
        # drop the excluded id where it came back, else the last (k+1-th) result
        keep[keep.all(1), -1] = False
        sims, idx = sims[keep].reshape(len(q), k), idx[keep].reshape(len(q), k)
    dist = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0)).astype(np.float32)
    dist[idx < 0] = np.inf
    order = np.lexsort((idx, dist), axis=1)
    return np.take_along_axis(idx, order, 1).astype(np.int64), np.take_along_axis(dist, order, 1)


def digest(vectors: np.ndarray) -> str:
    """sha256 of the float32 vectors: what a stored index must have been built from."""
    return hashlib.sha256(_as_rows(vectors).tobytes()).hexdigest()


def save(index: Any, path: str | Path, vectors: np.ndarray, spec: str) -> Path:
    """Write the index to `path` and, beside it, `path`.json naming its spec, size and the vectors' digest."""
    faiss = _faiss()
    path = Path(path)
    if hasattr(faiss, "index_gpu_to_cpu") and type(index).__name__.startswith("Gpu"):
        index = faiss.index_gpu_to_cpu(index)
    faiss.write_index(index, str(path))
    x = _as_rows(vectors)
    meta = {"spec": spec, "ntotal": int(index.ntotal), "dim": int(x.shape[1]), "digest": digest(x),
            "faiss": faiss.__version__}
    path.with_name(path.name + ".json").write_text(json.dumps(meta, indent=1) + "\n")
    return path


def load(path: str | Path, vectors: np.ndarray | None = None) -> tuple[Any, dict[str, Any]]:
    """A stored index and its sidecar; IndexMismatch when it does not match `vectors` (when given)."""
    faiss = _faiss()
    path = Path(path)
    side = path.with_name(path.name + ".json")
    if not path.is_file() or not side.is_file():
        raise IndexMismatch(f"{path} (or its {side.name}) does not exist")
    meta = json.loads(side.read_text())
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        raise IndexMismatch(f"{path} is not a readable FAISS index ({str(err).splitlines()[0]})") from None
    if int(index.ntotal) != meta.get("ntotal"):
        raise IndexMismatch(f"{path} holds {index.ntotal} vectors but {side.name} says {meta.get('ntotal')}")
    if vectors is not None:
        x = _as_rows(vectors)
        if len(x) != index.ntotal or x.shape[1] != index.d:
            raise IndexMismatch(f"{path} indexes {index.ntotal} vectors of {index.d} dimensions, not the "
                                f"{len(x)} of {x.shape[1]} it was opened with; rebuild it")
        if digest(x) != meta.get("digest"):
            raise IndexMismatch(f"{path} was built from other vectors than the ones it was opened with; rebuild it")
    set_effort(index, **SEARCH_EFFORT)
    return index, meta
