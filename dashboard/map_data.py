"""The embedding map's data: each run's map table and its lookups, the filter, the chart as drawn and the images
inside a drawn box or lasso, behind Streamlit's caches (run as a path string plus `version`, as in
dashboard.run_data)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import figures, map_view
from dashboard.map_view import Region
from dashboard.neighbour_data import cached_top1_outcome
from dashboard.run_data import cached_embeddings, classes_all, id_rows, stamp
from skinsim.runs.folder import load_run, map_method

FILTER_FIELDS = ("dx", "localization", "sex")  # the map's multiselect filters besides the split


def map_table(run: Path) -> pd.DataFrame | None:
    """One row per image: UMAP x, y, metadata, age band and `row` (its index in `embeddings`); None without a map."""
    if not (Path(run) / "umap.parquet").is_file():
        return None
    return _map_table(str(run), stamp(run))


@st.cache_resource(show_spinner=False, max_entries=4)
def _map_table(run: str, version: float) -> pd.DataFrame:
    meta, _ = cached_embeddings(run, version)
    coords = load_run(Path(run)).umap()[["image_id", "x", "y"]]
    table = meta.assign(row=np.arange(len(meta))).merge(coords, on="image_id", how="inner")
    return table.sort_values("row").reset_index(drop=True)


@dataclass(frozen=True)
class MapIndex:
    """Lookups into a run's map table that stay fast at a million images: the table by embedding row, the row of
    each image id, and each filter column's sorted values."""

    by_row: pd.DataFrame
    row_of: pd.Series
    choices: dict[str, list[str]]


def map_index(run: Path) -> MapIndex:
    """The run's map lookups (built once per run, shared by every session)."""
    return _map_index(str(run), stamp(run))


@st.cache_resource(show_spinner=False, max_entries=4)
def _map_index(run: str, version: float) -> MapIndex:
    table = _map_table(run, version)
    choices = {c: classes_all(table[c]) for c in FILTER_FIELDS}
    rows = id_rows(run, version)  # the embeddings' lookup, narrowed to the images the map has
    return MapIndex(by_row=table.set_index("row", drop=False), row_of=rows[rows.isin(table["row"])], choices=choices)


def map_made(run: Path) -> str:
    """How the run's map was made, in words (from umap.parquet's metadata)."""
    method = map_method(Path(run) / "umap.parquet")
    if not method:
        return "fitted when the run was made"
    if method.get("placed_by_transform"):
        return (f"fitted on a seeded sample of {method['fitted_on']:,} of the {method['n_points']:,} images, the "
                "rest placed by the fitted model")
    return f"fitted on all {method.get('n_points', 0):,} images when the run was made"


@dataclass(frozen=True)
class MapFilter:
    """Which images the map shows; empty tuples mean 'all'."""

    dx: tuple[str, ...] = ()
    localization: tuple[str, ...] = ()
    sex: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    age: tuple[float, float] | None = None  # inclusive; images of unknown age are kept only when this is None
    ids: tuple[str, ...] | None = None  # a saved selection's images; None means no selection

    def mask(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of `table` that pass."""
        keep = np.ones(len(table), dtype=bool)
        for column, allowed in (("dx", self.dx), ("localization", self.localization), ("sex", self.sex),
                                ("split", self.splits)):
            if allowed:
                keep &= table[column].isin(allowed).to_numpy()
        if self.age is not None:
            keep &= table["age"].between(self.age[0], self.age[1]).to_numpy()
        if self.ids is not None:
            keep &= table["image_id"].isin(self.ids).to_numpy()
        return keep


@dataclass(frozen=True)
class MapChart:
    """The map as drawn: its ECharts option, the embedding row of each point of its clickable series (in the order
    of the series' data) and how many images are in view (the points are a sample of them when `sampled`)."""

    spec: dict[str, Any]
    rows: np.ndarray
    in_view: int
    sampled: bool

    def image_id(self, point: int) -> str | None:
        """The image id of a point of the clickable series by its index in the series' data, None out of range."""
        ids = self.spec["dataset"][0]["source"]["image_id"]
        return str(ids.iat[point]) if 0 <= point < len(ids) else None


def map_chart(run: Path, colour_by: str, flt: MapFilter, splits: tuple[str, ...] = ("test",),
              region: Region | None = None) -> MapChart:
    """The map of the images that pass `flt`, within `region` when given (cached; the page adds the marks)."""
    return _map_chart(str(run), stamp(run), colour_by, flt, tuple(splits), region, map_view.max_points())


@st.cache_data(show_spinner=False, max_entries=32)
def _map_chart(run: str, version: float, colour_by: str, flt: MapFilter, splits: tuple[str, ...],
               region: Region | None, cap: int) -> MapChart:
    table = _coloured(run, version, colour_by, splits)
    plan = map_view.plan(table[flt.mask(table)], colour_by, region, cap)
    spec = figures.map_spec(plan, colour_by, labels=classes_all(table["dx"]))
    return MapChart(spec=spec, rows=plan.points["row"].to_numpy(), in_view=plan.in_view, sampled=plan.sampled)


def _coloured(run: str, version: float, colour_by: str, splits: tuple[str, ...]) -> pd.DataFrame:
    table = _map_table(run, version)
    if colour_by == "top1":
        table = table.assign(top1=cached_top1_outcome(run, version, splits)[table["row"].to_numpy()])
    return table


def ids_in_areas(run: Path, flt: MapFilter, region: Region | None, areas: list[dict[str, Any]]) -> list[str]:
    """The ids of every image in view (passing `flt`, within `region`) inside any of the drawn brush areas, whether
    or not a sampled map draws it."""
    table = map_table(run)
    keep = flt.mask(table)
    x, y = table["x"].to_numpy(), table["y"].to_numpy()
    if region is not None:
        keep &= region.contains(x, y)
    inside = np.zeros(len(table), dtype=bool)
    for area in areas:
        inside |= map_view.in_area(x, y, area)
    return table.loc[keep & inside, "image_id"].tolist()
