"""Pieces of page that several pages share: the run picker, image grids, neighbour panels and notices."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import heat_maps, run_data, run_images, search, selections
from dashboard.neighbour_data import extra_columns
from skinsim.runs.folder import runs_dir

RUN_KEY = "run_name"
FOCUS_KEY = "map_focus"  # (run name, image_id) of the map's clicked point; outlives the chart's own selection state
MAP_PAGE = "app_pages/embedding_map.py"
TRAIN_COMMAND = "python -m skinsim.train --data-dir ../shared/ham10000"
TILE_WIDTH = 170
META_FIELDS = ["dx", "dx_type", "age", "sex", "localization", "split", "lesion_id"]


def run_picker() -> Path | None:
    """The sidebar's run choice (shared by every page); None when there is no run at all."""
    runs = run_data.available_runs()
    if not runs:
        st.sidebar.info("No run yet.")
        return None
    by_name = {p.name: p for p in runs}
    default = run_data.default_run(runs)
    names = list(by_name)
    if st.session_state.get(RUN_KEY) not in by_name:
        # first visit, or the chosen run was deleted: fall back to the default instead of erroring
        st.session_state[RUN_KEY] = default.name if default else names[0]
    name = st.sidebar.selectbox("Run", names, key=RUN_KEY, help=f"Runs under {runs_dir()}")
    return by_name[name]


def current_run() -> Path | None:
    """The run chosen in the sidebar, for pages (the entry point draws the picker before the page runs)."""
    name = st.session_state.get(RUN_KEY)
    if name is None:
        return None
    path = runs_dir() / name
    return path if run_data.is_complete_run(path) else None


def page_run(title: str) -> Path | None:
    """Title a page and return the chosen run, or explain how to make one and return None."""
    st.title(title)
    run = current_run()
    if run is None:
        no_run_notice()
    return run


