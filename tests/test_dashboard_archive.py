"""The query viewer searches a run's image archives (`python -m skinsim.index`): validation images by their stored
vector, uploads embedded with the run's checkpoint; hits show their image (or a placeholder) and metadata."""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")
from PIL import Image  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import dashboard_helpers as helpers  # noqa: E402
from skinsim.search import vector_index  # noqa: E402
from skinsim.search.archive import open_archive  # noqa: E402
from skinsim.search.indexing import main as index_main  # noqa: E402
from skinsim.runs.folder import read_vectors  # noqa: E402

ENTRY = str(helpers.REPO / "dashboard" / "Home.py")
PAGE = "app_pages/query_viewer.py"
N = 12
GONE = 4  # the archive image whose file is deleted after indexing


@pytest.fixture(scope="module")
def runs(tiny_run: Path, synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding a copy of the tiny run with archive 'clinic': 12 images from a CSV with metadata."""
    root = tmp_path_factory.mktemp("archive_dash")
    run = root / "runs" / "tiny"
    shutil.copytree(tiny_run, run)
    meta = pd.read_csv(synthetic_data / "HAM10000_metadata.csv")
    (root / "clinic" / "imgs").mkdir(parents=True)
    rows = []
    for i, image_id in enumerate(meta["image_id"][::7][:N]):
        shutil.copy(synthetic_data / "images" / f"{image_id}.jpg", root / "clinic" / "imgs" / f"{image_id}.jpg")
        rows.append({"path": f"imgs/{image_id}.jpg", "dx": meta["dx"].iloc[i * 7], "note": f"visit {i}"})
    pd.DataFrame(rows).to_csv(root / "clinic" / "clinic.csv", index=False)
    assert index_main(["--run", str(run), str(root / "clinic" / "clinic.csv")]) == 0
    (root / "clinic" / rows[GONE]["path"]).unlink()
    return root / "runs"


def app(runs: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The query viewer over the runs folder `runs`."""
    monkeypatch.setenv("SKINSIM_RUNS", str(runs))
    at = AppTest.from_file(ENTRY, default_timeout=120).run()
    at.switch_page(PAGE).run()
    return at


def archive_tiles(at: AppTest) -> list[str]:
    """File names on the archive hit tiles ('#rank · d=... · name'), in rank order."""
    for image in at.image:
        if image.captions and image.captions[0].startswith("#1 · "):
            return [c.split(" · ")[-1] for c in image.captions]
    return []


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title][:1] == ["Query viewer"]


def test_validation_image_searches_the_archive(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch)
    assert at.radio(key="query_space").options == ["test", "test + train", "archive: clinic"]
    at.radio(key="query_space").set_value("archive: clinic")
    at.slider(key="query_k").set_value(N).run()
    assert_clean(at)
    query = at.selectbox(key="query_id").value
    table, vectors = read_vectors(runs / "tiny" / "embeddings.parquet")
    expected = open_archive(runs / "tiny", "clinic").neighbours(vectors[(table["image_id"] == query).to_numpy()], N)[0]
    assert archive_tiles(at) == [Path(p).name for p in expected["path"]]
    shown = next(d.value for d in at.dataframe if "note" in d.value.columns)
    assert list(shown.columns) == ["rank", "id", "path", "distance", "dx", "note"]
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected, check_dtype=False)
    # the deleted file is a placeholder tile, and one notice says so
    notices = [i.value for i in at.info if "not found at the paths" in i.value]
    assert len(notices) == 1 and notices[0].startswith(f"1 of these {N} images")
    assert any(s.value.startswith("Neighbours' diagnosis vote") for s in at.subheader)  # the CSV has dx


def test_archive_images_and_placeholders(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import images, search

    archive = open_archive(runs / "tiny", "clinic")
    paths = archive.table["path"].tolist()
    picture, found = search.archive_image_bytes(runs / "tiny", "clinic", paths[0])
    assert found and picture == images.thumbnail(archive.image_path(paths[0]))
    picture, found = search.archive_image_bytes(runs / "tiny", "clinic", paths[GONE])
    assert not found and picture == images.placeholder()


def test_upload_searches_the_archive_with_the_runs_checkpoint(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skinsim.search.search_index import SearchIndex

    archive = open_archive(runs / "tiny", "clinic")
    probe = archive.table["path"].iloc[7]
    content = archive.image_path(probe).read_bytes()
    vector = SearchIndex.from_run(runs / "tiny").embed_images([Image.open(io.BytesIO(content)).convert("RGB")])
    expected = archive.neighbours(vector, 5)[0]

    at = app(runs, monkeypatch)
    at.radio(key="query_mode").set_value("Upload an image")
    at.radio(key="query_space").set_value("archive: clinic")
    at.slider(key="query_k").set_value(5).run()
    at.file_uploader(key="query_upload").set_value(("probe.jpg", content, "image/jpeg")).run()
    assert_clean(at)
    assert archive_tiles(at) == [Path(p).name for p in expected["path"]]
    assert archive_tiles(at)[0] == Path(probe).name  # an archive image finds itself first
    first = next(i for i in at.image if i.captions and i.captions[0].startswith("#1 · "))
    assert re.match(r"#1 · d=0\.00\d · ", first.captions[0])


def test_a_broken_archive_is_a_warning_and_runs_without_archives_keep_their_spaces(
        runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "runs"
    shutil.copytree(runs / "tiny", broken / "tiny")
    folder = broken / "tiny" / "archives" / "clinic"
    other = np.random.default_rng(0).normal(size=(N, 16)).astype(np.float32)
    vector_index.save(vector_index.build(other, "Flat"), folder / "index.faiss", other, "Flat")
    at = app(broken, monkeypatch)
    at.radio(key="query_space").set_value("archive: clinic").run()
    assert_clean(at)
    assert any("cannot be searched" in w.value and "other vectors" in w.value for w in at.warning)
    assert not archive_tiles(at)

    shutil.rmtree(broken / "tiny" / "archives")
    at = app(broken, monkeypatch)
    assert_clean(at)
    assert at.radio(key="query_space").options == ["test", "test + train"]
    assert any(i.captions and i.captions[0].startswith("#1 ") for i in at.image)  # the split neighbours
