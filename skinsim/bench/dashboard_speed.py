"""Benchmark the dashboard in a real headless browser: time to the first rendered map, and from a click on the
map to the neighbour panel.

    python -m skinsim.bench.dashboard_speed [--run data/runs/demo | --synthetic 1000000] [--loads 5] [--clicks 8]

Targets depend on the run's size (`targets`); a run whose map is a sample also times zooming into a box. Without
--run or --synthetic it uses data/runs/demo, else the newest run under data/runs, else a synthetic 10,015-image run (the
real HAM10000 ids and images when ../shared/ham10000 exists) made in a temporary folder. The browser is Debian's
chromium driven by Playwright. The helpers here (server, browser, clicking a map point) are shared with
tests/test_browser_dashboard.py.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from skinsim.runs.folder import REPO_ROOT, is_run, latest_run, read_vectors

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

MAP_CANVAS = '[class*="st-key-umap_"] canvas'  # the chart's key is umap_<n>, n counting zooms
# Records, on every page, when the map first has drawn its points (ms since navigation start): the chart's canvas
# holds coloured pixels below its legends. The map is drawn in one frame (no progressive slices), so the first
# such frame has every point.
MAP_READY_INIT = """(() => {
  window.__mapReady = null;
  const poll = () => {
    // ECharts draws on several stacked canvases (layers); the points may be on any of them
    for (const c of document.querySelectorAll('%s')) {
      if (c.width < 100 || c.height < 100) continue;
      const top = Math.round(60 * c.height / c.clientHeight);
      const d = c.getContext('2d').getImageData(0, top, c.width, c.height - top).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 16) if (d[i + 3] > 0 && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) n++;
      if (n > 50) { window.__mapReady = performance.now(); return; }
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
})()""" % MAP_CANVAS
# Armed before a click: times (from mousedown) when the panel shows the clicked id, when its images have loaded,
# and when the map carries the yellow 'selected' mark at the clicked point (canvas pixel x, y).
CLICK_WATCH_JS = """([id, x, y]) => {
  if (window.__watch) window.__watch.disconnect();
  const w = {id, down: null, panel: null, images: null, marks: null};
  window.__click = w;
  document.addEventListener('mousedown', () => { if (w.down === null) w.down = performance.now(); },
                            {capture: true, once: true});
  const yellow = () => {
    // on the yellow disc around the point (its centre shows the clicked point itself), on any layer
    return [...document.querySelectorAll('%s')].some(c => {
      const s = c.width / c.clientWidth, ctx = c.getContext('2d');
      return [[6, 0], [-6, 0], [0, 6], [0, -6]].some(([dx, dy]) => {
        const p = ctx.getImageData(Math.round((x + dx) * s), Math.round((y + dy) * s), 1, 1).data;
        return p[3] > 200 && Math.abs(p[0] - 255) < 12 && Math.abs(p[1] - 217) < 12 && Math.abs(p[2] - 47) < 20;
      });
    });
  };
  const check = () => {
    if (w.down === null) { requestAnimationFrame(check); return; }
    const card = document.querySelector('.st-key-map_focus_card');
    const panel = document.querySelector('.st-key-neighbours');
    if (w.panel === null && card && card.innerText.includes(w.id) && panel && panel.innerText.includes('#1 '))
      w.panel = performance.now() - w.down;
    if (w.panel !== null && w.images === null) {
      const imgs = [...document.querySelectorAll('.st-key-neighbours img, .st-key-map_focus_card img')];
      if (imgs.length && imgs.every(i => i.complete && i.naturalWidth > 0)) w.images = performance.now() - w.down;
    }
    if (w.marks === null && yellow()) w.marks = performance.now() - w.down;
    if (w.images === null || w.marks === null) requestAnimationFrame(check);
  };
  window.__watch = new MutationObserver(check);
  window.__watch.observe(document.body, {subtree: true, childList: true, characterData: true});
  requestAnimationFrame(check);
}""" % MAP_CANVAS


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(runs_root: Path, env: dict[str, str] | None = None, timeout: float = 90.0) -> Iterator[str]:
    """Run `streamlit run dashboard/Home.py` over `runs_root` on a free port; yield its base URL."""
    port = free_port()
    full_env = {**os.environ, "SKINSIM_RUNS": str(runs_root), **(env or {})}
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboard" / "Home.py"),
           "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    # a file, not a pipe: a pipe nobody reads would stall the server once its buffer fills
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"streamlit exited early:\n{log.read().decode(errors='replace')}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def server_rss_mib(url: str) -> float:
    """Resident memory (MiB) of the Streamlit process serving `url`, found by its port in /proc."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"streamlit" in b" ".join(cmd) and port.encode() in cmd:
                status = (proc / "status").read_text()
                return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024
        except (OSError, StopIteration, ValueError):
            continue
    return float("nan")


def chromium_path() -> str | None:
    """Debian's chromium, or None when it is not installed."""
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).is_file():
            return candidate
    return None


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright) with the project's launch flags."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def new_page(b: Any, width: int = 1500, height: int = 1000) -> Any:
    """A fresh page (own context, so no cache is shared) that records when the map is drawn."""
    context = b.new_context(viewport={"width": width, "height": height})
    context.add_init_script(MAP_READY_INIT)
    return context.new_page()