def run_argument(run: Path) -> str:
    """The run's folder as a command-line argument: relative to the working directory when inside it."""
    try:
        return str(Path(run).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(run)


def no_run_notice() -> None:
    """Explain how to make the first run."""
    st.info(f"There is no run under `{runs_dir()}` yet. Make one with:")
    st.code(TRAIN_COMMAND, language="bash")
    st.caption("Training writes a run folder (embeddings, map, metrics, checkpoint) under `data/runs/`; reload "
               "this page when it has finished. `SKINSIM_RUNS` points the dashboard at another runs folder.")


def missing_images_notice(run: Path) -> None:
    """One message per page when some of the run's images are not on this machine."""
    found, total = run_images.image_coverage(run)
    if found < total:
        where = ", ".join(f"`{p}`" for p in run_images.data_dirs(run)) or "no existing folder"
        st.info(f"{total - found:,} of {total:,} images of this run were not found (looked in {where}); they are "
                f"shown as placeholders. {run_images.GET_DATA}", icon=":material/image_not_supported:")


def image_tiles(run: Path, ids: list[str], captions: list[str], width: int = TILE_WIDTH) -> None:
    """A wrapping row of image tiles with captions; missing images appear as placeholder tiles."""
    if not ids:
        return
    pictures = [run_images.image_bytes(run, i)[0] for i in ids]
    st.image(pictures, caption=captions, width=width)


def neighbour_caption(row: pd.Series) -> str:
    """'#rank dx · d=distance · image_id' for a neighbour tile."""
    return f"#{int(row['rank'])} {row['dx']} · d={row['distance']:.3f} · {row['image_id']}"


def space_words(splits: tuple[str, ...]) -> str:
    """('test',) -> 'the test split'; ('test', 'train') -> 'the test and train splits'."""
    return f"the {splits[0]} split" if len(splits) == 1 else f"the {' and '.join(splits)} splits"


def neighbour_panel(run: Path, table: pd.DataFrame, key: str = "neighbours", width: int = TILE_WIDTH) -> None:
    """The neighbours as image tiles (rank, diagnosis, distance, id) and as a metadata table."""
    with st.container(key=key):
        if table.empty:
            st.warning("No neighbours: the search space is empty for this run.")
            return
        image_tiles(run, table["image_id"].tolist(), [neighbour_caption(r) for _, r in table.iterrows()],
                    width=width)
        shown = table.drop(columns=[c for c in ("path",) if c in table.columns])
        st.dataframe(shown, hide_index=True, column_config={
            "distance": st.column_config.NumberColumn("distance", format="%.4f"),
            "age": st.column_config.NumberColumn("age", format="%d")})


def image_card(run: Path, row: pd.Series, title: str, key: str, ratio: tuple[float, float] = (1, 1)) -> None:
    """One image of the run with its metadata beside it."""
    facts = {f: row[f] for f in META_FIELDS + extra_columns(row.to_frame().T) if f in row.index}
    age = facts.get("age")
    facts["age"] = "unknown" if age is None or pd.isna(age) else int(age)
    picture = run_images.image_bytes(run, str(row["image_id"]))[0]
    picture_card(picture, f"{title}: `{row['image_id']}`", facts, key, ratio)


def picture_card(picture: Any, title: str, facts: dict[str, Any], key: str,
                 ratio: tuple[float, float] = (1, 1)) -> None:
    """A bordered card: a title, the picture on the left, facts as a list on the right."""
    with st.container(key=key, border=True):
        st.markdown(f"**{title}**")
        left, right = st.columns(list(ratio))
        left.image(picture, width="stretch")
        right.markdown("\n".join(f"- **{k}**: {v}" for k, v in facts.items()))


def diagnosis_vote(table: pd.DataFrame) -> pd.Series:
    """How many of the neighbours carry each diagnosis, most first."""
    return table["dx"].value_counts().sort_values(ascending=False)


def open_on_map(run: Path, image_id: str) -> None:
    """Go to the embedding map with `image_id` selected, its neighbours in the panel."""
    st.session_state[FOCUS_KEY] = (run.name, image_id)
    st.switch_page(MAP_PAGE)


def map_button(run: Path, image_id: str, key: str, label: str = "Show on map") -> None:
    """A small button that opens `image_id` on the embedding map."""
    if st.button(label, key=key, icon=":material/scatter_plot:", help=f"Open {image_id} on the embedding map "
                 "with its nearest neighbours"):
        open_on_map(run, image_id)


def selection_actions(run: Path, table: pd.DataFrame, key: str, default_name: str) -> None:
    """Export a selection (image_id, lesion_id, dx, split, scores) as CSV, or keep it under a name in the run."""
    from skinsim.runs.selections import SelectionError, to_csv

    with st.container(key=f"{key}_actions"):
        left, middle, right = st.columns([1.3, 2, 1.2], vertical_alignment="bottom")
        left.download_button(f"Export {len(table):,} as CSV", to_csv(table), file_name=f"{run.name}-{default_name}.csv",
                             mime="text/csv", key=f"{key}_csv", icon=":material/download:")
        name = middle.text_input("Save as selection", value=default_name, key=f"{key}_name",
                                 help="Kept as selections/NAME.csv in the run folder; the map's filters can show it.")
        replace = right.checkbox("replace", key=f"{key}_replace", help="Replace a saved selection of that name")
        if right.button("Save", key=f"{key}_save", icon=":material/bookmark_add:"):
            try:
                path = selections.save_selection(run, name, table, overwrite=replace)
            except SelectionError as err:
                st.error(str(err), icon=":material/block:")
            else:
                st.success(f"Saved {len(table):,} images as `{path.stem}` ({path.relative_to(run)}); choose it under "
                           "the embedding map's Filters to see them there.", icon=":material/bookmark:")


def why_similar(run: Path, query: str | bytes, neighbours: pd.DataFrame, key: str) -> None:
    """Pick a neighbour and see heat maps over both images of the regions that make them close."""
    with st.container(key=key):
        st.markdown("**Why similar?**")
        if not _can_explain(run):
            return
        options = ["choose a neighbour"] + [f"#{int(r['rank'])} {r['image_id']}" for _, r in neighbours.iterrows()]
        choice = st.selectbox("Compare with", options, key=f"{key}_pick", label_visibility="collapsed")
        if choice == options[0]:
            st.caption("Choose a neighbour to see which regions of the two images make them close.")
            return
        neighbour_id = choice.split(" ", 1)[1]
        query_name = query if isinstance(query, str) else "uploaded image"
        _heat_maps(run, query, neighbour_id, f"query · {query_name}", choice)


def pair_why_similar(run: Path, image_a: str, image_b: str, key: str) -> None:
    """A toggle that shows heat maps over two images of the run of the regions that make them close."""
    with st.container(key=key):
        if not st.toggle("Why similar?", key=f"{key}_on", help="Heat maps over both images of the regions that make "
                         "their embeddings close, computed from the run's checkpoint"):
            return
        if _can_explain(run):
            _heat_maps(run, image_a, image_b, f"heat map · {image_a}", f"heat map · {image_b}")


def _can_explain(run: Path) -> bool:
    """True when the run has the checkpoint that heat maps need; else says so."""
    if run_data.run_info(run).has_checkpoint:
        return True
    st.info(f"Run `{run.name}` has no checkpoint.safetensors, so the heat maps that explain a neighbour cannot be "
            "computed (they need the model). Duplicates, label issues and outliers do not.",
            icon=":material/visibility_off:")
    return False


def _heat_maps(run: Path, query: str | bytes, neighbour_id: str, query_caption: str, neighbour_caption: str) -> None:
    """The two heat-map overlays side by side, the neighbour's caption with the cosine similarity, and the method."""
    try:
        maps = heat_maps.why_similar(run, query, neighbour_id)
    except search.SearchUnavailable as err:
        st.info(str(err), icon=":material/image_not_supported:")
        return
    captions = [query_caption, f"{neighbour_caption} · cosine similarity {maps.cosine:.4f}"]
    st.image([maps.query, maps.neighbour], caption=captions, width=TILE_WIDTH + 40)
    st.caption(f"Method: {maps.method} Computed from this run's checkpoint, one view each, on the images as the "
               "model sees them.")


def page_of(frame: pd.DataFrame, size: int, key: str) -> pd.DataFrame:
    """One page of `frame`, with a page number input when there is more than one."""
    pages = max(1, math.ceil(len(frame) / size))
    left, right = st.columns([1, 5], vertical_alignment="bottom")
    page = int(left.number_input("Page", 1, pages, key=key)) if pages > 1 else 1
    right.caption(f"page {page} of {pages} · {len(frame):,} in the list")
    return frame.iloc[(page - 1) * size: page * size]

