"""FAISS indexes over unit vectors, each named by one factory string, as FAISS names them.

    "Flat"              exact search (the default; equal to skinsim.search.neighbours' numpy search)
    "HNSW32"            a graph: fast approximate search for large galleries, no training
    "IVF1024,PQ16x8"    inverted lists + product quantisation: small memory, trained on the vectors

Similarity is the inner product of unit vectors (metric "l2": squared distance, for any vectors); distances come
back as Euclidean, sqrt(2 - 2 ip), as everywhere else in skinsim. faiss is imported inside these functions, so
`import skinsim` stays light.

`VectorIndex` keeps an index with the vectors it holds: FAISS proposes candidates and their float64 distances
(skinsim.search.neighbours) put them in order, so a "Flat" VectorIndex returns exactly the true nearest vectors and an
approximate one returns what it found in the true order, with exact distances.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from skinsim.search.exact import nearest_by_products, squared_distances, take_nearest

AUTO_EXACT_LIMIT = 200_000  # above this many vectors, `auto_spec` picks an approximate index
SEARCH_EFFORT = {"efSearch": 128, "nprobe": 32}  # recall over speed; `set_effort` changes them
TRAIN_PER_LIST = 64  # training vectors per inverted list (or per PQ centroid)
METRICS = {"ip": "METRIC_INNER_PRODUCT", "l2": "METRIC_L2"}
FLOAT32_EPS = 2.0 ** -24  # unit roundoff of the float32 arithmetic FAISS searches in


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


def _reason(err: Exception) -> str:
    """FAISS's error message without its C++ prefix ("Error in <function> at <file>:<line>: Error: '...' failed: ")."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return re.sub(r"^Error in .*? at \S+:\d+: (Error: '.*?' failed: )?", "", text)


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


def build(vectors: np.ndarray, spec: str = "Flat", seed: int = 0, use_gpu: bool = True, metric: str = "ip") -> Any:
    """An index of `spec` over `vectors` (n, d), trained on them when the index type needs training.

    `metric` "ip" (inner product, for unit vectors) or "l2" (squared Euclidean, for any vectors).
    """
    faiss = _faiss()
    x = _as_rows(vectors)
    if metric not in METRICS:
        raise ValueError(f"metric is one of {', '.join(METRICS)}, not {metric!r}")
    try:
        index = faiss.index_factory(x.shape[1], spec, getattr(faiss, METRICS[metric]))
    except RuntimeError as err:
        raise ValueError(f"index {spec!r} is not a FAISS index factory string ({_reason(err)})") from None
    if not index.is_trained:
        # a seeded sample keeps training repeatable and bounded for millions of vectors; 64 per list (FAISS asks
        # for 39 to 256) bounds k-means, whose cost grows with sample size x lists
        rng = np.random.default_rng(seed)
        cap = min(len(x), TRAIN_PER_LIST * max(256, _n_centroids(spec)))
        sample = x if cap >= len(x) else x[np.sort(rng.choice(len(x), cap, replace=False))]
        try:
            index.train(sample)
        except RuntimeError as err:  # e.g. fewer vectors than inverted lists
            raise ValueError(f"index {spec!r} cannot be trained on {len(sample)} vectors "
                             f"({_reason(err)})") from None
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
    """Indices and Euclidean distances of the k nearest indexed vectors to each query, in FAISS's own order.

    `exclude[i]`, when given, is an index that query i may not return (-1: none). The order is that of FAISS's
    float32 distances, ties by index (`VectorIndex.search` gives the exact order). Rows with fewer than k results
    are padded with index -1 and distance inf.
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
    dist = np.sqrt(np.maximum(_squared(index, sims), 0.0)).astype(np.float32)
    dist[idx < 0] = np.inf
    order = np.lexsort((idx, dist), axis=1)
    return np.take_along_axis(idx, order, 1).astype(np.int64), np.take_along_axis(dist, order, 1)


def _squared(index: Any, scores: np.ndarray) -> np.ndarray:
    """FAISS's scores as squared distances: L2 indexes return them, inner product ones 2 - 2 ip (unit vectors)."""
    return scores if index.metric_type == _faiss().METRIC_L2 else 2.0 - 2.0 * scores


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
    try:
        meta = json.loads(side.read_text())
    except ValueError as err:  # also a damaged encoding
        raise IndexMismatch(f"{side} is not readable json ({err}); rebuild the index") from None
    if not isinstance(meta, dict):
        raise IndexMismatch(f"{side} does not describe an index; rebuild it")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        raise IndexMismatch(f"{path} is not a readable FAISS index ({_reason(err)})") from None
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


def is_exact(index: Any) -> bool:
    """Whether `index` compares each query with every stored vector as it is (a flat index), not approximately."""
    return isinstance(index, _faiss().IndexFlat)


def _norm_range(x: np.ndarray, step: int = 1 << 16) -> tuple[float, float]:
    """Smallest and largest row length, in float64."""
    if len(x) == 0:
        return 0.0, 0.0
    sq = np.concatenate([np.einsum("ij,ij->i", b, b) for b in (x[i:i + step].astype(np.float64)
                                                             for i in range(0, len(x), step))])
    return float(np.sqrt(sq.min())), float(np.sqrt(sq.max()))


