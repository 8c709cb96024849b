"""Load on the dashboard: several users, each in their own headless Chromium, clicking the map at the same time.

    python -m skinsim.bench.dashboard_load [--run data/runs/demo] [--users 5] [--clicks 8]

Each user opens the map in a browser of its own (a separate process), all wait until every map is drawn, then
each clicks its own set of points. It prints click -> neighbour panel over all users' clicks (median, p95, max)
and the Streamlit server's resident memory after one user's map and after the load. Streamlit's caches are
process-wide, so the run's embeddings are held once, however many users there are; the memory rows show it.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from skinsim.bench import dashboard_speed as bd
from skinsim.runs.folder import REPO_ROOT, is_run, read_vectors

TARGET_P95_S = 1.0


def one_user(url: str, run: str, user: int, users: int, clicks: int, ready: Any, out: Any) -> None:
    """A user's session: open the map, wait for every other user, click `clicks` points; put the panel times."""
    meta, _ = read_vectors(Path(run) / "embeddings.parquet")
    ids = meta["image_id"].to_numpy()
    times: list[float] = []
    with bd.browser() as b:
        page = bd.new_page(b)
        bd.open_map(page, url, timeout_ms=300_000)
        ready.wait()  # the clicks of all users overlap
        points = bd.map_points(page, Path(run))
        # every user its own points, so no two users click the same image
        mine = bd.isolated_points(points, users * (clicks + 1))[user::users]
        for target in mine[:clicks]:
            row, px, py = points[target]
            image_id = str(ids[int(row)])
            times.append(bd.click_point(page, image_id, px, py, 120_000)["panel"] / 1000)
    out.put(times)


def load(run: Path, users: int, clicks: int) -> list[str]:
    """Run the load and return the result table as lines."""
    ctx = mp.get_context("spawn")  # a fresh interpreter per user: Playwright's sync API is one per process
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / run.name).symlink_to(run.resolve(), target_is_directory=True)
        with bd.streamlit_server(root) as url:
            # one user's map first, so the server's caches hold the run (in its own process too: a caller, such as
            # a test, may already run Playwright, which allows one per process)
            # the barrier and queue are held here: passed as temporaries they can be freed before the child
            # unpickles them, and the child then dies without opening the map
            alone, unused = ctx.Barrier(1), ctx.Queue()
            first = ctx.Process(target=one_user, args=(url, str(run), 0, 1, 0, alone, unused))
            first.start()
            first.join()
            if first.exitcode != 0:
                raise RuntimeError(f"the first user's browser process failed (exit code {first.exitcode})")
            one_rss = bd.server_rss_mib(url)
            ready, out = ctx.Barrier(users), ctx.Queue()
            procs = [ctx.Process(target=one_user, args=(url, str(run), u, users, clicks, ready, out))
                     for u in range(users)]
            for p in procs:
                p.start()
            panel = [t for _ in procs for t in out.get(timeout=1800)]
            for p in procs:
                p.join()
                if p.exitcode != 0:
                    raise RuntimeError(f"a user's browser process failed (exit code {p.exitcode})")
            loaded_rss = bd.server_rss_mib(url)
    p95 = float(np.percentile(panel, 95))
    verdict = "ok" if p95 <= TARGET_P95_S else "MISSED"
    return [f"run: {run}; {users} users, each in its own headless Chromium, {clicks} clicks each at the same time",
            "", "| measure | value |", "| --- | ---: |",
            f"| clicks timed | {len(panel)} |",
            f"| click -> neighbour panel, median | {np.median(panel):.3f} s |",
            f"| click -> neighbour panel, p95 (target <= {TARGET_P95_S:.1f} s: {verdict}) | {p95:.3f} s |",
            f"| click -> neighbour panel, max | {max(panel):.3f} s |",
            f"| server memory after one user's map | {one_rss:,.0f} MiB |",
            f"| server memory after {users} users' clicks | {loaded_rss:,.0f} MiB |"]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.bench.dashboard_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=REPO_ROOT / "data" / "runs" / "demo",
                        help="run folder (default: data/runs/demo)")
    parser.add_argument("--users", type=int, default=5, help="users clicking at the same time (default 5)")
    parser.add_argument("--clicks", type=int, default=8, help="clicks per user (default 8)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.clicks < 1:
        parser.error("--users and --clicks must be at least 1")
    if bd.chromium_path() is None:
        print("chromium is not installed; the benchmark needs a browser", file=sys.stderr)
        return 2
    if not is_run(args.run):
        print(f"{args.run} is not a complete run folder", file=sys.stderr)
        return 2
    print("\n".join(load(args.run, args.users, args.clicks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
