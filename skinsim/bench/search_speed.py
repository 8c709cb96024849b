"""Time skinsim's nearest-neighbour search: exact numpy, FAISS Flat, HNSW and IVF-PQ, at 10k, 100k and 1M vectors.

10k is the demo run's own embeddings (data/runs/demo; a seeded sample of them are the queries, the rest the
gallery); larger sizes are seeded synthetic unit vectors of 128 dimensions in clusters on a low-dimensional
subspace, as trained embeddings are. Every FAISS row is skinsim's VectorIndex: FAISS's candidates put in
exact order by float64 distances. Recall@10 is measured against the exact neighbours (numpy).

    python -m skinsim.bench.search_speed                                   # 10k, 100k, 1M (minutes, a few GB)
    python -m skinsim.bench.search_speed --sizes 10000,100000 --queries 100 --markdown
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from skinsim.search.exact import nearest_numpy
from skinsim.search.vector_index import VectorIndex

DEMO = Path(__file__).resolve().parents[2] / "data" / "runs" / "demo"
DIM = 128
K = 10
NUMPY_SINGLE_ROWS = 3e7  # numpy is timed one query at a time on at most this many gallery rows in all (30 at 1M)


@dataclass
class Row:
    """One index at one size: what it cost and how well it found the exact neighbours."""

    n: int
    source: str
    index: str
    build_s: float
    index_mb: float | None
    single_ms: float
    single_n: int
    batch_ms: float
    n_queries: int
    recall: float


def clustered_vectors(n: int, dim: int = DIM, seed: int = 0, clusters: int = 1000, rank: int = 16) -> np.ndarray:
    """n unit vectors: Gaussian clusters on a random rank-`rank` subspace plus a little noise in every dimension."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, dim)) / np.sqrt(rank)
    centres = rng.standard_normal((clusters, rank))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 1 << 16):
        size = min(1 << 16, n - start)
        h = centres[rng.integers(0, clusters, size)] + 0.5 * rng.standard_normal((size, rank))
        x = h @ basis + 0.05 * rng.standard_normal((size, dim))
        out[start:start + size] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def dataset(n: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(gallery, queries, where they come from): the demo run's embeddings up to their number, else synthetic ones.

    From the demo run, `queries` of its embeddings are the queries and up to n of the others the gallery.
    """
    from skinsim.runs.folder import is_run, read_vectors

    vectors = read_vectors(DEMO / "embeddings.parquet")[1] if is_run(DEMO) else np.zeros((0, DIM))
    if n <= len(vectors) and queries < len(vectors):
        order = np.random.default_rng(seed).permutation(len(vectors))
        q, rest = order[:queries], np.sort(order[queries:][:n])
        return vectors[rest], vectors[q], "demo run"
    x = clustered_vectors(n + queries, seed=seed)
    return x[:n], x[n:], "synthetic"


def specs(n: int) -> list[tuple[str, dict[str, int]]]:
    """(FAISS factory string, search parameters) of the indexes timed at n vectors; "" is the numpy search.

    IVF: the largest power of two of lists at most 4 sqrt(n) (the usual choice) and n / 39 (FAISS's fewest
    training vectors per list); 4-bit fast-scan PQ codes, of which RFlat re-scores 4 x the candidates from the
    stored vectors: PQ alone ranks them too coarsely for recall.
    """
    lists = 1 << int(np.log2(max(1.0, min(4 * np.sqrt(n), n / 39))))
    return [("", {}), ("Flat", {}), ("HNSW32", {"efSearch": 128}),
            (f"IVF{lists},PQ32x4fs,RFlat", {"nprobe": 32, "k_factor_rf": 4})]


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """fn's result and the seconds it took."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the exact k nearest that were found, averaged over queries."""
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)]))


