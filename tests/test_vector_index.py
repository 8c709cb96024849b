"""skinsim.search.vector_index: FAISS's exact index equals the numpy reference; approximate ones, storage, bad input."""
import json
from pathlib import Path

import numpy as np
import pytest

from skinsim.bench.search_speed import clustered_vectors, recall_at_k
from skinsim.search.exact import nearest_numpy
from skinsim.search.neighbours import nearest
from skinsim.runs.folder import is_run, read_vectors
from skinsim.search.vector_index import AUTO_EXACT_LIMIT, IndexMismatch, VectorIndex, auto_spec, build, search

DEMO = Path(__file__).resolve().parents[1] / "data" / "runs" / "demo"


def collapsed(n: int, dim: int, spread: float, seed: int) -> np.ndarray:
    """Unit float32 vectors bunched around one direction (near-ties everywhere), with a few exact duplicates."""
    rng = np.random.default_rng(seed)
    x = np.ones(dim) + spread * rng.standard_normal((n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    x[1::50] = x[0::50][:len(x[1::50])]  # duplicates: ties that only the index can break
    return x


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("k", [1, 10, 150, 2000])
def test_flat_equals_the_numpy_reference_on_near_ties(metric: str, k: int):
    g = collapsed(1500, 32, 1e-3, seed=0)
    q = collapsed(60, 32, 1e-3, seed=1)
    index = VectorIndex(g, "Flat", metric=metric)
    idx, dist = index.search(q, k)
    ref_idx, ref_dist = nearest_numpy(q, g, k)
    assert idx.shape == (60, min(k, 1500))
    assert np.array_equal(idx, ref_idx) and np.array_equal(dist, ref_dist)
    # the gallery searched with itself, each vector excluded: its duplicate comes first, at distance 0
    ex = np.arange(300)
    idx, dist = index.search(g[:300], k, exclude=ex)
    ref_idx, ref_dist = nearest_numpy(g[:300], g, k, exclude=ex)
    assert np.array_equal(idx, ref_idx) and np.array_equal(dist, ref_dist)
    assert not (idx == ex[:, None]).any() and idx[0, 0] == 1 and idx[1, 0] == 0 and dist[0, 0] == 0


def test_rows_that_might_miss_a_neighbour_are_searched_again():
    """Vectors closer together than float32 can tell apart: FAISS's first candidates cannot be trusted."""
    g = collapsed(3000, 64, 1e-5, seed=2)
    q = collapsed(5, 64, 1e-5, seed=3)
    index = VectorIndex(g, "Flat")
    asked, faiss_search = [], index.index.search

    def counting(x, k, *args, **kwargs):
        asked.append((len(x), k))
        return faiss_search(x, k, *args, **kwargs)

    index.index.search = counting
    idx, _ = index.search(q, 10)
    assert len(asked) > 1 and asked[1][1] > asked[0][1]  # a second, wider search
    assert np.array_equal(idx, nearest_numpy(q, g, 10)[0])


def test_k_larger_than_the_gallery_returns_all_of_it():
    g = collapsed(40, 8, 1e-2, seed=4)
    index = VectorIndex(g, "Flat")
    idx, dist = index.search(g[:3], 100)
    assert idx.shape == (3, 40) and sorted(idx[0]) == list(range(40)) and np.all(np.diff(dist, axis=1) >= 0)
    idx, _ = index.search(g[:3], 100, exclude=np.array([0, 1, 2]))
    assert idx.shape == (3, 39) and 0 not in idx[0]
    idx, _ = index.search(g[:3], 0)
    assert idx.shape == (3, 0)


@pytest.mark.skipif(not is_run(DEMO), reason="no committed demo run at data/runs/demo")
def test_flat_equals_numpy_on_the_demo_run():
    """The demo's embeddings sit 0.01-0.03 apart: float32 orders them wrongly, FAISS + float64 does not."""
    table, vectors = read_vectors(DEMO / "embeddings.parquet")
    split = table["split"].to_numpy()
    q, g = vectors[split == "val"], vectors[np.isin(split, ["test", "train"])]
    idx, dist = nearest(q, g, 50)
    ref_idx, ref_dist = nearest_numpy(q, g, 50)
    assert np.array_equal(idx, ref_idx) and np.array_equal(dist, ref_dist)
    idx, _ = VectorIndex(g, "Flat").search(q, 50)  # inner product, as SearchIndex builds it
    assert np.array_equal(idx, ref_idx)
    rows = np.arange(0, len(vectors), 5)
    idx, _ = nearest(vectors[rows], vectors, 10, exclude=rows)
    assert np.array_equal(idx, nearest_numpy(vectors[rows], vectors, 10, exclude=rows)[0])
    # FAISS's own float32 order differs on this data: the reason for re-ranking
    raw, _ = search(build(g, "Flat"), q, 50)
    assert (raw != ref_idx).any()


@pytest.mark.parametrize("spec,effort,floor", [("HNSW32", {"efSearch": 64}, 0.95),
                                                ("IVF64,PQ16x4fs,RFlat", {"nprobe": 16, "k_factor_rf": 4}, 0.9)])
def test_approximate_indexes_find_most_neighbours_in_exact_order(spec: str, effort: dict, floor: float, capsys):
    x = clustered_vectors(8200, dim=32, seed=5, clusters=50, rank=8)
    g, q = x[:8000], x[8000:]
    truth, truth_dist = VectorIndex(g, "Flat").search(q, 10)
    index = VectorIndex(g, spec)
    index.set_effort(**effort)
    idx, dist = index.search(q, 10)
    recall = recall_at_k(idx, truth)
    with capsys.disabled():
        print(f"\n{spec} {effort}: recall@10 {recall:.3f} on 8,000 clustered vectors")
    assert recall >= floor
    # whatever was found is in its exact order, with exact distances: the true first neighbour, when found, leads
    assert np.all(np.diff(dist, axis=1) >= 0)
    found = idx[:, 0] == truth[:, 0]
    assert found.mean() >= floor and np.array_equal(dist[found, 0], truth_dist[found, 0])


def test_exclusion_in_an_approximate_index():
    x = clustered_vectors(2000, dim=16, seed=6, clusters=20, rank=4)
    idx, _ = VectorIndex(x, "HNSW32").search(x[:50], 5, exclude=np.arange(50))
    assert idx.shape == (50, 5) and not (idx == np.arange(50)[:, None]).any()


@pytest.mark.parametrize("spec", ["Flat", "HNSW32", "IVF16,Flat"])
def test_save_and_load_round_trip(tmp_path: Path, spec: str):
    x = clustered_vectors(1000, dim=16, seed=7, clusters=10, rank=4)
    index = VectorIndex(x, spec)
    path = index.save(tmp_path / "index.faiss")
    meta = json.loads((tmp_path / "index.faiss.json").read_text())
    assert meta["spec"] == spec and meta["ntotal"] == 1000 and meta["dim"] == 16 and len(meta["digest"]) == 64
    again = VectorIndex.load(path, x)
    assert again.spec == spec and again.exact == (spec == "Flat")
    for a, b in zip(index.search(x[:20], 7), again.search(x[:20], 7)):
        assert np.array_equal(a, b)


def test_an_index_opened_with_other_vectors_is_refused(tmp_path: Path):
    x = clustered_vectors(500, dim=16, seed=8, clusters=10, rank=4)
    path = VectorIndex(x, "Flat").save(tmp_path / "index.faiss")
    other = x.copy()
    other[123, 4] += 1e-3
    with pytest.raises(IndexMismatch, match="built from other vectors"):
        VectorIndex.load(path, other)
    with pytest.raises(IndexMismatch, match="indexes 500 vectors of 16 dimensions, not the 499"):
        VectorIndex.load(path, x[:499])
    with pytest.raises(IndexMismatch, match="holds 500 vectors, not the 499 given"):
        VectorIndex(x[:499], index=build(x))


def test_a_missing_or_damaged_index_file_is_refused(tmp_path: Path):
    x = clustered_vectors(500, dim=16, seed=9, clusters=10, rank=4)
    with pytest.raises(IndexMismatch, match="does not exist"):
        VectorIndex.load(tmp_path / "none.faiss", x)
    path = VectorIndex(x, "Flat").save(tmp_path / "index.faiss")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(IndexMismatch, match="is not a readable FAISS index"):
        VectorIndex.load(path, x)
    path.write_bytes(data)
    Path(str(path) + ".json").write_text("{ not json")
    with pytest.raises(IndexMismatch, match="is not readable json"):
        VectorIndex.load(path, x)


def test_bad_specs_and_metrics_get_one_clear_error():
    x = clustered_vectors(100, dim=16, seed=10, clusters=5, rank=4)
    with pytest.raises(ValueError, match="'Bogus12' is not a FAISS index factory string .could not parse"):
        VectorIndex(x, "Bogus12")
    with pytest.raises(ValueError, match="'IVF1024,Flat' cannot be trained on 100 vectors .Number of training"):
        VectorIndex(x, "IVF1024,Flat")
    with pytest.raises(ValueError, match="metric is one of ip, l2"):
        VectorIndex(x, "Flat", metric="cosine")
    with pytest.raises(ValueError, match="queries have 8 dimensions, the index 16"):
        VectorIndex(x, "Flat").search(np.zeros((1, 8)), 3)


def test_faiss_order_search_excludes_and_caps_k():
    """`search` returns FAISS's own float32 order (skinsim.search.archive uses it); exclusion and k as in nearest."""
    line = np.array([[0.0], [1.0], [1.5], [4.0], [10.0]], dtype=np.float32)
    idx, dist = search(build(line, metric="l2"), line[[0, 1]], 10, exclude=np.array([0, -1]))
    assert idx.tolist() == [[1, 2, 3, 4], [1, 2, 0, 3]] and np.allclose(dist[0], [1, 1.5, 4, 10])


def test_auto_spec_and_exactness():
    assert auto_spec(10_015) == "Flat" and auto_spec(AUTO_EXACT_LIMIT) == "Flat"
    assert auto_spec(AUTO_EXACT_LIMIT + 1) == "HNSW32"
    x = clustered_vectors(300, dim=16, seed=11, clusters=5, rank=4)
    flat, hnsw = VectorIndex(x, "Flat"), VectorIndex(x, "HNSW32")
    assert flat.exact and not hnsw.exact
    assert flat.nbytes() >= 300 * 16 * 4 and hnsw.nbytes() > flat.nbytes()
