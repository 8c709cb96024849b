"""skinsim.search.search_index on a trained tiny run."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinsim.search.exact import nearest_numpy
from skinsim.search.neighbours import nearest
from skinsim.runs.folder import read_vectors
from skinsim.search.search_index import SearchIndex


def test_query_by_id_matches_stored_embeddings(tiny_run: Path):
    index = SearchIndex.from_run(tiny_run)
    table, vectors = read_vectors(tiny_run / "embeddings.parquet")
    query = table.index[table["split"] == "val"][0]
    found = index.query_id(table["image_id"][query], k=3)
    test_rows = np.flatnonzero(table["split"] == "test")
    idx, dist = nearest(vectors[query:query + 1], vectors[test_rows], 3)
    assert list(found["image_id"]) == list(table["image_id"].to_numpy()[test_rows[idx[0]]])
    assert np.allclose(found["distance"], dist[0], atol=1e-5)
    assert list(found["rank"]) == [1, 2, 3] and set(found["split"]) == {"test"}
    assert index.vector_index.spec == "Flat"  # auto_spec: exact for a search space this small
    ref_idx, ref_dist = nearest_numpy(vectors[query:query + 1], vectors[test_rows], 3)
    assert np.array_equal(idx, ref_idx) and np.array_equal(found["distance"].to_numpy(np.float32), ref_dist[0])


def test_query_image_embeds_like_training(tiny_run: Path, synthetic_data: Path):
    """A file of the run embeds to (nearly) its stored vector, so its own id comes back first."""
    index = SearchIndex.from_run(tiny_run, search_space=("test",))
    row = index.search_table.iloc[0]
    path = synthetic_data / row["path"]
    found = index.query_image(path, k=5)
    assert found["image_id"].iloc[0] == row["image_id"] and found["distance"].iloc[0] < 1e-3
    with Image.open(path) as img:
        again = index.query_image(img.copy(), k=5)
    assert list(again["image_id"]) == list(found["image_id"])
    for col in ("dx", "lesion_id", "age", "sex", "localization"):
        assert col in found.columns


def test_search_space_with_train(tiny_run: Path):
    index = SearchIndex.from_run(tiny_run, search_space=("test", "train"))
    assert set(index.search_table["split"]) == {"test", "train"}
    assert index.data_dir is not None


def test_search_cli_prints_neighbours_by_file_and_id(tiny_run: Path, synthetic_data: Path, capsys):
    from skinsim.search.search_index import main

    index = SearchIndex.from_run(tiny_run)
    row = index.search_table.iloc[0]
    assert main(["--run", str(tiny_run), str(synthetic_data / row["path"]), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert f"3 nearest in test of run {tiny_run.name}" in out and row["image_id"] in out
    val_id = index.table.loc[index.table["split"] == "val", "image_id"].iloc[0]
    assert main(["--run", str(tiny_run), "--id", val_id, "-k", "2", "--search-space", "test,train"]) == 0
    out = capsys.readouterr().out
    expected = index.__class__.from_run(tiny_run, ("test", "train")).query_id(val_id, 2)["image_id"]
    assert all(i in out for i in expected)


def test_search_cli_bad_input_says_why(tiny_run: Path, tmp_path: Path, capsys):
    from skinsim.search.search_index import main

    assert main(["--run", str(tiny_run), str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert main(["--run", str(tiny_run), str(broken)]) == 2
    assert "broken.jpg could not be read as an image" in capsys.readouterr().err
    assert main(["--run", str(tiny_run), "--id", "ISIC_nope"]) == 2
    assert "ISIC_nope is not in run" in capsys.readouterr().err
    assert main(["--run", str(tmp_path / "no-run"), "--id", "x"]) == 2
    assert "not a complete run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--run", str(tiny_run)])
    assert exit_.value.code == 2 and "at least one IMAGE" in capsys.readouterr().err


def test_search_through_another_index(tiny_run: Path):
    """An HNSW graph over a search space this small visits every vector: it finds what the exact index finds."""
    flat = SearchIndex.from_run(tiny_run, search_space=("test", "train"))
    hnsw = SearchIndex.from_run(tiny_run, search_space=("test", "train"), index="HNSW32")
    assert hnsw.vector_index.spec == "HNSW32" and not hnsw.vector_index.exact
    val_id = flat.table.loc[flat.table["split"] == "val", "image_id"].iloc[0]
    a, b = flat.query_id(val_id, 5), hnsw.query_id(val_id, 5)
    assert list(a["image_id"]) == list(b["image_id"]) and np.array_equal(a["distance"], b["distance"])
    vectors = flat.vectors[:3]
    for x, y in zip(flat.neighbours(vectors, 4), hnsw.neighbours(vectors, 4)):
        assert list(x["image_id"]) == list(y["image_id"])
    # a stored image of the search space never finds itself
    test_id = flat.search_table["image_id"].iloc[0]
    assert test_id not in set(hnsw.query_id(test_id, 5)["image_id"])


def test_search_cli_index_flag(tiny_run: Path, capsys):
    from skinsim.search.search_index import main

    index = SearchIndex.from_run(tiny_run)
    val_id = index.table.loc[index.table["split"] == "val", "image_id"].iloc[0]
    assert main(["--run", str(tiny_run), "--id", val_id, "-k", "3", "--index", "HNSW32"]) == 0
    out = capsys.readouterr().out
    assert all(i in out for i in index.query_id(val_id, 3)["image_id"])
    assert main(["--run", str(tiny_run), "--id", val_id, "--index", "Bogus12"]) == 2
    assert "error: index 'Bogus12' is not a FAISS index factory string" in capsys.readouterr().err
