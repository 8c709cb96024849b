"""Embedding map: the run's UMAP of every image; click a point for its neighbours, box or lasso for a grid."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import components, figures, map_data, map_view, neighbour_data, selections
from dashboard.map_view import Region

MAP_KEY = "umap"
FOCUS_KEY = components.FOCUS_KEY
SELECTED_KEY = "map_selected"  # (run name, [image_id, ...]) from the last box or lasso
BOX_KEY = "map_box"  # (run name, Region) of the last box drawn, which the map can zoom into
REGION_KEY = "map_region"  # (run name, Region) the map is zoomed into
RESETS_KEY = "map_resets"  # counts zooms and cleared selections: each gives the chart a new key, which drops its
# brush (a brush drawn before a zoom would otherwise be drawn again over the zoomed map and catch every click)
PAGE_SIZE = 30
PANEL_TILE_WIDTH = 112  # three tiles to a row in the panel beside the map
DEFAULT_COLOUR, DEFAULT_SPACE, DEFAULT_K = "diagnosis", "test", 10
NO_SELECTION = "none"


def _on_select() -> None:
    # The chart's own selection is kept in session state under FOCUS_KEY / SELECTED_KEY so that a choice outlives
    # the chart (another page, a new colouring) and so that a brush selects every image inside it, drawn or not.
    event = st.session_state.get(_chart_key())
    run = components.current_run()
    table = map_data.map_table(run) if run is not None else None
    if not event or table is None:
        return
    selection = event.get("selection") or {}
    areas = [a for a in selection.get("areas") or [] if a.get("coord_range")]
    colour, splits, _, flt = _settings(table)
    region = _region(run.name)
    if areas:
        st.session_state[SELECTED_KEY] = (run.name, map_data.ids_in_areas(run, flt, region, areas))
        st.session_state[BOX_KEY] = (run.name, map_view.area_region(areas[-1]))
        st.session_state["map_grid_page"] = 1
        return
    picked = [i for group in selection.get("selected") or [] if group.get("series_index") == 0
              for i in group.get("data_indices") or []]
    if len(picked) == 1:
        image_id = map_data.map_chart(run, colour, flt, splits, region).image_id(picked[0])
        if image_id is not None:
            st.session_state[FOCUS_KEY] = (run.name, image_id)
    elif not picked:
        # a double-click on the map clears the box or lasso
        st.session_state.pop(SELECTED_KEY, None)
        st.session_state.pop(BOX_KEY, None)


def _chart_key() -> str:
    return f"{MAP_KEY}_{st.session_state.get(RESETS_KEY, 0)}"


def _reset_chart() -> None:
    st.session_state[RESETS_KEY] = st.session_state.get(RESETS_KEY, 0) + 1


def _region(run_name: str) -> Region | None:
    """The region the map is zoomed into, None for the whole map."""
    zoom = st.session_state.get(REGION_KEY)
    return zoom[1] if zoom and zoom[0] == run_name else None


def _zoom_to_box() -> None:
    box = st.session_state.get(BOX_KEY)
    if box and box[1] is not None:
        st.session_state[REGION_KEY] = box
        st.session_state.pop(SELECTED_KEY, None)
        st.session_state.pop(BOX_KEY, None)
        _reset_chart()


def _whole_map() -> None:
    st.session_state.pop(REGION_KEY, None)
    _reset_chart()


def _age_bounds(table: pd.DataFrame) -> tuple[int, int]:
    ages = table["age"].dropna()
    lo, hi = (int(ages.min()), int(ages.max())) if len(ages) else (0, 100)
    return lo, max(hi, lo + 1)


def _saved_selection(name: str) -> tuple[str, ...] | None:
    """The image ids of the saved selection chosen in the filters, None for none (or one that cannot be read)."""
    run = components.current_run()
    if name == NO_SELECTION or run is None:
        return None
    from skinsim.runs.selections import SelectionError

    try:
        return selections.selection_ids(run, name)
    except SelectionError as err:
        st.warning(f"The saved selection cannot be shown: {err}", icon=":material/warning:")
        return None


def _settings(table: pd.DataFrame) -> tuple[str, tuple[str, ...], int, map_data.MapFilter]:
    """(colour column, search splits, k, filter) from the widgets' session state, defaults before they exist."""
    # Read before the widgets are drawn so that the map's delta is sent first: the browser then starts
    # loading Plotly while the widgets' code is still on its way.
    state = st.session_state
    colour_label = state.get("map_colour", DEFAULT_COLOUR)
    space = state.get("map_space", DEFAULT_SPACE)
    bounds = _age_bounds(table)
    age = tuple(state.get("f_age", bounds))
    flt = map_data.MapFilter(dx=tuple(state.get("f_dx", ())), localization=tuple(state.get("f_loc", ())),
                         sex=tuple(state.get("f_sex", ())), splits=tuple(state.get("f_split", ())),
                         age=None if age == bounds else (float(age[0]), float(age[1])),
                         ids=_saved_selection(state.get("f_selection", NO_SELECTION)))
    splits = neighbour_data.SEARCH_SPACES[space]
    return figures.COLOUR_FIELDS[colour_label], splits, int(state.get("map_k", DEFAULT_K)), flt


