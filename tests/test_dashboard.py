"""The Streamlit dashboard through its entry point (AppTest), plus its upload checks and accuracy numbers."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")
from PIL import Image  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import dashboard_helpers as helpers  # noqa: E402
from skinsim.bench.dashboard_speed import expected_neighbours  # noqa: E402
from skinsim.runs.folder import is_run, list_runs, read_vectors  # noqa: E402

ENTRY = str(helpers.REPO / "dashboard" / "Home.py")
PAGES = ["app_pages/home.py", "app_pages/embedding_map.py", "app_pages/retrieval_accuracy.py",
         "app_pages/query_viewer.py", "app_pages/data_quality.py"]
TITLES = ["skinsim", "Embedding map", "Retrieval accuracy", "Query viewer", "Data quality"]
DEMO = helpers.REPO / "data" / "runs" / "demo"
ID = re.compile(r"ISIC_\d+")


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with two small synthetic runs (images included); 'synthetic' is the newest."""
    root = tmp_path_factory.mktemp("dash_runs")
    helpers.make_run(root, "other", n=200, seed=1, latest=False)
    helpers.make_run(root, "synthetic", n=300, seed=0)
    return root


def app(runs: Path, monkeypatch: pytest.MonkeyPatch, timeout: float = 60) -> AppTest:
    """The dashboard over the runs folder `runs`, after its first run."""
    monkeypatch.setenv("SKINSIM_RUNS", str(runs))
    at = AppTest.from_file(ENTRY, default_timeout=timeout)
    return at.run()


def assert_clean(at: AppTest, title: str) -> None:
    """The page rendered its title and raised nothing."""
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title][:1] == [title]


def neighbour_ids(at: AppTest) -> list[str]:
    """The ids on the neighbour tiles (captions '#rank dx · d=... · id'), in rank order."""
    for image in at.image:
        if image.captions and image.captions[0].startswith("#1 "):
            return [ID.search(c).group(0) for c in image.captions]
    return []


@pytest.mark.parametrize("page,title", list(zip(PAGES, TITLES)))
def test_every_page_on_a_synthetic_run(runs_root: Path, monkeypatch: pytest.MonkeyPatch, page: str,
                                       title: str) -> None:
    at = app(runs_root, monkeypatch)
    at.switch_page(page).run()
    assert_clean(at, title)
    assert at.sidebar.selectbox[0].value == "synthetic"  # the newest run by default


@pytest.mark.parametrize("page,title", list(zip(PAGES, TITLES)))
def test_every_page_without_any_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str,
                                    title: str) -> None:
    at = app(tmp_path, monkeypatch)
    at.switch_page(page).run()
    assert_clean(at, title)
    assert any("python -m skinsim.train --data-dir ../shared/ham10000" in c.value for c in at.code)


@pytest.mark.skipif(not is_run(DEMO), reason="no committed demo run at data/runs/demo")
@pytest.mark.parametrize("page,title", list(zip(PAGES, TITLES)))
def test_every_page_on_the_demo_run(monkeypatch: pytest.MonkeyPatch, page: str, title: str) -> None:
    at = app(DEMO.parent, monkeypatch, timeout=120)
    at.switch_page(page).run()
    assert_clean(at, title)
    assert at.sidebar.selectbox[0].value == "demo"


@pytest.mark.skipif(is_run(DEMO) or not list_runs(DEMO.parent), reason="no run under data/runs besides the demo")
@pytest.mark.parametrize("page,title", list(zip(PAGES, TITLES)))
def test_every_page_on_the_newest_local_run(monkeypatch: pytest.MonkeyPatch, page: str, title: str) -> None:
    at = app(DEMO.parent, monkeypatch, timeout=120)
    at.switch_page(page).run()
    assert_clean(at, title)


def test_home_shows_the_run_and_its_baselines(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs_root, monkeypatch)
    assert_clean(at, "skinsim")
    metrics = json.loads((runs_root / "synthetic" / "metrics.json").read_text())
    labels = [m.label for m in at.metric]
    assert "P@1" in labels
    shown = float(at.metric[labels.index("P@1")].value)
    assert shown == pytest.approx(metrics["overall"]["p_at_1"], abs=5e-4)
    table = next(d.value for d in at.dataframe if "always-nv" in d.value.columns)
    assert table.loc["P@1", "random"] == pytest.approx(metrics["baselines"]["random"]["p_at_1"])
    assert any("- preset: `default`" in m.value for m in at.markdown)  # the preset the run started from


