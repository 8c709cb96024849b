"""Embedding map: the run's UMAP of every image; click a point for its neighbours, box or lasso for a grid."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import components, data, figures

MAP_KEY = "umap"
FOCUS_KEY = components.FOCUS_KEY
SELECTED_KEY = "map_selected"  # (run name, [image_id, ...]) from the last box or lasso
PAGE_SIZE = 30
PANEL_TILE_WIDTH = 112  # three tiles to a row in the panel beside the map
DEFAULT_COLOUR, DEFAULT_SPACE, DEFAULT_K = "diagnosis", "test", 10
NO_SELECTION = "none"


def _on_select() -> None:
    # The chart is a new widget whenever its figure changes (the highlight does), which empties its own
    # selection state; keeping the choice in session state is what makes a click stick.
    event = st.session_state.get(MAP_KEY)
    run = st.session_state.get(components.RUN_KEY)
    if not event or run is None:
        return
    selection = event.get("selection") or {}
    rows = []
    for point in selection.get("points") or []:
        custom = point.get("customdata")
        if isinstance(custom, list):
            custom = custom[0] if custom else None
        if custom is not None:
            rows.append(int(custom))
    path = components.current_run()
    table = data.map_table(path) if path is not None else None
    if table is None:
        return
    id_of = dict(zip(table["row"], table["image_id"]))
    ids = [id_of[r] for r in rows if r in id_of]
    if selection.get("box") or selection.get("lasso"):
        st.session_state[SELECTED_KEY] = (run, ids)
        st.session_state["map_grid_page"] = 1
    elif len(ids) == 1:
        st.session_state[FOCUS_KEY] = (run, ids[0])
    elif not rows:
        st.session_state.pop(SELECTED_KEY, None)  # a double-click on the map clears the box or lasso


def _age_bounds(table: pd.DataFrame) -> tuple[int, int]:
    ages = table["age"].dropna()
    lo, hi = (int(ages.min()), int(ages.max())) if len(ages) else (0, 100)
    return lo, max(hi, lo + 1)


def _saved_selection(name: str) -> tuple[str, ...] | None:
    """The image ids of the saved selection chosen in the filters, None for none (or one that cannot be read)."""
    run = components.current_run()
    if name == NO_SELECTION or run is None:
        return None
    from skinsim.selections import SelectionError

    try:
        return data.selection_ids(run, name)
    except SelectionError as err:
        st.warning(f"The saved selection cannot be shown: {err}", icon=":material/warning:")
        return None


def _settings(table: pd.DataFrame) -> tuple[str, tuple[str, ...], int, data.MapFilter]:
    """(colour column, search splits, k, filter) from the widgets' session state, defaults before they exist."""
    # Read before the widgets are drawn so that the map's delta is sent first: the browser then starts
    # loading Plotly while the widgets' code is still on its way.
    state = st.session_state
    colour_label = state.get("map_colour", DEFAULT_COLOUR)
    space = state.get("map_space", DEFAULT_SPACE)
    bounds = _age_bounds(table)
    age = tuple(state.get("f_age", bounds))
    flt = data.MapFilter(dx=tuple(state.get("f_dx", ())), localization=tuple(state.get("f_loc", ())),
                         sex=tuple(state.get("f_sex", ())), splits=tuple(state.get("f_split", ())),
                         age=None if age == bounds else (float(age[0]), float(age[1])),
                         ids=_saved_selection(state.get("f_selection", NO_SELECTION)))
    return figures.COLOUR_FIELDS[colour_label], data.SEARCH_SPACES[space], int(state.get("map_k", DEFAULT_K)), flt


def _controls(table: pd.DataFrame) -> None:
    """The widgets behind `_settings`."""
    top = st.columns([1.2, 1.2, 1, 3])
    fields = list(figures.COLOUR_FIELDS)
    top[0].selectbox("Colour by", fields, index=fields.index(DEFAULT_COLOUR), key="map_colour")
    spaces = list(data.SEARCH_SPACES)
    top[1].radio("Search space", spaces, index=spaces.index(DEFAULT_SPACE), horizontal=True, key="map_space",
                 help="Where neighbours are looked for: the test split, or the test and train splits.")
    top[2].slider("Neighbours (k)", 1, 30, DEFAULT_K, key="map_k")
    with top[3].expander("Filters", icon=":material/filter_alt:"):
        cols = st.columns(4)
        cols[0].multiselect("Diagnosis", sorted(table["dx"].unique()), key="f_dx", placeholder="all")
        cols[1].multiselect("Localization", sorted(table["localization"].astype(str).unique()), key="f_loc",
                            placeholder="all")
        cols[2].multiselect("Sex", sorted(table["sex"].astype(str).unique()), key="f_sex", placeholder="all")
        cols[3].multiselect("Split", ["train", "val", "test"], key="f_split", placeholder="all")
        bounds = _age_bounds(table)
        low, high = st.columns([3, 1])
        low.slider("Age", bounds[0], bounds[1], bounds, key="f_age",
                   help="At the full range, images of unknown age are shown too.")
        saved = [NO_SELECTION] + data.selections(components.current_run())
        if st.session_state.get("f_selection") not in saved:
            st.session_state["f_selection"] = NO_SELECTION  # deleted, or saved in another run
        high.selectbox("Saved selection", saved, key="f_selection",
                       help="Only the images of a selection saved from this map, the Data quality page or a "
                            "neighbour panel (kept in the run's selections/ folder).")


