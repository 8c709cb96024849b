"""Charts built from plain tables: the embedding map as an ECharts option, the others as Plotly figures; no file
access and no Streamlit here."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.map_view import MapPlan

DX_COLOURS = {"akiec": "#e6862e", "bcc": "#c23b5a", "bkl": "#8c6d46", "df": "#2f8f83", "mel": "#262626",
              "nv": "#5b8fd6", "vasc": "#9b4fc4"}
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
           "#eeca3b", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
OUTCOME_COLOURS = {"right": "#54a24b", "wrong": "#e45756"}
SPLIT_SYMBOLS = {"train": "circle", "val": "diamond", "test": "rect", "held": "triangle"}  # ECharts names; held: --dev-fold
MAP_GRID = {"left": 8, "right": 8, "top": 44, "bottom": 34}  # pixels; fixed so that points can be located
FOCUS_COLOUR = "#ffd92f"
DENSITY_OPACITY = (0.12, 0.22, 0.34, 0.5)
COLOUR_FIELDS = {"diagnosis": "dx", "localization": "localization", "sex": "sex", "age band": "age_band",
                 "dx_type": "dx_type", "split": "split", "top-1 right/wrong": "top1"}
MAP_HEIGHT = 640


def label_colours(labels: list[str]) -> dict[str, str]:
    """A colour per label of a dataset: HAM10000's codes (in any case) keep fixed ones, the other labels take the
    palette in sorted order. Given the run's whole label set, a label keeps its colour whatever a page filters out."""
    colours, others = {}, iter(PALETTE * (1 + len(labels) // len(PALETTE)))
    for label in sorted(set(map(str, labels))):
        colours[label] = DX_COLOURS.get(label.lower()) or next(others)
    return colours


def colour_map(column: str, values: list[str], labels: list[str] | None = None) -> dict[str, str]:
    """A stable colour per value: per label for diagnoses (`labels`: the run's label set), fixed for outcomes, a
    palette in sorted order otherwise."""
    if column == "dx":
        colours = label_colours(list(labels or []) + list(values))
        return {v: colours[str(v)] for v in values}
    if column == "top1":
        return {v: OUTCOME_COLOURS.get(v, "#999999") for v in values}
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(values)}


def _ordered(values: pd.Series, column: str) -> list[str]:
    present = [str(v) for v in pd.unique(values)]
    if column == "dx":
        return [v for v in DX_COLOURS if v in present] + sorted(set(present) - set(DX_COLOURS))
    if column == "age_band":
        order = ["0-19", "20-39", "40-59", "60-79", "80+", "unknown"]
        return [v for v in order if v in present] + sorted(set(present) - set(order))
    return sorted(present, key=lambda v: (v in ("unknown", "nan", "None"), v))


def _age_words(age: pd.Series) -> pd.Series:
    return age.map(lambda a: "age ?" if pd.isna(a) else f"{int(a)} y")


def map_spec(plan: MapPlan, colour_column: str, labels: list[str] | None = None) -> dict[str, Any]:
    """The embedding map as an ECharts option: one clickable scatter series of `plan.points` (its dataset rows in
    the plan's order), coloured and shaped by two visual maps, over grey density cells when the plan is a sample."""
    pts = plan.points
    groups = pts[colour_column].astype(str)
    order = _ordered(groups, colour_column)
    colours = colour_map(colour_column, order, labels)
    splits = [s for s in SPLIT_SYMBOLS if s in set(pts["split"])]
    # a dataframe source travels to the browser as Arrow, far smaller and faster than inline values
    source = pd.DataFrame({"x": pts["x"].to_numpy(np.float32), "y": pts["y"].to_numpy(np.float32),
                           "group": groups.to_numpy(), "split": pts["split"].astype(str).to_numpy(),
                           "image_id": pts["image_id"].astype(str).to_numpy(), "dx": pts["dx"].astype(str).to_numpy(),
                           "age": _age_words(pts["age"]).to_numpy(), "sex": pts["sex"].astype(str).to_numpy(),
                           "localization": pts["localization"].astype(str).to_numpy()})
    series: list[dict[str, Any]] = [{
        "type": "scatter", "name": "images", "datasetIndex": 0, "symbolSize": 5, "z": 2,
        "encode": {"x": "x", "y": "y", "tooltip": ["image_id"]}, "itemStyle": {"opacity": 0.8},
        "selectedMode": "single", "progressive": 0,  # drawn in one frame, not in slices of 400
        "select": {"itemStyle": {"borderColor": "#111111", "borderWidth": 2, "opacity": 1}},
        "emphasis": {"scale": 1.8},
    }]
    if plan.density is not None:
        series += density_series(plan.density)
    frame = plan.frame
    return {
        "dataset": [{"source": source}], "series": series, "animation": False,
        "grid": dict(MAP_GRID),
        "xAxis": {"type": "value", "min": frame.x0, "max": frame.x1, "show": False},
        "yAxis": {"type": "value", "min": frame.y0, "max": frame.y1, "show": False},
        "visualMap": [
            # shape first: a later visual map that sets colour wins over the default colour of an earlier one
            {"type": "piecewise", "seriesIndex": 0, "dimension": 3, "categories": splits, "orient": "horizontal",
             "bottom": 4, "right": 10, "itemGap": 8, "inRange": {"symbol": [SPLIT_SYMBOLS[s] for s in splits]},
             "textStyle": {"fontSize": 11}},
            {"type": "piecewise", "seriesIndex": 0, "dimension": 2, "categories": order, "orient": "horizontal",
             "top": 6, "left": 4, "itemGap": 8, "inRange": {"color": [colours[g] for g in order]},
             "textStyle": {"fontSize": 11}},
        ],
        "tooltip": {"trigger": "item", "formatter": "{@image_id}<br>{@dx} · {@age} · {@sex} · {@localization}"
                                                     "<br>{@split} split"},
        "brush": {"toolbox": ["rect", "polygon", "clear"], "xAxisIndex": 0, "yAxisIndex": 0, "seriesIndex": [0]},
        "toolbox": {"right": 10, "top": 4, "itemSize": 16, "itemGap": 10, "feature": {"brush": {
            "type": ["rect", "polygon", "clear"],
            "title": {"rect": "Box select", "polygon": "Lasso select", "clear": "Clear the box or lasso"}}}},
        "dataZoom": [{"type": "inside", "xAxisIndex": 0, "filterMode": "none"},
                     {"type": "inside", "yAxisIndex": 0, "filterMode": "none"}],
    }


def density_series(cells: pd.DataFrame, levels: int = len(DENSITY_OPACITY)) -> list[dict[str, Any]]:
    """Grey squares, one per occupied cell, darker where more images fall (one series per darkness level, since a
    large series draws all its items in one style); silent, so clicks reach the points above them."""
    if cells.empty:
        return []
    rank = np.log1p(cells["count"].to_numpy())
    edges = np.quantile(rank, np.linspace(0, 1, levels + 1)[1:-1])
    level = np.searchsorted(edges, rank, side="right")
    out = []
    for i in range(levels):
        part = cells[level == i]
        if part.empty:
            continue
        out.append({"type": "scatter", "name": f"density {i + 1}", "large": True, "silent": True, "z": 1,
                    "symbol": "rect", "symbolSize": 6, "itemStyle": {"color": "#6f6f6f", "opacity": DENSITY_OPACITY[i]},
                    "data": np.round(part[["x", "y"]].to_numpy(np.float64), 5).tolist()})
    return out


def highlight_series(table: pd.DataFrame, focus_row: int | None, neighbour_rows: list[int]) -> list[dict[str, Any]]:
    """Two silent series marking the chosen image (yellow, labelled) and its neighbours (numbered rings).

    `table` is indexed by embedding row; marks are drawn whether or not a sampled map shows those points.
    """
    rings = [[float(table.at[r, "x"]), float(table.at[r, "y"]), rank]
             for rank, r in enumerate(neighbour_rows, start=1) if r in table.index]
    out: list[dict[str, Any]] = [{
        "type": "scatter", "name": "neighbours", "silent": True, "z": 10, "data": rings, "symbolSize": 14,
        "itemStyle": {"color": "rgba(0,0,0,0)", "borderColor": "#111111", "borderWidth": 2, "opacity": 1},
        "label": {"show": True, "formatter": "{@[2]}", "position": "top", "distance": 2, "fontSize": 11,
                  "color": "#111111"}}]
    if focus_row is not None and focus_row in table.index:
        out.append({
            "type": "scatter", "name": "selected", "silent": True, "z": 11, "symbolSize": 18,
            "data": [[float(table.at[focus_row, "x"]), float(table.at[focus_row, "y"])]],
            "itemStyle": {"color": FOCUS_COLOUR, "borderColor": "#111111", "borderWidth": 2.5, "opacity": 1},
            "label": {"show": True, "formatter": "selected", "position": "top", "distance": 8, "fontWeight": "bold",
                      "color": "#111111", "backgroundColor": FOCUS_COLOUR, "borderColor": "#111111", "borderWidth": 1,
                      "padding": [2, 4]}})
    return out


def with_marks(spec: dict[str, Any], marks: list[dict[str, Any]]) -> dict[str, Any]:
    """The map option with highlight series appended (the cached option itself is left as it was)."""
    return {**spec, "series": list(spec["series"]) + marks}


def point_pixels(spec: dict[str, Any], x: np.ndarray, y: np.ndarray, width: float, height: float) -> np.ndarray:
    """(n, 2) pixel positions, within a chart of `width` x `height` pixels, of map coordinates under `spec`'s
    fixed axes and grid (the benchmark and browser tests click points through this)."""
    grid, xa, ya = spec["grid"], spec["xAxis"], spec["yAxis"]
    inner_w = width - grid["left"] - grid["right"]
    inner_h = height - grid["top"] - grid["bottom"]
    px = grid["left"] + (np.asarray(x, float) - xa["min"]) / (xa["max"] - xa["min"]) * inner_w
    py = grid["top"] + (ya["max"] - np.asarray(y, float)) / (ya["max"] - ya["min"]) * inner_h
    return np.column_stack([px, py])


def accuracy_bars(per_class: dict[str, pd.DataFrame], metric: str, label: str,
                  overall: dict[str, pd.DataFrame]) -> go.Figure:
    """Per-class bars of `metric` with 95% intervals, one colour per run, baselines as markers, then averages."""
    fig = go.Figure()
    first = next(iter(per_class.values()))
    classes = list(first.index)
    for i, (run, table) in enumerate(per_class.items()):
        table = table.reindex(classes)
        avg = overall[run].loc[metric]
        xs = [f"{c}<br>n={int(n)}" if pd.notna(n) else c for c, n in zip(classes, table["n_queries"])]
        xs_all = xs + ["micro avg", "macro avg"]
        y = list(table[metric]) + [avg["micro"], avg["macro"]]
        # micro averages get an interval over all queries; a macro average of classes this small gets none
        lo = list(table[metric] - table[f"{metric}_lo"]) + [avg["micro"] - avg["micro_lo"], 0]
        hi = list(table[f"{metric}_hi"] - table[metric]) + [avg["micro_hi"] - avg["micro"], 0]
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Bar(
            x=xs_all, y=y, name=run, marker_color=colour, offsetgroup=str(i),
            error_y={"type": "data", "array": hi, "arrayminus": lo, "visible": True, "thickness": 1.2},
            customdata=np.array(list(zip(list(table["n_queries"]) + [table["n_queries"].sum(), None],
                                         list(table[f"{metric}_lo"]) + [avg["micro_lo"], None],
                                         list(table[f"{metric}_hi"]) + [avg["micro_hi"], None])), dtype=object),
            hovertemplate="%{x}: %{y:.3f}<br>95% interval %{customdata[1]:.3f}-%{customdata[2]:.3f}"
                          f"<extra>{run}</extra>"))
        if i == 0:
            for base, symbol, colour_b in (("random", "line-ew", "#555555"), ("majority", "x-thin", "#b22222")):
                yb = list(table[f"{base}_{metric}"]) + [avg[f"{base}_micro"], avg[f"{base}_macro"]]
                fig.add_trace(go.Scatter(
                    x=xs_all, y=yb, mode="markers", name=f"baseline: {base.replace('_', '-')}",
                    marker={"symbol": symbol, "size": 18, "line": {"width": 2.5, "color": colour_b}},
                    hovertemplate="%{x}: %{y:.3f}<extra>" + base.replace("_", "-") + "</extra>"))
    fig.update_layout(barmode="group", height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      yaxis={"range": [0, 1.05], "title": {"text": label}}, title={"text": label},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def confusion_heatmap(confusion: pd.DataFrame, title: str) -> go.Figure:
    """Row-normalised heatmap of query diagnosis vs top-1 neighbour diagnosis, counts as text."""
    counts = confusion.to_numpy()
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(
        z=share, x=list(confusion.columns), y=list(confusion.index), text=counts, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, colorbar={"title": {"text": "row share"}},
        hovertemplate="query %{y} → top-1 %{x}<br>%{text} queries (%{z:.1%} of the row)<extra></extra>"))
    fig.update_layout(title={"text": title}, height=440, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis={"title": {"text": "top-1 neighbour diagnosis"}, "side": "bottom"},
                      yaxis={"title": {"text": "query diagnosis"}, "autorange": "reversed"})
    return fig