def _controls(table: pd.DataFrame) -> None:
    """The widgets behind `_settings`."""
    top = st.columns([1.2, 1.2, 1, 3])
    fields = list(figures.COLOUR_FIELDS)
    top[0].selectbox("Colour by", fields, index=fields.index(DEFAULT_COLOUR), key="map_colour")
    spaces = list(neighbour_data.SEARCH_SPACES)
    top[1].radio("Search space", spaces, index=spaces.index(DEFAULT_SPACE), horizontal=True, key="map_space",
                 help="Where neighbours are looked for: the test split, or the test and train splits.")
    top[2].slider("Neighbours (k)", 1, 30, DEFAULT_K, key="map_k")
    with top[3].expander("Filters", icon=":material/filter_alt:"):
        cols = st.columns(4)
        choices = map_data.map_index(components.current_run()).choices
        cols[0].multiselect("Diagnosis", choices["dx"], key="f_dx", placeholder="all")
        cols[1].multiselect("Localization", choices["localization"], key="f_loc", placeholder="all")
        cols[2].multiselect("Sex", choices["sex"], key="f_sex", placeholder="all")
        cols[3].multiselect("Split", ["train", "val", "test"], key="f_split", placeholder="all")
        bounds = _age_bounds(table)
        low, high = st.columns([3, 1])
        low.slider("Age", bounds[0], bounds[1], bounds, key="f_age",
                   help="At the full range, images of unknown age are shown too.")
        saved = [NO_SELECTION] + selections.names(components.current_run())
        if st.session_state.get("f_selection") not in saved:
            st.session_state["f_selection"] = NO_SELECTION  # deleted, or saved in another run
        high.selectbox("Saved selection", saved, key="f_selection",
                       help="Only the images of a selection saved from this map, the Data quality page or a "
                            "neighbour panel (kept in the run's selections/ folder).")


def _focus_panel(run: Path, lookup: map_data.MapIndex, image_id: str, neighbours: pd.DataFrame,
                 splits: tuple[str, ...]) -> None:
    row = lookup.by_row.loc[lookup.row_of[image_id]]
    components.image_card(run, row, "Selected lesion", key="map_focus_card")
    st.markdown(f"**{len(neighbours)} nearest neighbours** in {components.space_words(splits)}, by Euclidean "
                "distance between embeddings (numbered rings on the map)")
    components.neighbour_panel(run, neighbours, key="neighbours", width=PANEL_TILE_WIDTH)
    components.why_similar(run, image_id, neighbours, key="map_why")
    with st.expander("Keep these neighbours", icon=":material/bookmark:"):
        scores = neighbours.set_index("image_id")[["rank", "distance"]].assign(query=image_id)
        components.selection_actions(run, selections.selection_table(run, neighbours["image_id"].tolist(), scores),
                                     key="map_nb", default_name=f"neighbours of {image_id}")