def single_ms(search: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    """Median milliseconds of one query at a time."""
    times = [timed(lambda q=q: search(q[None]))[1] for q in queries]
    return 1000 * statistics.median(times)


def bench_index(spec: str, effort: dict[str, int], gallery: np.ndarray, queries: np.ndarray,
                truth: np.ndarray | None, source: str) -> tuple[Row, np.ndarray]:
    """Build one index over `gallery` and time its searches; the row, and the neighbours it found."""
    if not spec:
        def search(q: np.ndarray) -> np.ndarray:
            return nearest_numpy(q, gallery, K)[0]
        build_s, mb = 0.0, None
        n_single = max(1, min(len(queries), int(NUMPY_SINGLE_ROWS // len(gallery))))
    else:
        index, build_s = timed(lambda: VectorIndex(gallery, spec))
        index.set_effort(**effort)
        mb = index.nbytes() / 2 ** 20

        def search(q: np.ndarray) -> np.ndarray:
            return index.search(q, K)[0]
        n_single = len(queries)
    one = single_ms(search, queries[:n_single])
    found, batch_s = timed(lambda: search(queries))
    name = (spec or "numpy exact") + "".join(f" {k}={v}" for k, v in effort.items())
    return Row(len(gallery), source, name, build_s, mb, one, n_single, 1000 * batch_s / len(queries), len(queries),
               recall_at_k(found, found if truth is None else truth)), found


def bench_size(n: int, queries: int, seed: int, log: Callable[[str], None]) -> list[Row]:
    """Every index at one size, the exact numpy search first: its neighbours are the truth for recall."""
    gallery, q, source = dataset(n, queries, seed)
    rows, truth = [], None
    for spec, effort in specs(len(gallery)):
        row, found = bench_index(spec, effort, gallery, q, truth, source)
        truth = found if truth is None else truth
        rows.append(row)
        log("  ".join(cells(row)))
    return rows


HEADER = ["vectors", "data", "index", "build s", "index MB", "ms/query, one at a time", "ms/query, batched",
          "recall@10"]


def cells(row: Row) -> list[str]:
    """A row's table cells; a one-at-a-time time over fewer queries than the batch names how many."""
    single = f"{row.single_ms:.3f}" + (f" ({row.single_n} queries)" if row.single_n < row.n_queries else "")
    return [f"{row.n:,}", row.source, row.index, f"{row.build_s:.1f}",
            "-" if row.index_mb is None else f"{row.index_mb:.1f}", single, f"{row.batch_ms:.3f}",
            f"{row.recall:.3f}"]


def table(rows: list[Row], markdown: bool) -> str:
    """The whole table, plain (aligned columns) or markdown."""
    lines = [HEADER] + [cells(r) for r in rows]
    if markdown:
        rule = ["---:", "---", "---"] + ["---:"] * 5
        return "\n".join("| " + " | ".join(line) + " |" for line in [lines[0], rule] + lines[1:])
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) if i in (1, 2) else c.rjust(w) for i, (c, w) in
                               enumerate(zip(line, widths))) for line in lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: print the timing table."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.bench.search_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="gallery sizes, comma-separated (default 10000,100000,1000000; 10000 = the demo run)")
    parser.add_argument("--queries", type=int, default=300, help="queries per size (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic vectors and the query sample")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table (for docs/results.md)")
    parser.add_argument("--threads", type=int, default=0,
                        help="FAISS threads (default 0: FAISS's own choice, one per core); on a busy machine 1 "
                             "keeps one-at-a-time queries from waiting on each other")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes takes whole numbers separated by commas, not {args.sizes!r}")
    if not sizes or min(sizes) < 2 * K:
        parser.error(f"--sizes must name at least one size of {2 * K} or more")
    if args.queries < 1 or args.threads < 0:
        parser.error("--queries must be at least 1 and --threads at least 0")
    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    start, rows = time.perf_counter(), []
    for n in sizes:
        print(f"{n:,} vectors ...", file=sys.stderr)
        rows += bench_size(n, args.queries, args.seed, lambda line: print(line, file=sys.stderr))
    print(table(rows, args.markdown))
    print(f"{time.perf_counter() - start:.0f} s in all, peak memory {peak_rss_gb():.1f} GB", file=sys.stderr)
    return 0


def peak_rss_gb() -> float:
    """The largest resident memory this process has had (Linux reports kB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 30 if sys.platform == "darwin" else peak / 2 ** 20


if __name__ == "__main__":
    sys.exit(main())
