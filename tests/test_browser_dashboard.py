"""The dashboard in headless Chromium against a live `streamlit run dashboard/Home.py`: every page renders, a
click on the map shows that point's neighbours, an upload on the query viewer is searched (or refused).

Screenshots land in artifacts/screenshots/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright python package is not installed")
import dashboard_helpers as helpers  # noqa: E402
from skinsim.bench import dashboard_speed as bd  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(bd.chromium_path() is None, reason="chromium is not installed at /usr/bin/chromium")]
SHOTS = helpers.REPO / "artifacts" / "screenshots"
PAGES = {"": "skinsim", "map": "Embedding map", "accuracy": "Retrieval accuracy", "query": "Query viewer",
         "quality": "Data quality"}
DEMO = helpers.REPO / "data" / "runs" / "demo"
SHOT_HEIGHT = 1900
CAPTION = re.compile(r"#\d+ \S+ · d=[\d.]+ · (\S+)")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module."""
    with bd.browser() as b:
        yield b


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, run) of a live dashboard over a small run."""
    root = tmp_path_factory.mktemp("browser_runs")
    run = helpers.make_sample_run(root)
    with bd.streamlit_server(root) as url:
        yield url, run


def shot(page: Any, name: str) -> None:
    """Save a screenshot for people to look at, once every image on the page has loaded."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Streamlit scrolls inside its own container, so a tall viewport is what captures the whole page
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def assert_no_exception(page: Any) -> None:
    """No Streamlit exception box on the page."""
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()


def test_every_page_renders(site: tuple[str, Path], chromium: Any) -> None:
    url, _ = site
    page = bd.new_page(chromium, height=SHOT_HEIGHT)
    for path, title in PAGES.items():
        page.goto(f"{url}/{path}")
        page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
        if path == "map":
            page.wait_for_function("() => window.__mapReady !== null", timeout=60_000)
        if path == "accuracy":
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4", timeout=60_000)
        if path == "query":
            page.locator(".st-key-neighbours img").first.wait_for(timeout=60_000)
        assert_no_exception(page)
        shot(page, path or "home")
    page.context.close()


def test_clicking_a_point_shows_its_neighbours(site: tuple[str, Path], chromium: Any) -> None:
    url, run = site
    import pandas as pd

    ids = pd.read_parquet(run / "embeddings.parquet", columns=["image_id"])["image_id"].to_numpy()
    page = bd.new_page(chromium, height=SHOT_HEIGHT)
    bd.open_map(page, url)
    for attempt in range(2):  # two different points: the panel must follow the click
        points = bd.map_points(page, run)
        row, px, py = points[bd.isolated_points(points, 2)[attempt]]
        image_id = str(ids[int(row)])
        bd.click_point(page, image_id, px, py)
        shown, neighbours = bd.panel_ids(page)
        assert shown == image_id
        assert neighbours == bd.expected_neighbours(run, image_id, 10)
        assert_no_exception(page)
    shot(page, "map_clicked")
    page.context.close()