def open_map(page: Any, url: str, timeout_ms: int = 60_000) -> float:
    """Load the map page; seconds from navigation start to the map's points being drawn."""
    page.goto(f"{url}/map")
    page.wait_for_function("() => window.__mapReady !== null", timeout=timeout_ms, polling=50)
    return page.evaluate("() => window.__mapReady") / 1000


def map_points(page: Any, run: Path, region: Any = None) -> np.ndarray:
    """(n, 3) array of [embedding row, page x, page y] for every point the map draws (default colouring, no
    filter, test search space, whole map or a `dashboard.map_view.Region`), from the same plan the dashboard draws
    and its fixed axes."""
    from dashboard import figures, map_data

    chart = map_data.map_chart(run, "dx", map_data.MapFilter(), ("test",), region)
    source = chart.spec["dataset"][0]["source"]
    box = page.locator(MAP_CANVAS).first.bounding_box()
    xy = figures.point_pixels(chart.spec, source["x"].to_numpy(), source["y"].to_numpy(), box["width"],
                              box["height"])
    return np.column_stack([chart.rows, xy[:, 0] + box["x"], xy[:, 1] + box["y"]])


# ECharts draws its brush buttons on the canvas; where they land under Streamlit's theme (measured on a screenshot):
# pixels left of the chart's right edge, and down from its top
BRUSH_BUTTONS = {"rect": 98, "polygon": 67, "clear": 36}
BRUSH_BUTTON_TOP = 30


def draw_box(page: Any, x0: float, y0: float, x1: float, y1: float) -> None:
    """Pick the map's box tool and drag a box between two page points."""
    box = page.locator(MAP_CANVAS).first.bounding_box()
    page.mouse.click(box["x"] + box["width"] - BRUSH_BUTTONS["rect"], box["y"] + BRUSH_BUTTON_TOP)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def isolated_points(points: np.ndarray, count: int, min_gap_px: float = 3.0) -> list[int]:
    """Indices of the points farthest from any other on screen (at least `min_gap_px`), most isolated first,
    so a click hits that point and no other."""
    xy = points[:, 1:]
    gaps = np.empty(len(xy))
    for start in range(0, len(xy), 1024):
        d = np.sqrt(((xy[start:start + 1024, None, :] - xy[None, :, :]) ** 2).sum(-1))
        d[np.arange(d.shape[0]), np.arange(start, start + d.shape[0])] = np.inf
        gaps[start:start + 1024] = d.min(1)
    order = [int(i) for i in np.argsort(-gaps) if gaps[i] >= min_gap_px]
    return order[:count]


def click_point(page: Any, image_id: str, px: float, py: float, timeout_ms: int = 30_000) -> dict[str, float]:
    """Hover then click a map point at page pixel (px, py); ms from mousedown to panel shown, its images loaded,
    and the point marked on the map."""
    px, py = float(px), float(py)
    box = page.locator(MAP_CANVAS).first.bounding_box()
    page.mouse.move(px, py)
    page.wait_for_timeout(300)  # let the hover label settle, as it would under a person's pointer
    page.evaluate(CLICK_WATCH_JS, [image_id, px - box["x"], py - box["y"]])
    page.mouse.click(px, py)
    page.wait_for_function("() => window.__click.images !== null && window.__click.marks !== null",
                           timeout=timeout_ms, polling=50)
    return page.evaluate("() => ({panel: window.__click.panel, images: window.__click.images, "
                         "marks: window.__click.marks})")


def panel_ids(page: Any) -> tuple[str, list[str]]:
    """(selected id, neighbour ids in rank order) as the page shows them."""
    import re

    card = page.locator(".st-key-map_focus_card").inner_text()
    captions = page.locator(".st-key-neighbours").inner_text()
    ids = re.findall(r"#\d+ \S+ · d=[\d.]+ · (\S+)", captions)
    return re.search(r"Selected lesion:\s*(\S+)", card).group(1), ids


def expected_neighbours(run: Path, image_id: str, k: int = 10, splits: tuple[str, ...] = ("test",)) -> list[str]:
    """The k nearest ids to a stored image in the search space (itself excluded), from stored embeddings."""
    from skinsim.search.search_index import SearchIndex

    return SearchIndex.from_run(run, search_space=splits).query_id(image_id, k)["image_id"].tolist()