def _focus_panel(run: Path, table: pd.DataFrame, image_id: str, neighbours: pd.DataFrame,
                 splits: tuple[str, ...]) -> None:
    row = table.loc[table["image_id"] == image_id].iloc[0]
    components.image_card(run, row, "Selected lesion", key="map_focus_card")
    st.markdown(f"**{len(neighbours)} nearest neighbours** in {components.space_words(splits)}, by Euclidean "
                "distance between embeddings (numbered rings on the map)")
    components.neighbour_panel(run, neighbours, key="neighbours", width=PANEL_TILE_WIDTH)
    components.why_similar(run, image_id, neighbours, key="map_why")
    with st.expander("Keep these neighbours", icon=":material/bookmark:"):
        scores = neighbours.set_index("image_id")[["rank", "distance"]].assign(query=image_id)
        components.selection_actions(run, data.selection_table(run, neighbours["image_id"].tolist(), scores),
                                     key="map_nb", default_name=f"neighbours of {image_id}")


def _clear_selection() -> None:
    st.session_state.pop(SELECTED_KEY, None)


def _selection_grid(run: Path, table: pd.DataFrame, ids: list[str]) -> None:
    with st.container(key="selection_grid"):
        st.subheader(f"Selection: {len(ids):,} images")
        chosen = table[table["image_id"].isin(ids)]
        st.dataframe(chosen["dx"].value_counts().rename("images").to_frame().T, hide_index=True)
        pages = max(1, math.ceil(len(chosen) / PAGE_SIZE))
        left, right = st.columns([1, 5], vertical_alignment="bottom")
        page = left.number_input("Page", 1, pages, key="map_grid_page") if pages > 1 else 1
        right.caption(f"page {page} of {pages}, {PAGE_SIZE} images per page")
        part = chosen.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        components.image_tiles(run, part["image_id"].tolist(),
                               [f"{r.dx} · {r.split} · {r.image_id}" for r in part.itertuples()], width=140)
        components.selection_actions(run, data.selection_table(run, chosen["image_id"].tolist()), key="map_sel",
                                     default_name="map selection")
        st.button("Clear selection", key="map_clear", on_click=_clear_selection)


def main() -> None:
    """Render the embedding map page."""
    run = components.page_run("Embedding map")
    if run is None:
        return
    table = data.map_table(run)
    if table is None:
        st.warning(f"Run `{run.name}` has no umap.parquet, so there is no map to show.")
        return
    st.caption(f"Each point is one image placed by a 2-D UMAP of its embedding ({data.map_made(run)}). "
               "Click a point for its nearest neighbours; use the box or lasso tool (top right of the chart) to "
               "see a group of images.")
    controls = st.container()
    colour, splits, k, flt = _settings(table)

    focus = st.session_state.get(FOCUS_KEY)
    focus_id = focus[1] if focus and focus[0] == run.name and (table["image_id"] == focus[1]).any() else None
    neighbours = data.neighbours(run, focus_id, k, splits) if focus_id else None

    base = data.map_figure(run, colour, flt, splits)
    shown = sum(len(t["x"]) for t in base["data"] if t.get("legendgroup") != "splits")
    marks: dict = {}
    if focus_id is not None:
        id_to_row = dict(zip(table["image_id"], table["row"]))
        marks = figures.highlight_layout(table, id_to_row[focus_id], [id_to_row[i] for i in neighbours["image_id"]])

    left, right = st.columns([3, 2], gap="medium")
    # the panel is written before the map so that its elements reach the browser first: re-drawing 10k
    # WebGL points takes the browser longer than showing the panel does
    with right:
        if focus_id is None:
            st.info("Click a point on the map to see that image and its nearest neighbours here.",
                    icon=":material/touch_app:")
        else:
            _focus_panel(run, table, focus_id, neighbours, splits)
    with left:
        st.plotly_chart(figures.assemble(base, marks), key=MAP_KEY, on_select=_on_select,
                        selection_mode=("points", "box", "lasso"),
                        config={"displaylogo": False, "scrollZoom": True})
        st.caption(f"{shown:,} of {len(table):,} images shown · marker shape = split · colour = {colour}")
    with controls:
        _controls(table)
    selected = st.session_state.get(SELECTED_KEY)
    if selected and selected[0] == run.name and selected[1]:
        _selection_grid(run, table, selected[1])
    components.missing_images_notice(run)


main()