def test_box_selection_shows_a_grid(site: tuple[str, Path], chromium: Any) -> None:
    url, run = site
    page = bd.new_page(chromium, height=SHOT_HEIGHT)
    bd.open_map(page, url)
    points = bd.map_points(page, run)
    # a box around the middle third of the points, drawn with the map's box tool
    xs, ys = points[:, 1], points[:, 2]
    x0, x1 = sorted(xs)[len(xs) // 3], sorted(xs)[2 * len(xs) // 3]
    y0, y1 = ys.min() - 5, ys.max() + 5
    inside = int(((xs >= x0) & (xs <= x1)).sum())
    bd.draw_box(page, x0, y0, x1, y1)
    heading = page.get_by_text(re.compile(r"Selection: [\d,]+ images"))
    heading.wait_for(timeout=30_000)
    selected = int(re.search(r"Selection: ([\d,]+)", heading.inner_text()).group(1).replace(",", ""))
    assert abs(selected - inside) <= max(2, inside // 50)  # points on the box's edge may fall either way
    page.locator(".st-key-selection_grid img").first.wait_for(timeout=30_000)
    assert_no_exception(page)
    shot(page, "map_box_selection")
    page.context.close()


def test_a_sampled_map_zooms_into_a_box_and_still_gives_neighbours(tmp_path: Path, chromium: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a run of about 600 images drawn as if it were a million: at most 150 points over density cells
    monkeypatch.setenv("SKINSIM_MAP_POINTS", "150")  # for this process's map_points too
    run = helpers.make_sample_run(tmp_path)
    from dashboard import figures, map_data
    from dashboard.map_view import area_region

    table = map_data.map_table(run)
    n = f"{len(table):,}"
    with bd.streamlit_server(tmp_path, env={"SKINSIM_MAP_POINTS": "150"}) as url:
        page = bd.new_page(chromium, height=SHOT_HEIGHT)
        bd.open_map(page, url)
        page.get_by_text(re.compile(rf"of the {n} images that pass the filters are drawn")).wait_for(timeout=30_000)
        points = bd.map_points(page, run)
        assert len(points) <= 150 + 7
        # a box around the leftmost 100 images: it selects every image there, drawn or not, and holds few enough
        # to be drawn whole once zoomed into
        box = page.locator(bd.MAP_CANVAS).first.bounding_box()
        chart = map_data.map_chart(run, "dx", map_data.MapFilter())
        every = figures.point_pixels(chart.spec, table["x"], table["y"], box["width"], box["height"])
        xs, ys = points[:, 1], points[:, 2]
        x0, y0, y1 = xs.min() - 4, ys.min() - 4, ys.max() + 4
        x1 = box["x"] + float(np.sort(every[:, 0])[100])
        bd.draw_box(page, x0, y0, x1, y1)
        heading = page.get_by_text(re.compile(r"Selection: [\d,]+ images"))
        heading.wait_for(timeout=30_000)
        selected = int(re.search(r"Selection: ([\d,]+)", heading.inner_text()).group(1).replace(",", ""))
        drawn_inside = int(((xs >= x0) & (xs <= x1)).sum())
        assert selected > 2 * drawn_inside
        corners = invert(chart.spec, [x0 - box["x"], x1 - box["x"]], [y1 - box["y"], y0 - box["y"]], box)
        region = area_region({"brush_type": "rect", "coord_range": corners})
        in_box = int(region.contains(table["x"].to_numpy(), table["y"].to_numpy()).sum())
        assert abs(selected - in_box) <= max(2, in_box // 50)
        page.get_by_role("button", name=re.compile("Zoom into the box")).click()
        page.get_by_text(re.compile(rf"[\d,]+ of {n} images shown \(in the zoomed region\)")).wait_for(timeout=30_000)
        page.get_by_role("button", name=re.compile("Back to the whole map")).wait_for(timeout=30_000)
        page.wait_for_timeout(1000)  # the zoomed map replaces the whole one
        caption = page.get_by_text(re.compile(rf"of {n} images shown \(in the zoomed region\)")).inner_text()
        shown = int(caption.split(" of ")[0].replace(",", ""))
        assert abs(shown - in_box) <= max(2, in_box // 50)  # all of the box's images, not a sample
        # points located through the box as read back from pixels (within a pixel of the one the dashboard keeps)
        zoomed = bd.map_points(page, run, region)
        row, px, py = zoomed[bd.isolated_points(zoomed, 1)[0]]
        image_id = str(table.set_index("row").at[int(row), "image_id"])
        bd.click_point(page, image_id, px, py)
        shown_id, neighbours = bd.panel_ids(page)
        assert shown_id == image_id and neighbours == bd.expected_neighbours(run, image_id, 10)
        assert_no_exception(page)
        shot(page, "map_sampled_zoomed")
        page.context.close()


def invert(spec: dict, px: list[float], py: list[float], box: dict) -> list[list[float]]:
    """Map coordinates [[x0, x1], [y0, y1]] of chart pixels, under the spec's fixed axes and grid."""
    grid, xa, ya = spec["grid"], spec["xAxis"], spec["yAxis"]
    w, h = box["width"] - grid["left"] - grid["right"], box["height"] - grid["top"] - grid["bottom"]
    xs = [xa["min"] + (p - grid["left"]) / w * (xa["max"] - xa["min"]) for p in px]
    ys = [ya["max"] - (p - grid["top"]) / h * (ya["max"] - ya["min"]) for p in py]
    return [xs, ys]


def upload(page: Any, name: str, content: bytes, mime: str = "image/jpeg") -> None:
    """Put a file into the query viewer's uploader."""
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(
        {"name": name, "mimeType": mime, "buffer": content})


def test_upload_on_the_query_viewer(tiny_run: Path, chromium: Any) -> None:
    from PIL import Image

    from skinsim.search.search_index import SearchIndex

    import pandas as pd

    meta = pd.read_parquet(tiny_run / "embeddings.parquet", columns=["image_id", "path", "split"])
    data_dir = Path(json.loads((tiny_run / "config.json").read_text())["meta"]["data_dir"])
    probe = meta[meta["split"] == "test"].iloc[1]
    content = (data_dir / probe["path"]).read_bytes()
    expected = SearchIndex.from_run(tiny_run).query_image(Image.open(io.BytesIO(content)).convert("RGB"), k=10)

    with bd.streamlit_server(tiny_run.parent) as url:
        page = bd.new_page(chromium, height=SHOT_HEIGHT)
        page.goto(f"{url}/query")
        page.get_by_text("Upload an image").click()
        page.locator("[data-testid='stFileUploader']").wait_for(timeout=30_000)
        upload(page, "probe.jpg", content)
        page.locator(".st-key-upload_card").wait_for(timeout=120_000)
        page.locator(".st-key-neighbours img").first.wait_for(timeout=60_000)
        found = CAPTION.findall(page.locator(".st-key-neighbours").inner_text())
        assert found == expected["image_id"].tolist()
        assert found[0] == probe["image_id"]
        page.get_by_text("not a diagnosis", exact=False).first.wait_for(timeout=60_000)  # rendered after the tiles
        assert_no_exception(page)
        shot(page, "query_upload")

        # why similar: heat maps over the upload and its first neighbour, from the run's checkpoint
        page.locator(".st-key-query_why_pick").click()
        page.get_by_role("option", name=re.compile(r"^#1 ")).click()
        page.locator(".st-key-query_why img").nth(1).wait_for(timeout=60_000)
        why = page.locator(".st-key-query_why").inner_text()
        assert "query · uploaded image" in why and f"#1 {found[0]}" in why and "Grad-CAM" in why
        assert_no_exception(page)
        shot(page, "query_upload_why_similar")

        upload(page, "notes.jpg", b"<html>definitely not a picture</html>")
        page.get_by_text("Upload refused").wait_for(timeout=30_000)
        # the old results go once the rerun finishes (Streamlit drops stale elements at the end of a run)
        page.locator(".st-key-neighbours").wait_for(state="detached", timeout=30_000)
        assert_no_exception(page)
        shot(page, "query_upload_refused")
        page.context.close()


@pytest.mark.skipif(not (DEMO / "audit.json").is_file(), reason="the demo run has no committed audit")
def test_data_quality_on_the_demo_run_leads_to_the_map(chromium: Any) -> None:
    with bd.streamlit_server(DEMO.parent) as url:
        page = bd.new_page(chromium, height=SHOT_HEIGHT)
        page.goto(f"{url}/quality")
        page.get_by_role("heading", name="Data quality", exact=True).first.wait_for(timeout=60_000)
        # HAM10000's first byte-identical pair heads the duplicates
        page.locator(".st-key-dq_pair_0").get_by_text("ISIC_0029861 · nv").wait_for(timeout=60_000)
        assert "identical bytes" in page.locator(".st-key-dq_pair_0").inner_text()
        assert_no_exception(page)
        shot(page, "data_quality")
        page.get_by_role("tab", name=re.compile("Label-issue candidates")).click()
        page.get_by_text(re.compile(r"→ \S+ · quality")).first.wait_for(timeout=30_000)
        assert_no_exception(page)
        shot(page, "data_quality_label_issues")
        page.get_by_role("tab", name=re.compile("Near-duplicates")).click()
        page.locator(".st-key-dq_map_0_a button").first.click()
        page.wait_for_url(re.compile(r"/map$"), timeout=60_000)
        page.locator(".st-key-map_focus_card").get_by_text("ISIC_0029861").first.wait_for(timeout=60_000)
        page.locator(".st-key-neighbours img").first.wait_for(timeout=60_000)
        page.wait_for_function("() => window.__mapReady !== null", timeout=60_000)
        assert_no_exception(page)
        shot(page, "data_quality_to_map")
        page.context.close()


def test_without_any_run_every_page_explains_how_to_make_one(tmp_path: Path, chromium: Any) -> None:
    with bd.streamlit_server(tmp_path) as url:
        page = bd.new_page(chromium)
        for path, title in PAGES.items():
            page.goto(f"{url}/{path}")
            page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
            page.get_by_text("python -m skinsim.train --data-dir ../shared/ham10000").first.wait_for(timeout=30_000)
            assert_no_exception(page)
        page.goto(url)
        page.get_by_text("python -m skinsim.train --data-dir ../shared/ham10000").first.wait_for(timeout=30_000)
        shot(page, "home_no_run")
        page.context.close()


def test_several_users_click_at_once(site: tuple[str, Path]) -> None:
    from skinsim.bench.dashboard_load import load

    _, run = site
    lines = load(run, users=2, clicks=1)
    table = {line.split(" | ")[0].strip("| "): line.split(" | ")[1].strip(" |") for line in lines if " | " in line}
    assert table["clicks timed"] == "2"  # both users' clicks reached a neighbour panel
    for key in ("server memory after one user's map", "server memory after 2 users' clicks"):
        assert float(table[key].split()[0].replace(",", "")) > 0  # the server process was found and measured
