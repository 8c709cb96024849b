"""skinsim.search on a trained tiny run."""
from pathlib import Path

import numpy as np
from PIL import Image

from skinsim.neighbours import nearest
from skinsim.runs import read_vectors
from skinsim.search import SearchIndex


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