def summarise(name: str, values: list[float], target: float | None) -> str:
    """One table row: median, min, max (seconds) and whether the median meets the target."""
    med = statistics.median(values)
    verdict = "" if target is None else ("ok" if med <= target else "MISSED")
    target_s = "" if target is None else f"<= {target:.1f}"
    return f"| {name:<38} | {len(values):>2} | {med:6.3f} | {min(values):6.3f} | {max(values):6.3f} | " \
           f"{target_s:>6} | {verdict:<6} |"


def targets(n: int) -> tuple[float, float]:
    """(first map, click -> panel with its images) targets in seconds for a run of `n` images (issue 11): 1.5 and
    0.4 at 10k, 3 and 0.5 at 100k; at 1M the page opens in 5 s and a click has no time target."""
    if n <= 20_000:
        return 1.5, 0.4
    if n <= 200_000:
        return 3.0, 0.5
    return 5.0, float("inf")


def time_clicks(page: Any, run: Path, ids: np.ndarray, clicks: int) -> tuple[dict[str, list[float]], int]:
    """Click `clicks` + 1 isolated points (the first warms the caches and is not timed), each far from the last;
    the times per measure and how many panels differed from the expected neighbours."""
    from skinsim.search.search_index import SearchIndex

    index = SearchIndex.from_run(run, search_space=("test",))
    points = map_points(page, run)
    times: dict[str, list[float]] = {"panel": [], "images": [], "marks": []}
    wrong, last = 0, np.array([-1e9, -1e9])
    candidates = isolated_points(points, 8 * (clicks + 1))
    for i in range(clicks + 1):
        # far from the last click, whose yellow mark and label must not be taken for the new one's
        target = next(t for t in candidates if np.hypot(*(points[t][1:] - last)) > 80)
        candidates.remove(target)
        row, px, py = points[target]
        last = points[target][1:]
        image_id = str(ids[int(row)])
        took = click_point(page, image_id, px, py)
        shown, neighbours = panel_ids(page)
        if shown != image_id or neighbours != index.query_id(image_id, 10)["image_id"].tolist():
            wrong += 1
        if i > 0:
            for key in times:
                times[key].append(took[key] / 1000)
        page.wait_for_timeout(300)
    return times, wrong


def time_zoom(page: Any, run: Path) -> float:
    """Draw a box around the densest tenth of the map and zoom into it; seconds from the button's mousedown to the
    zoomed map drawn."""
    points = map_points(page, run)
    xs, ys = points[:, 1], points[:, 2]
    cx, cy = np.median(xs), np.median(ys)
    half = 0.1 * (xs.max() - xs.min())
    draw_box(page, cx - half, cy - half, cx + half, cy + half)
    button = page.get_by_role("button", name="Zoom into the box")
    button.wait_for(timeout=60_000)
    page.evaluate("() => { window.__mapReady = null; window.__zoomDown = null; document.addEventListener("
                  "'mousedown', () => { window.__zoomDown = performance.now(); }, {capture: true, once: true}); }")
    button.click()
    page.get_by_role("button", name="Back to the whole map").wait_for(timeout=60_000)
    page.evaluate(MAP_READY_INIT)
    page.wait_for_function("() => window.__mapReady !== null", timeout=60_000, polling=50)
    return page.evaluate("() => (window.__mapReady - window.__zoomDown) / 1000")


