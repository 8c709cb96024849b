"""Plotly figures built from plain tables; no file access and no Streamlit here."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

DX_COLOURS = {"akiec": "#e6862e", "bcc": "#c23b5a", "bkl": "#8c6d46", "df": "#2f8f83", "mel": "#262626",
              "nv": "#5b8fd6", "vasc": "#9b4fc4"}
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
           "#eeca3b", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
OUTCOME_COLOURS = {"right": "#54a24b", "wrong": "#e45756"}
SPLIT_SYMBOLS = {"train": "circle", "val": "diamond", "test": "square"}
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


def hover_text(table: pd.DataFrame) -> pd.Series:
    """'id<br>dx · age · sex · localization' per row."""
    age = table["age"].map(lambda a: "age ?" if pd.isna(a) else f"{int(a)} y")
    return (table["image_id"].astype(str) + "<br>" + table["dx"].astype(str) + " · " + age + " · "
            + table["sex"].astype(str) + " · " + table["localization"].astype(str))


def map_figure(table: pd.DataFrame, colour_column: str, labels: list[str] | None = None) -> dict[str, Any]:
    """The UMAP scatter as a figure dict: one WebGL trace per (colour value, split), `customdata` = embedding row."""
    traces: list[dict[str, Any]] = []
    colour_values = table[colour_column].astype(str)
    groups = _ordered(colour_values, colour_column)
    colours = colour_map(colour_column, groups, labels)
    text = hover_text(table)
    splits = [s for s in SPLIT_SYMBOLS if s in set(table["split"])]
    sizes = colour_values.value_counts()
    # the biggest groups are drawn first so that rare diagnoses are not buried under nevi; legendrank keeps
    # the legend in the usual order
    for group in sorted(groups, key=lambda g: -sizes.get(g, 0)):
        in_group = (colour_values == group).to_numpy()
        first = True
        for split in splits:
            rows = np.nonzero(in_group & (table["split"] == split).to_numpy())[0]
            if len(rows) == 0:
                continue
            part = table.iloc[rows]
            # float32 / int32 numpy arrays travel as compact base64 typed arrays rather than JSON numbers
            traces.append({
                "type": "scattergl", "mode": "markers", "name": group, "legendgroup": group, "showlegend": first,
                "legendrank": 1000 + groups.index(group),
                "x": part["x"].to_numpy(np.float32), "y": part["y"].to_numpy(np.float32),
                "customdata": part["row"].to_numpy(np.int32), "text": text.iloc[rows].tolist(),
                "hovertemplate": "%{text}<extra>" + split + "</extra>",
                "marker": {"color": colours[group], "symbol": SPLIT_SYMBOLS[split], "size": 5, "opacity": 0.75},
            })
            first = False
    # grey legend entries that explain the marker shapes
    for split in splits:
        traces.append({"type": "scattergl", "mode": "markers", "x": [None], "y": [None], "name": f"{split} split",
                       "legendgroup": "splits", "legendrank": 2000 + len(traces),
                       "marker": {"color": "#888888", "symbol": SPLIT_SYMBOLS[split], "size": 8},
                       "hoverinfo": "skip"})
    layout = {
        "height": MAP_HEIGHT, "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "xaxis": {"showticklabels": False, "title": {"text": "UMAP 1"}, "zeroline": False},
        "yaxis": {"showticklabels": False, "title": {"text": "UMAP 2"}, "zeroline": False},
        # above the plot rather than beside it, so the points get the chart's full width
        "legend": {"title": {"text": colour_column}, "itemsizing": "constant", "orientation": "h", "y": 1.0,
                   "yanchor": "bottom", "x": 0},
        # a click must select (Streamlit reports clicks as selections); zoom stays the default drag
        "hovermode": "closest", "clickmode": "event+select", "dragmode": "zoom",
    }
    return {"data": traces, "layout": layout}


def highlight_layout(table: pd.DataFrame, focus_row: int | None, neighbour_rows: list[int]) -> dict[str, Any]:
    """Layout shapes and annotations marking the chosen image (labelled arrow) and its neighbours (numbered rings).

    Marks live in the layout rather than in extra traces so that the trace list, and with it the legend and the
    `curve_number` of every point, is the same with or without a selection.
    """
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    by_row = table.set_index("row")
    for rank, row in enumerate(neighbour_rows, start=1):
        if row not in by_row.index:
            continue
        x, y = float(by_row.at[row, "x"]), float(by_row.at[row, "y"])
        shapes.append({"type": "circle", "xref": "x", "yref": "y", "xsizemode": "pixel", "ysizemode": "pixel",
                       "xanchor": x, "yanchor": y, "x0": -7, "x1": 7, "y0": -7, "y1": 7,
                       "line": {"color": "#111111", "width": 2}})
        annotations.append({"x": x, "y": y, "text": str(rank), "showarrow": False, "yshift": 13,
                            "font": {"size": 11, "color": "#111111"}})
    if focus_row is not None and focus_row in by_row.index:
        x, y = float(by_row.at[focus_row, "x"]), float(by_row.at[focus_row, "y"])
        shapes.append({"type": "circle", "xref": "x", "yref": "y", "xsizemode": "pixel", "ysizemode": "pixel",
                       "xanchor": x, "yanchor": y, "x0": -9, "x1": 9, "y0": -9, "y1": 9,
                       "fillcolor": "rgba(255, 217, 47, 0.6)", "line": {"color": "#111111", "width": 2.5}})
        annotations.append({"x": x, "y": y, "text": "<b>selected</b>", "showarrow": True, "arrowhead": 2,
                            "ax": 40, "ay": -40, "bgcolor": "#ffd92f", "bordercolor": "#111111",
                            "font": {"size": 12, "color": "#111111"}})
    return {"shapes": shapes, "annotations": annotations}


def assemble(base: dict[str, Any], marks: dict[str, Any]) -> go.Figure:
    """A Figure from a cached figure dict plus highlight marks, without re-validating thousands of points."""
    # validation of a 10k-point dict costs ~0.2 s per rerun; the dict was built by this module, so skip it
    return go.Figure({"data": base["data"], "layout": {**base["layout"], **marks}}, _validate=False)


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