def training_curves(curves: pd.DataFrame) -> go.Figure:
    """One small panel per curve column (loss, triplets violating the margin, validation P@1, ...) against epoch."""
    columns = [c for c in curves.columns if c not in ("epoch", "time_s") and pd.api.types.is_numeric_dtype(curves[c])]
    fig = make_subplots(rows=1, cols=max(1, len(columns)), subplot_titles=columns)
    for i, column in enumerate(columns, start=1):
        fig.add_trace(go.Scatter(x=curves["epoch"], y=curves[column], mode="lines+markers", name=column,
                                 showlegend=False), row=1, col=i)
        fig.update_xaxes(title_text="epoch", row=1, col=i)
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def vote_bars(votes: pd.Series, labels: list[str] | None = None) -> go.Figure:
    """Horizontal bars: how many of the neighbours carry each diagnosis."""
    fig = go.Figure(go.Bar(x=votes.to_numpy(), y=list(votes.index), orientation="h",
                           marker_color=list(colour_map("dx", list(votes.index), labels).values()),
                           hovertemplate="%{y}: %{x} neighbours<extra></extra>"))
    fig.update_layout(height=60 + 28 * len(votes), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis={"title": {"text": "neighbours"}, "dtick": 1}, yaxis={"autorange": "reversed"})
    return fig