def bench_run(run: Path, loads: int, clicks: int) -> list[str]:
    """Measure one run in the browser; the result table as lines."""
    meta, _ = read_vectors(run / "embeddings.parquet")
    ids = meta["image_id"].to_numpy()
    map_s, click_s = targets(len(meta))
    with tempfile.TemporaryDirectory() as tmp:
        # a runs folder holding only this run makes it the dashboard's default
        root = Path(tmp)
        (root / run.name).symlink_to(run.resolve(), target_is_directory=True)
        with streamlit_server(root) as url, browser() as b:
            page = new_page(b)
            cold = open_map(page, url, timeout_ms=600_000)
            page.context.close()
            first_visit, returning = [], []
            for _ in range(loads):
                page = new_page(b)  # a new browser profile: nothing cached
                first_visit.append(open_map(page, url, timeout_ms=120_000))
                page.context.close()
            page = new_page(b)
            open_map(page, url, timeout_ms=120_000)
            for _ in range(loads):
                # a new tab of the same profile: the browser's cache holds Streamlit's and ECharts' code
                page = page.context.new_page()
                returning.append(open_map(page, url, timeout_ms=120_000))
            page.wait_for_timeout(500)
            times, wrong = time_clicks(page, run, ids, clicks)
            from dashboard import map_data

            sampled = map_data.map_chart(run, "dx", map_data.MapFilter(), ("test",))
            zoom = time_zoom(page, run) if sampled.sampled else None
            rss = server_rss_mib(url)
    lines = [f"run: {run} ({len(meta):,} images; the map draws {len(sampled.rows):,} of them"
             + (" over density cells)" if sampled.sampled else ")"),
             f"machine: {os.cpu_count()} CPU cores; browser: {chromium_path()} (headless, --disable-gpu); first map "
             f"after the server started (cold caches, the run read from disk): {cold:.3f} s",
             "", "| measure (seconds)                      |  n | median |    min |    max | target | result |",
             "|" + "-" * 40 + "|----|--------|--------|--------|--------|--------|",
             summarise("open map page -> map drawn, first visit", first_visit, map_s),
             summarise("open map page -> map drawn, cached", returning, map_s),
             summarise("click -> neighbour panel shown", times["panel"], None),
             summarise("click -> panel images loaded", times["images"], None if click_s == float("inf") else click_s),
             summarise("click -> neighbours marked on the map", times["marks"], None)]
    if zoom is not None:
        lines.append(summarise("box -> zoom button -> zoomed map drawn", [zoom], None))
    lines.append(f"server memory (resident) after the clicks: {rss:,.0f} MiB")
    lines.append(f"panel checked against skinsim.search.search_index.SearchIndex: {clicks + 1 - wrong} of {clicks + 1} clicks "
                 "showed the clicked image and its expected neighbours")
    return lines


def screenshot(run: Path, out: Path, dx: str = "mel") -> str:
    """Open the map, click an isolated image of diagnosis `dx` (any, when the run has none to click), wait for its
    neighbours' pictures and save the whole page as a PNG at `out`; returns the clicked image's id."""
    meta, _ = read_vectors(run / "embeddings.parquet")
    ids, codes = meta["image_id"].to_numpy(), meta["dx"].to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / run.name).symlink_to(run.resolve(), target_is_directory=True)
        with streamlit_server(root) as url, browser() as b:
            page = new_page(b, height=1300)
            open_map(page, url, timeout_ms=600_000)
            points = map_points(page, run)
            isolated = isolated_points(points, len(points))
            target = next((i for i in isolated if codes[int(points[i][0])] == dx), isolated[0])
            row, px, py = points[target]
            click_point(page, str(ids[int(row)]), px, py)
            page.wait_for_timeout(1500)  # the hover label fades and the marks settle, as a person would see them
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
    return str(ids[int(row)])


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.bench.dashboard_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path,
                        help="run folder (default: data/runs/demo, else the newest local run, else a synthetic one)")
    parser.add_argument("--loads", type=int, default=5, help="page loads timed for the first map")
    parser.add_argument("--clicks", type=int, default=8, help="clicks timed on the map")
    parser.add_argument("--synthetic", type=int, metavar="N",
                        help="benchmark a synthetic run of N images (128-d clustered embeddings, no image files), "
                             "made in a temporary folder, e.g. 100000 or 1000000")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="instead of timing: click a melanoma on the map and save the page with its neighbours")
    args = parser.parse_args(argv)
    if args.synthetic is not None and args.synthetic < 100:
        parser.error("--synthetic needs at least 100 images")
    if chromium_path() is None:
        print("chromium is not installed; the benchmark needs a browser", file=sys.stderr)
        return 2
    run = args.run if args.run else REPO_ROOT / "data" / "runs" / "demo"
    if not args.run and not is_run(run):
        run = latest_run(REPO_ROOT / "data" / "runs") or run
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            sys.path.insert(0, str(REPO_ROOT / "tests"))
            from dashboard_helpers import make_large_run

            start = time.monotonic()
            run = make_large_run(Path(tmp), args.synthetic)
            print(f"made a synthetic run of {args.synthetic:,} images in {time.monotonic() - start:.0f} s")
        elif not is_run(run):
            if args.run:
                print(f"{run} is not a complete run folder", file=sys.stderr)
                return 2
            # the synthetic run maker lives with the tests; it needs no torch
            sys.path.insert(0, str(REPO_ROOT / "tests"))
            from dashboard_helpers import make_full_size_run

            run = make_full_size_run(Path(tmp), "synthetic-10015")
            print("no run under data/runs: benchmarking a synthetic 10,015-image run (random clustered embeddings, "
                  "real HAM10000 ids and images when ../shared/ham10000 exists)")
        if args.screenshot:
            print(f"clicked {screenshot(run, args.screenshot)}; page saved to {args.screenshot}")
        else:
            print("\n".join(bench_run(run, args.loads, args.clicks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