def test_the_run_picker_switches_every_page(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs_root, monkeypatch)
    at.sidebar.selectbox[0].set_value("other").run()
    at.switch_page("app_pages/query_viewer.py").run()
    assert_clean(at, "Query viewer")
    query = at.selectbox(key="query_id").value
    assert query in set(read_vectors(runs_root / "other" / "embeddings.parquet")[0]["image_id"])


def test_query_viewer_shows_the_expected_neighbours(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = runs_root / "synthetic"
    at = app(runs_root, monkeypatch)
    at.switch_page("app_pages/query_viewer.py").run()
    ids = at.selectbox(key="query_id").options
    chosen = ids[3]
    at.selectbox(key="query_id").set_value(chosen)
    at.slider(key="query_k").set_value(7).run()
    assert_clean(at, "Query viewer")
    assert neighbour_ids(at) == expected_neighbours(run, chosen, 7)
    assert any("not a diagnosis" in c.value for c in at.caption)
    # adding train to the search space changes where neighbours come from
    at.radio(key="query_space").set_value("test + train").run()
    assert neighbour_ids(at) == expected_neighbours(run, chosen, 7, ("test", "train"))


def test_query_viewer_random_and_diagnosis_filter(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs_root, monkeypatch)
    at.switch_page("app_pages/query_viewer.py").run()
    at.selectbox(key="query_dx").set_value("nv").run()
    at.button(key="query_random").click().run()
    assert_clean(at, "Query viewer")
    meta = read_vectors(runs_root / "synthetic" / "embeddings.parquet")[0].set_index("image_id")
    chosen = at.selectbox(key="query_id").value
    assert meta.loc[chosen, "split"] == "val" and meta.loc[chosen, "dx"] == "nv"


def test_map_panel_shows_the_clicked_points_neighbours(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = runs_root / "synthetic"
    meta = read_vectors(run / "embeddings.parquet")[0]
    clicked = meta["image_id"].iloc[11]
    at = app(runs_root, monkeypatch)
    at.switch_page("app_pages/embedding_map.py").run()
    # a click reaches the page through the chart's callback, which stores the clicked id here
    at.session_state["map_focus"] = ("synthetic", clicked)
    at.run()
    assert_clean(at, "Embedding map")
    assert neighbour_ids(at) == expected_neighbours(run, clicked, 10)
    assert any(clicked in m.value for m in at.markdown)
    at.selectbox(key="map_colour").set_value("top-1 right/wrong").run()
    assert_clean(at, "Embedding map")


def test_map_box_selection_grid_and_filters(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = read_vectors(runs_root / "synthetic" / "embeddings.parquet")[0]
    chosen = meta["image_id"].iloc[:45].tolist()
    at = app(runs_root, monkeypatch)
    at.switch_page("app_pages/embedding_map.py").run()
    at.session_state["map_selected"] = ("synthetic", chosen)
    at.multiselect(key="f_dx").set_value(["nv"]).run()
    assert_clean(at, "Embedding map")
    assert any("Selection: 45 images" in s.value for s in at.subheader)
    grid = next(i for i in at.image if i.captions and " · " in i.captions[0] and not i.captions[0].startswith("#"))
    assert len(grid.captions) == 30  # the first page of the paged grid
    counts = next(d.value for d in at.dataframe if "nv" in d.value.columns)
    assert int(counts["nv"].iloc[0]) == int((meta["dx"].iloc[:45] == "nv").sum())
    assert any(c.value.startswith(f"{int((meta['dx'] == 'nv').sum()):,} of 300") for c in at.caption)


def test_accuracy_page_compares_two_runs_and_follows_k(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs_root, monkeypatch)
    at.switch_page("app_pages/retrieval_accuracy.py").run()
    at.slider(key="acc_k").set_value(10)
    at.selectbox(key="acc_second").set_value("other").run()
    assert_clean(at, "Retrieval accuracy")
    overall = next(d.value for d in at.dataframe if "micro" in d.value.columns)
    assert set(overall["run"]) == {"synthetic", "other"}
    assert "P@10" in set(overall["metric"])


def test_recomputed_accuracy_matches_the_stored_metrics(runs_root: Path) -> None:
    from dashboard import accuracy, run_data

    run = runs_root / "synthetic"
    metrics = json.loads((run / "metrics.json").read_text())
    at5 = accuracy.retrieval_at_k(str(run), run_data.stamp(run), 5)
    assert at5.overall.loc["p_at_1", "micro"] == pytest.approx(metrics["overall"]["p_at_1"])
    assert at5.overall.loc["p_at_k", "micro"] == pytest.approx(metrics["overall"]["p_at_5"])
    assert at5.overall.loc["recall_at_k", "micro"] == pytest.approx(metrics["overall"]["r_at_5"])
    assert at5.overall.loc["p_at_1", "macro"] == pytest.approx(metrics["overall"]["macro_p_at_1"])
    assert at5.overall.loc["p_at_1", "random_micro"] == pytest.approx(metrics["baselines"]["random"]["p_at_1"])
    assert at5.majority == metrics["baselines"]["majority"]["label"] == "nv"
    assert at5.overall.loc["p_at_1", "majority_micro"] == pytest.approx(metrics["baselines"]["majority"]["p_at_1"])
    stored = np.array(metrics["confusion"]["matrix"])
    labels = metrics["confusion"]["labels"]
    shown = at5.confusion.reindex(index=labels, columns=labels, fill_value=0).to_numpy()
    assert (shown == stored).all()
    for dx, row in at5.per_class.iterrows():
        assert row["p_at_1_lo"] <= row["p_at_1"] <= row["p_at_1_hi"]
        lo, hi = metrics["per_class"][dx]["p_at_1_ci95"]
        assert (row["p_at_1_lo"], row["p_at_1_hi"]) == pytest.approx((lo, hi))


def test_a_rewritten_run_is_read_again(tmp_path: Path) -> None:
    import os

    from dashboard import map_data, run_data

    run = helpers.make_run(tmp_path, "again", n=120, images=False)
    assert len(run_data.embeddings(run)[0]) == 120
    helpers.make_run(tmp_path, "again", n=150, images=False)
    later = (run / "config.json").stat().st_mtime + 10
    os.utime(run / "config.json", (later, later))  # mtime resolution must not hide the rewrite
    assert len(run_data.embeddings(run)[0]) == 150
    assert len(map_data.map_table(run)) == 150


def test_map_chart_sends_every_point_once_as_a_table(runs_root: Path) -> None:
    from dashboard import map_data

    run = runs_root / "synthetic"
    table = map_data.map_table(run)
    chart = map_data.map_chart(run, "dx", map_data.MapFilter())
    assert sorted(chart.rows.tolist()) == sorted(table["row"].tolist()) and not chart.sampled
    source = chart.spec["dataset"][0]["source"]
    # a dataframe: Streamlit sends it to the browser as Arrow, not as JSON number lists
    assert isinstance(source, pd.DataFrame) and len(source) == len(table)
    by_row = table.set_index("row")
    assert source["image_id"].tolist() == by_row.loc[chart.rows, "image_id"].tolist()  # rows follow the series
    only_mel = map_data.map_chart(run, "dx", map_data.MapFilter(dx=("mel",)))
    assert set(by_row.loc[only_mel.rows, "dx"]) == {"mel"} and only_mel.in_view == (table["dx"] == "mel").sum()


def test_missing_images_get_placeholders_and_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKINSIM_DATA", raising=False)
    helpers.make_run(tmp_path, "noimages", n=150, images=False)
    at = app(tmp_path, monkeypatch)
    at.switch_page("app_pages/query_viewer.py").run()
    assert_clean(at, "Query viewer")
    notes = [i.value for i in at.info if "python -m skinsim.data download" in i.value]
    assert len(notes) == 1
    assert len(neighbour_ids(at)) == 10  # tiles are still drawn, as placeholders


# ---------------------------------------------------------------- uploads


def jpeg(size: tuple[int, int] = (200, 150), colour: tuple[int, int, int] = (140, 90, 80)) -> bytes:
    """A small valid JPEG."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


def png(size: tuple[int, int], colour: tuple[int, int, int] = (140, 90, 80)) -> bytes:
    """A valid PNG."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def bomb_png() -> bytes:
    """A tiny PNG that declares 20,000 x 20,000 pixels."""
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, format="PNG")
    return out.getvalue()


BAD_UPLOADS = {
    "text.jpg": b"this is not an image at all",
    "truncated.jpg": jpeg()[:400],
    "bomb.png": bomb_png(),
    "empty.png": b"",
    "one_pixel.jpg": jpeg((1, 1)),
    "sliver.jpg": jpeg((20, 400)),
}


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
def test_read_upload_refuses_bad_files(name: str) -> None:
    from dashboard.uploads import UploadError, read_upload

    with pytest.raises(UploadError):
        read_upload(BAD_UPLOADS[name], name)


@pytest.mark.parametrize("size", [(1, 1), (20, 400), (400, 20), (23, 23)])
def test_read_upload_refuses_images_too_small_to_show_a_lesion(size: tuple[int, int]) -> None:
    from dashboard.uploads import MIN_SIDE, UploadError, read_upload

    assert MIN_SIDE == 24
    for content in (jpeg(size), png(size)):
        with pytest.raises(UploadError, match=rf"{size[0]}x{size[1]} pixels.*at least {MIN_SIDE} pixels on the "
                                              "shorter side"):
            read_upload(content, "tiny")


@pytest.mark.parametrize("size", [(4032, 3024), (3024, 4032), (1000, 250), (250, 1000), (600, 450), (150, 200),
                                  (24, 24), (24, 2000)])
def test_read_upload_accepts_photos_of_any_aspect_ratio(size: tuple[int, int]) -> None:
    from dashboard.uploads import read_upload

    img = read_upload(jpeg(size), "photo.jpg")
    assert img.size == size and img.mode == "RGB"


def test_read_upload_refuses_other_formats_and_oversized_files(monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import uploads

    gif = io.BytesIO()
    Image.new("RGB", (20, 20)).save(gif, format="GIF")
    with pytest.raises(uploads.UploadError, match="GIF"):
        uploads.read_upload(gif.getvalue(), "a.gif")
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(uploads.UploadError, match="limit"):
        uploads.read_upload(jpeg(), "big.jpg")


def test_read_upload_accepts_jpeg_and_png() -> None:
    from dashboard.uploads import read_upload

    png = io.BytesIO()
    Image.new("RGBA", (64, 48), (10, 20, 30, 128)).save(png, format="PNG")
    assert read_upload(png.getvalue()).mode == "RGB"
    assert read_upload(jpeg()).size == (200, 150)


def upload_page(runs: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The query viewer switched to upload mode."""
    at = app(runs, monkeypatch, timeout=120)
    at.switch_page("app_pages/query_viewer.py").run()
    at.radio(key="query_mode").set_value("Upload an image").run()
    return at


def test_bad_uploads_are_refused_and_the_app_keeps_running(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = upload_page(runs_root, monkeypatch)
    assert "at least 24 pixels on the shorter side" in at.file_uploader(key="query_upload").help
    for name, content in BAD_UPLOADS.items():
        if not content:
            continue  # the browser never sends an empty upload
        at.file_uploader(key="query_upload").set_value((name, content, "image/jpeg")).run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and errors[0].startswith(f"Upload refused: {name} "), (name, errors)
        assert not neighbour_ids(at)
        if name in ("one_pixel.jpg", "sliver.jpg"):
            assert "at least 24 pixels on the shorter side" in errors[0]
    at.radio(key="query_mode").set_value("Validation image").run()
    assert_clean(at, "Query viewer")
    assert neighbour_ids(at)


def test_upload_without_a_checkpoint_explains_why(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = upload_page(runs_root, monkeypatch)
    at.file_uploader(key="query_upload").set_value(("lesion.jpg", jpeg(), "image/jpeg")).run()
    assert not at.exception
    assert any("checkpoint" in w.value for w in at.warning)


def test_upload_is_embedded_with_the_runs_checkpoint(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skinsim.search.search_index import SearchIndex

    meta = pd.read_parquet(tiny_run / "embeddings.parquet", columns=["image_id", "path", "split"])
    data_dir = Path(json.loads((tiny_run / "config.json").read_text())["meta"]["data_dir"])
    probe = meta[meta["split"] == "test"].iloc[0]
    content = (data_dir / probe["path"]).read_bytes()
    expected = SearchIndex.from_run(tiny_run).query_image(Image.open(io.BytesIO(content)).convert("RGB"), k=5)

    at = upload_page(tiny_run.parent, monkeypatch)
    at.slider(key="query_k").set_value(5)
    at.file_uploader(key="query_upload").set_value(("probe.jpg", content, "image/jpeg")).run()
    assert_clean(at, "Query viewer")
    assert neighbour_ids(at) == expected["image_id"].tolist()
    assert neighbour_ids(at)[0] == probe["image_id"]  # a test image finds itself first
    # a bad upload after a good one is refused and the page still works
    at.file_uploader(key="query_upload").set_value(("broken.jpg", content[: len(content) // 3], "image/jpeg")).run()
    assert not at.exception
    assert any(e.value.startswith("Upload refused") for e in at.error)


def test_accuracy_page_shows_same_lesion_retrieval_and_copes_with_old_runs(
        runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    stored = json.loads((runs_root / "synthetic" / "metrics.json").read_text())["same_lesion"]
    at = app(runs_root, monkeypatch)
    at.switch_page("app_pages/retrieval_accuracy.py").run()
    assert_clean(at, "Retrieval accuracy")
    if stored["n_queries"]:
        same = next(d.value for d in at.dataframe if "R@1" in d.value.columns)
        assert same.loc[same["run"] == "synthetic", "R@1"].iloc[0] == pytest.approx(stored["r_at_1"])
    both = json.loads((runs_root / "synthetic" / "metrics.json").read_text())["both_ways"]["both_ways"]
    table = next(d.value for d in at.dataframe if "its queries" in d.value.columns)
    shown = table.loc[table["queries"] == "val -> test and test -> val", "macro P@1"].iloc[0]
    assert shown == pytest.approx(both["macro_p_at_1"])
    # a run written before the metric existed: the page says how to add it instead of failing
    old_root = tmp_path / "old"
    shutil.copytree(runs_root / "synthetic", old_root / "synthetic")
    metrics = json.loads((old_root / "synthetic" / "metrics.json").read_text())
    del metrics["same_lesion"], metrics["both_ways"]
    (old_root / "synthetic" / "metrics.json").write_text(json.dumps(metrics))
    at = app(old_root, monkeypatch)
    at.switch_page("app_pages/retrieval_accuracy.py").run()
    assert_clean(at, "Retrieval accuracy")
    assert any("python -m skinsim.evaluate RUN" in c.value for c in at.caption)


def test_label_colours_stay_the_same_whatever_else_is_shown() -> None:
    from dashboard.figures import DX_COLOURS, colour_map, label_colours

    assert label_colours(["mel", "nv"])["mel"] == label_colours(["MEL", "SCC"])["MEL"] == DX_COLOURS["mel"]
    run = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]  # PAD-UFES-20's labels
    assert colour_map("dx", ["SCC"], run)["SCC"] == colour_map("dx", ["ACK", "SEK", "SCC"], run)["SCC"]  # filters
    assert len(set(label_colours(run).values())) == len(run)
    assert label_colours(["benign", "malignant"])["benign"] != label_colours(["benign", "malignant"])["malignant"]


def test_a_datasets_own_columns_follow_the_standard_ones_in_neighbour_tables() -> None:
    from dashboard.neighbour_data import neighbour_table

    meta = pd.DataFrame({"image_id": ["a", "b"], "lesion_id": ["l1", "l2"], "dx": ["benign", "malignant"],
                         "split": ["test", "test"], "path": ["a.jpg", "b.jpg"], "diagnosis": ["nevus", "melanoma"],
                         "age_band": ["20-39", "40-59"]})
    table = neighbour_table(meta, np.array([1, 0]), np.array([0.1, 0.2]))
    assert table.columns.tolist() == ["rank", "image_id", "distance", "dx", "lesion_id", "split", "path", "diagnosis"]
    assert table["diagnosis"].tolist() == ["melanoma", "nevus"]
