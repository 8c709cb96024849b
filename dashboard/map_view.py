"""Which points the embedding map draws: every one up to a cap, else a stratified sample over a density overview of
all of them; a region (a box drawn on the map) narrows both. Plain numpy and pandas, no Streamlit.

A browser draws about 20,000 clickable points in a second on a 2-core machine (docs/results.md); a run of a
million images is shown as 20,000 of them, sampled in proportion to each colour group but with every group kept,
over grey cells that count all the images. Zooming into a region shows that region's images, all of them once
they fit under the cap.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MAX_POINTS = 20_000  # SKINSIM_MAP_POINTS overrides it: more on a machine with a GPU, fewer for tests
MIN_PER_GROUP = 200  # a rare diagnosis keeps this many points (or all it has) in a sample
DENSITY_BINS = 160  # cells across the wider side of the frame
SAMPLE_SEED = 0


@dataclass(frozen=True)
class Region:
    """An axis-aligned box in map coordinates."""

    x0: float
    x1: float
    y0: float
    y1: float

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask of the points inside the box (edges included)."""
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)

    def padded(self, share: float = 0.03) -> "Region":
        """The box grown by `share` of its size on each side (a zero-size side gets a unit)."""
        dx, dy = (self.x1 - self.x0) or 1.0, (self.y1 - self.y0) or 1.0
        return Region(self.x0 - share * dx, self.x1 + share * dx, self.y0 - share * dy, self.y1 + share * dy)


def max_points() -> int:
    """How many points the map draws at most: SKINSIM_MAP_POINTS when set to a positive integer, else MAX_POINTS."""
    value = os.environ.get("SKINSIM_MAP_POINTS", "")
    return int(value) if value.isdigit() and int(value) > 0 else MAX_POINTS


def extent(x: np.ndarray, y: np.ndarray) -> Region:
    """The smallest box holding every point (the unit box around 0 when there are none)."""
    if len(x) == 0:
        return Region(-1.0, 1.0, -1.0, 1.0)
    return Region(float(np.min(x)), float(np.max(x)), float(np.min(y)), float(np.max(y)))


def stratified_sample(groups: np.ndarray, cap: int, seed: int = SAMPLE_SEED,
                      min_per_group: int = MIN_PER_GROUP) -> np.ndarray:
    """Sorted positions of at most `cap` items (all of them when there are no more): each group in proportion to
    its size, but at least `min_per_group` (or all it has), so rare groups stay visible. With more than
    cap / min_per_group groups each still keeps one, which may pass the cap by up to one per group."""
    groups = np.asarray(groups)
    n = len(groups)
    if n <= cap:
        return np.arange(n)
    names, codes, counts = np.unique(groups, return_inverse=True, return_counts=True)
    floor = np.minimum(counts, min_per_group)
    quota = floor.copy()
    left = cap - int(floor.sum())
    if left > 0:
        # the rest of the cap is shared in proportion to what each group has beyond its floor
        extra = counts - floor
        share = np.floor(extra / max(int(extra.sum()), 1) * left).astype(int)
        quota += np.minimum(share, extra)
    else:
        quota = np.maximum(1, np.floor(floor / floor.sum() * cap)).astype(int)
    rng = np.random.default_rng(seed)
    keys = rng.random(n)
    picked = []
    for code in range(len(names)):
        members = np.flatnonzero(codes == code)
        picked.append(members[np.argsort(keys[members], kind="stable")[:quota[code]]])
    return np.sort(np.concatenate(picked))


def density(x: np.ndarray, y: np.ndarray, frame: Region, bins: int = DENSITY_BINS) -> pd.DataFrame:
    """Occupied cells of a grid over `frame` (`bins` across its wider side): centre x, y and image count."""
    width, height = frame.x1 - frame.x0 or 1.0, frame.y1 - frame.y0 or 1.0
    nx = bins if width >= height else max(1, round(bins * width / height))
    ny = bins if height > width else max(1, round(bins * height / width))
    counts, xe, ye = np.histogram2d(x, y, bins=(nx, ny), range=((frame.x0, frame.x1), (frame.y0, frame.y1)))
    ix, iy = np.nonzero(counts)
    return pd.DataFrame({"x": ((xe[ix] + xe[ix + 1]) / 2).astype(np.float32),
                         "y": ((ye[iy] + ye[iy + 1]) / 2).astype(np.float32),
                         "count": counts[ix, iy].astype(np.int64)})


def in_area(x: np.ndarray, y: np.ndarray, area: dict[str, Any]) -> np.ndarray:
    """Boolean mask of the points inside one brush area as Streamlit reports it: a "rect" with
    coord_range [[x0, x1], [y0, y1]] or a "polygon" with coord_range [[x, y], ...]; other kinds hold nothing."""
    kind, coords = area.get("brush_type"), area.get("coord_range")
    if kind == "rect" and coords:
        (xa, xb), (ya, yb) = coords
        return Region(min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb)).contains(x, y)
    if kind == "polygon" and coords and len(coords) >= 3:
        from matplotlib.path import Path as Polygon

        return Polygon(np.asarray(coords, dtype=float)).contains_points(np.column_stack([x, y]))
    return np.zeros(len(x), dtype=bool)


def area_region(area: dict[str, Any]) -> Region | None:
    """The box of a rect brush area, None for any other kind."""
    if area.get("brush_type") != "rect" or not area.get("coord_range"):
        return None
    (xa, xb), (ya, yb) = area["coord_range"]
    return Region(float(min(xa, xb)), float(max(xa, xb)), float(min(ya, yb)), float(max(ya, yb)))


@dataclass
class MapPlan:
    """What the map draws: `points` (rows of the table, biggest colour groups first), the `density` cells of every
    image in view (None when all are drawn), the `frame` the axes span and how many images are in view."""

    points: pd.DataFrame
    density: pd.DataFrame | None
    frame: Region
    in_view: int

    @property
    def sampled(self) -> bool:
        """True when the map draws a sample of the images in view."""
        return self.density is not None


def plan(table: pd.DataFrame, colour_column: str, region: Region | None = None, cap: int | None = None) -> MapPlan:
    """The points and density overview for `table` (already filtered), within `region` when given; at most `cap`
    points (default: `max_points()`)."""
    x, y = table["x"].to_numpy(), table["y"].to_numpy()
    if region is not None:
        table = table[region.contains(x, y)]
        x, y = table["x"].to_numpy(), table["y"].to_numpy()
    frame = (region or extent(x, y)).padded()
    groups = table[colour_column].astype(str).to_numpy()
    keep = stratified_sample(groups, max_points() if cap is None else cap)
    points = table.iloc[keep]
    # the biggest groups are drawn first so that rare diagnoses are not buried under nevi
    sizes = points[colour_column].astype(str).map(points[colour_column].astype(str).value_counts())
    points = points.iloc[np.argsort(-sizes.to_numpy(), kind="stable")]
    cells = density(x, y, frame) if len(keep) < len(table) else None
    return MapPlan(points=points, density=cells, frame=frame, in_view=len(table))