def _clear_selection() -> None:
    st.session_state.pop(SELECTED_KEY, None)
    st.session_state.pop(BOX_KEY, None)
    _reset_chart()


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
        components.selection_actions(run, selections.selection_table(run, chosen["image_id"].tolist()), key="map_sel",
                                     default_name="map selection")
        buttons = st.columns([1, 1, 4])
        buttons[0].button("Clear selection", key="map_clear", on_click=_clear_selection)
        box = st.session_state.get(BOX_KEY)
        if box and box[0] == run.name and box[1] is not None:
            buttons[1].button("Zoom into the box", key="map_zoom", on_click=_zoom_to_box, icon=":material/zoom_in:",
                              help="Redraw the map with only this box's images: all of them, unless there are more "
                                   f"than {map_view.max_points():,}.")


def _map_words(chart: map_data.MapChart, total: int, colour: str, region: Region | None) -> str:
    """The caption under the map: how many images it shows, and how."""
    where = "in the zoomed region" if region is not None else "pass the filters"
    if chart.sampled:
        return (f"{len(chart.rows):,} of the {chart.in_view:,} images that {where} are drawn (a sample stratified by "
                f"{colour}); the grey cells count all {chart.in_view:,}. Draw a box and zoom into it to see every "
                f"image of a region. The run has {total:,} images · marker shape = split · colour = {colour}")
    return f"{chart.in_view:,} of {total:,} images shown ({where}) · marker shape = split · colour = {colour}"


def main() -> None:
    """Render the embedding map page."""
    run = components.page_run("Embedding map")
    if run is None:
        return
    table = map_data.map_table(run)
    if table is None:
        st.warning(f"Run `{run.name}` has no umap.parquet, so there is no map to show.")
        return
    st.caption(f"Each point is one image placed by a 2-D UMAP of its embedding ({map_data.map_made(run)}). "
               "Click a point for its nearest neighbours; use the box or lasso tool (top right of the chart) to "
               "see a group of images; scroll to zoom, drag to pan.")
    controls = st.container()
    colour, splits, k, flt = _settings(table)

    lookup = map_data.map_index(run)
    focus = st.session_state.get(FOCUS_KEY)
    focus_id = focus[1] if focus and focus[0] == run.name and focus[1] in lookup.row_of.index else None
    neighbours = neighbour_data.neighbours(run, focus_id, k, splits) if focus_id else None

    region = _region(run.name)
    chart = map_data.map_chart(run, colour, flt, splits, region)
    marks: list = []
    if focus_id is not None:
        marks = figures.highlight_series(lookup.by_row, int(lookup.row_of[focus_id]),
                                         lookup.row_of.reindex(neighbours["image_id"]).dropna().astype(int).tolist())

    left, right = st.columns([3, 2], gap="medium")
    # the panel is written before the map so that its elements reach the browser first: redrawing thousands of
    # points takes the browser longer than showing the panel does
    with right:
        if focus_id is None:
            st.info("Click a point on the map to see that image and its nearest neighbours here.",
                    icon=":material/touch_app:")
        else:
            _focus_panel(run, lookup, focus_id, neighbours, splits)
    with left:
        st.echarts_chart(figures.with_marks(chart.spec, marks), key=_chart_key(), on_select=_on_select,
                         height=figures.MAP_HEIGHT)
        st.caption(_map_words(chart, len(table), colour, region))
        if region is not None:
            st.button("Back to the whole map", key="map_whole", on_click=_whole_map, icon=":material/zoom_out:")
    with controls:
        _controls(table)
    selected = st.session_state.get(SELECTED_KEY)
    if selected and selected[0] == run.name and selected[1]:
        _selection_grid(run, table, selected[1])
    components.missing_images_notice(run)


main()
