"""What the embedding map draws: sampling, density cells, brush areas, regions, and the ECharts option built from
them; checked on cases worked out by hand and on a synthetic run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dashboard_helpers as helpers
from dashboard import figures, map_view
from dashboard.map_view import Region


def test_a_sample_keeps_rare_groups_and_shares_the_rest_by_size() -> None:
    groups = np.array(["a"] * 90 + ["b"] * 10)
    # floors: a 5, b 5; the 10 left go by what lies beyond the floors (85 vs 5): a floor(9.44) = 9, b floor(0.56) = 0
    picked = map_view.stratified_sample(groups, cap=20, min_per_group=5)
    assert (groups[picked] == "a").sum() == 14 and (groups[picked] == "b").sum() == 5
    assert list(picked) == sorted(set(picked.tolist()))
    assert list(picked) == list(map_view.stratified_sample(groups, cap=20, min_per_group=5))  # seeded
    assert list(map_view.stratified_sample(groups, cap=20, min_per_group=5, seed=1)) != list(picked)


def test_a_group_smaller_than_its_floor_is_kept_whole_and_small_sets_are_not_sampled() -> None:
    groups = np.array(["a"] * 50 + ["b"] * 3)
    picked = map_view.stratified_sample(groups, cap=10, min_per_group=5)
    assert (groups[picked] == "b").sum() == 3 and len(picked) <= 10
    assert list(map_view.stratified_sample(groups, cap=53)) == list(range(53))


def test_density_counts_every_point_in_its_cell() -> None:
    x = np.array([0.1, 0.2, 0.9, 0.95, 0.95])
    y = np.array([0.1, 0.15, 0.9, 0.9, 0.95])
    cells = map_view.density(x, y, Region(0, 1, 0, 1), bins=2)
    assert cells.sort_values("x")[["x", "y", "count"]].values.tolist() == [[0.25, 0.25, 2], [0.75, 0.75, 3]]
    wide = map_view.density(x, y, Region(0, 4, 0, 1), bins=8)  # 8 cells across the wider side, 2 down
    assert wide["count"].sum() == 5 and set(wide["y"]) <= {0.25, 0.75}


def test_brush_areas_hold_the_points_inside_them() -> None:
    x = np.array([0.0, 1.0, 2.0, 0.5, 3.0])
    y = np.array([0.0, 1.0, 0.5, 0.2, 3.0])
    rect = {"brush_type": "rect", "coord_range": [[2.5, -0.5], [-1, 1.5]]}  # corners in any order
    assert map_view.in_area(x, y, rect).tolist() == [True, True, True, True, False]
    triangle = {"brush_type": "polygon", "coord_range": [[-1, -1], [2, -1], [-1, 2]]}  # below x + y = 1
    assert map_view.in_area(x, y, triangle).tolist() == [True, False, False, True, False]
    assert not map_view.in_area(x, y, {"brush_type": "lineX", "coord_range": [0, 1]}).any()
    assert map_view.area_region(rect) == Region(-0.5, 2.5, -1, 1.5)
    assert map_view.area_region(triangle) is None


def table(n: int, seed: int = 0) -> pd.DataFrame:
    """A map table of `n` points: 90% nv, 10% mel, rows in order."""
    rng = np.random.default_rng(seed)
    dx = np.where(np.arange(n) % 10 == 0, "mel", "nv")
    return pd.DataFrame({"row": np.arange(n), "image_id": [f"I{i}" for i in range(n)], "x": rng.random(n),
                         "y": rng.random(n), "dx": dx, "split": "test", "age": 50.0, "sex": "female",
                         "localization": "back"})


def test_a_plan_draws_every_point_up_to_the_cap_biggest_group_first() -> None:
    plan = map_view.plan(table(100), "dx", cap=1000)
    assert not plan.sampled and plan.in_view == 100 and len(plan.points) == 100
    assert plan.points["dx"].iloc[0] == "nv" and plan.points["dx"].iloc[-1] == "mel"  # mel drawn on top
    assert plan.frame.x0 < plan.points["x"].min() and plan.frame.x1 > plan.points["x"].max()


def test_a_plan_over_the_cap_samples_over_density_and_a_region_narrows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKINSIM_MAP_POINTS", "300")
    assert map_view.max_points() == 300
    big = table(5000)
    plan = map_view.plan(big, "dx")
    assert plan.sampled and plan.in_view == 5000 and len(plan.points) <= 300
    assert plan.density["count"].sum() == 5000  # the cells count every image, drawn or not
    assert (plan.points["dx"] == "mel").sum() >= 30  # in proportion at least
    corner = Region(0.0, 0.2, 0.0, 0.2)
    zoomed = map_view.plan(big, "dx", corner)
    inside = corner.contains(big["x"].to_numpy(), big["y"].to_numpy()).sum()
    assert zoomed.in_view == inside and not zoomed.sampled and len(zoomed.points) == inside  # ~200, all drawn
    assert zoomed.frame == corner.padded()
    monkeypatch.setenv("SKINSIM_MAP_POINTS", "not a number")
    assert map_view.max_points() == map_view.MAX_POINTS


def test_the_map_option_holds_the_planned_points_and_locates_them() -> None:
    plan = map_view.plan(table(50), "dx", cap=1000)
    spec = figures.map_spec(plan, "dx", labels=["mel", "nv"])
    source = spec["dataset"][0]["source"]
    assert source["image_id"].tolist() == plan.points["image_id"].tolist()
    colours, shapes = spec["visualMap"][1], spec["visualMap"][0]
    assert colours["categories"] == ["mel", "nv"]
    assert colours["inRange"]["color"] == [figures.DX_COLOURS["mel"], figures.DX_COLOURS["nv"]]
    assert shapes["inRange"]["symbol"] == [figures.SPLIT_SYMBOLS["test"]]
    assert len(spec["series"]) == 1 and spec["series"][0]["selectedMode"] == "single"
    frame, grid = plan.frame, figures.MAP_GRID
    corners = figures.point_pixels(spec, np.array([frame.x0, frame.x1]), np.array([frame.y1, frame.y0]), 600, 640)
    assert corners.tolist() == [[grid["left"], grid["top"]], [600 - grid["right"], 640 - grid["bottom"]]]
    marks = figures.highlight_series(plan.points.set_index("row", drop=False), 3, [7, 8, 999])
    assert [len(m["data"]) for m in marks] == [2, 1]  # a row the table lacks gets no ring
    assert [d[2] for d in marks[0]["data"]] == [1, 2]
    assert len(figures.with_marks(spec, marks)["series"]) == 3 and len(spec["series"]) == 1


def test_sampled_option_has_silent_density_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = map_view.plan(table(3000), "dx", cap=200)
    spec = figures.map_spec(plan, "dx")
    cells = spec["series"][1:]
    assert cells and all(s["silent"] and s["large"] for s in cells)
    assert sum(len(s["data"]) for s in cells) == len(plan.density)
    opacities = [s["itemStyle"]["opacity"] for s in cells]
    assert opacities == sorted(opacities)  # darker for fuller cells


def test_a_brush_selects_every_image_inside_it_drawn_or_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import map_data

    monkeypatch.setenv("SKINSIM_MAP_POINTS", "100")
    run = helpers.make_run(tmp_path, "brushed", n=600, images=False)
    chart = map_data.map_chart(run, "dx", map_data.MapFilter())
    assert chart.sampled and len(chart.rows) <= 100 + 7 and chart.in_view == 600
    full = map_data.map_table(run)
    x0, x1 = np.quantile(full["x"], [0.2, 0.6])
    area = {"brush_type": "rect", "coord_range": [[x0, x1], [full["y"].min() - 1, full["y"].max() + 1]]}
    ids = map_data.ids_in_areas(run, map_data.MapFilter(), None, [area])
    assert sorted(ids) == sorted(full.loc[full["x"].between(x0, x1), "image_id"])
    drawn = set(full.set_index("row").loc[chart.rows, "image_id"])
    assert len(set(ids) - drawn) > len(set(ids) & drawn)  # most of them are not drawn
    only_test = map_data.MapFilter(splits=("test",))
    assert set(map_data.ids_in_areas(run, only_test, None, [area])) == set(
        full.loc[full["x"].between(x0, x1) & (full["split"] == "test"), "image_id"])
    half = Region(float(x0), float(x1), float(full["y"].min()), float(full["y"].median()))
    assert set(map_data.ids_in_areas(run, map_data.MapFilter(), half, [area])) == set(
        full.loc[full["x"].between(x0, x1) & full["y"].between(half.y0, half.y1), "image_id"])