def fetch_size(k: int) -> int:
    """Candidates asked of FAISS for k neighbours: float32 rounding can put a true neighbour a little past k.

    Ordering a candidate costs little beside FAISS's scan, which a row that needs more must run again.
    """
    return k + max(64, k // 2)


class VectorIndex:
    """A FAISS index with the float32 vectors it holds; its candidates are put in order by float64 distances.

    With an exact index ("Flat") `search` returns the true k nearest, ties by index, equal to
    skinsim.search.neighbours.nearest_numpy: rows whose candidates might miss one are searched again with more.
    """

    def __init__(self, vectors: np.ndarray, spec: str = "Flat", metric: str = "ip", seed: int = 0,
                 index: Any = None):
        self.vectors = _as_rows(vectors)
        self.spec = spec
        # CPU only: the exactness bound below is for FAISS's CPU float32 arithmetic
        self.index = build(self.vectors, spec, seed, use_gpu=False, metric=metric) if index is None else index
        if self.index.ntotal != len(self.vectors):
            raise IndexMismatch(f"the index holds {self.index.ntotal} vectors, not the {len(self.vectors)} given")
        self.exact = is_exact(self.index)
        self.l2 = self.index.metric_type == _faiss().METRIC_L2
        self.norm_lo, self.norm_hi = _norm_range(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    @classmethod
    def load(cls, path: str | Path, vectors: np.ndarray) -> "VectorIndex":
        """A stored index (see `save`) over `vectors`; IndexMismatch when it was built from other vectors."""
        index, meta = load(path, vectors)
        return cls(vectors, meta.get("spec", "?"), index=index)

    def save(self, path: str | Path) -> Path:
        """Write the index and its sidecar json (spec, size, the vectors' digest)."""
        return save(self.index, path, self.vectors, self.spec)

    def set_effort(self, **params: int) -> None:
        """Search parameters of the index (efSearch, nprobe, k_factor_rf); see `set_effort`."""
        set_effort(self.index, **params)

    def nbytes(self) -> int:
        """Bytes of the FAISS index as stored (its memory, near enough), without the vectors kept for re-ranking."""
        faiss = _faiss()
        total = 0

        def count(chunk: bytes) -> None:
            nonlocal total
            total += len(chunk)

        faiss.write_index(self.index, faiss.PyCallbackIOWriter(count))
        return total

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
               block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Indices and Euclidean distances of the k nearest vectors to each query, nearest first, ties by index.

        `exclude[i]`, when given, is an index that query i may not return (-1: none); k is capped at the number
        of vectors (less one with `exclude`). An approximate index may find fewer: such rows end in -1 and inf.
        """
        q = _as_rows(queries)
        ex = None if exclude is None else np.asarray(exclude, dtype=np.int64).reshape(-1)
        if ex is not None and len(ex) != len(q):
            raise ValueError(f"exclude holds {len(ex)} entries for {len(q)} queries")
        if len(self) and q.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the index {self.vectors.shape[1]}")
        k = int(min(k, len(self) - (1 if ex is not None else 0)))
        idx = np.full((len(q), max(k, 0)), -1, dtype=np.int64)
        d2 = np.full((len(q), max(k, 0)), np.inf)
        for start in range(0, len(q) if k > 0 else 0, block):
            rows = slice(start, start + block)
            idx[rows], d2[rows] = self._search_block(q[rows], k, None if ex is None else ex[rows])
        return idx, np.sqrt(d2).astype(np.float32)

    def _search_block(self, q: np.ndarray, k: int, ex: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        idx, d2 = np.empty((len(q), k), dtype=np.int64), np.empty((len(q), k))
        todo = np.arange(len(q))
        fetch = min(n, fetch_size(k) + (ex is not None))
        while len(todo):
            q_todo, ex_todo = q[todo], None if ex is None else ex[todo]
            if self.exact and 2 * fetch >= n:
                # FAISS would hand back most of the vectors: float64 products give the candidates at once
                idx[todo], d2[todo] = nearest_by_products(q_todo, self.vectors, k, ex_todo)
                break
            scores, cand = self.index.search(q_todo, fetch)
            if ex_todo is not None:
                cand[cand == ex_todo[:, None]] = -1
            found, found_d2 = take_nearest(cand, squared_distances(q_todo, self.vectors, cand), k)
            done = np.ones(len(todo), bool)
            if self.exact:
                # a vector FAISS ranked after the last one fetched is at least this far: beyond the k-th found,
                # nothing was missed; else fetch more for that row
                done = self._unseen_bound(q_todo, scores[:, -1].astype(np.float64)) > found_d2[:, -1]
            idx[todo[done]], d2[todo[done]] = found[done], found_d2[done]
            todo, fetch = todo[~done], min(n, 4 * fetch)
        return idx, d2

    def _unseen_bound(self, q: np.ndarray, last: np.ndarray) -> np.ndarray:
        """A lower bound on the squared distance of every vector FAISS ranked after its `last` score.

        FAISS computes in float32 (unit roundoff u): an inner product of d terms is off by at most gamma_d |q| |g|,
        gamma_d = d u / (1 - d u) (Higham, Accuracy and Stability of Numerical Algorithms, 3.1), and a squared L2
        distance, as |q|^2 + |g|^2 - 2 q.g or as a sum of squared differences, by less than (gamma_d + 3u)
        (|q| + |g|)^2. The bound allows twice these.
        """
        d = q.shape[1]
        gamma = d * FLOAT32_EPS / (1 - d * FLOAT32_EPS)
        q64 = q.astype(np.float64)
        q_sq = np.einsum("ij,ij->i", q64, q64)
        q_norm = np.sqrt(q_sq)
        if self.l2:
            return last - 2 * (gamma + 3 * FLOAT32_EPS) * (q_norm + self.norm_hi) ** 2
        return q_sq + self.norm_lo ** 2 - 2 * last - 4 * gamma * q_norm * self.norm_hi
