"""Query viewer: a validation image or an uploaded one, and its nearest neighbours in the search space."""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import components, figures, neighbour_data, run_data, search, uploads

QUERY_KEY = "query_id"
MODES = ["Validation image", "Upload an image"]
ALL = "all diagnoses"
CARD_RATIO = (1, 2)  # the page is wide: a third of it is enough for the query image


def _pick_random(ids: list[str]) -> None:
    st.session_state[QUERY_KEY] = random.choice(ids)


def _validation_query(run: Path, meta: pd.DataFrame) -> pd.Series | None:
    val = meta[meta["split"] == "val"]
    if val.empty:
        st.warning("This run has no validation images.")
        return None
    cols = st.columns([1.2, 2, 1])
    dx = cols[0].selectbox("Diagnosis", [ALL] + sorted(val["dx"].unique()), key="query_dx")
    pool = val if dx == ALL else val[val["dx"] == dx]
    ids = pool["image_id"].tolist()
    if st.session_state.get(QUERY_KEY) not in ids:
        st.session_state[QUERY_KEY] = ids[0]
    cols[1].selectbox(f"Validation image ({len(ids):,})", ids, key=QUERY_KEY)
    cols[2].button("Random", icon=":material/casino:", on_click=_pick_random, args=(ids,), key="query_random",
                   width="stretch")
    return pool.loc[pool["image_id"] == st.session_state[QUERY_KEY]].iloc[0]


def _upload_query(run: Path, k: int, splits: tuple[str, ...],
                  archive: str | None = None) -> tuple[pd.DataFrame, bytes] | None:
    upload = st.file_uploader("JPEG or PNG image", type=uploads.UPLOAD_TYPES, key="query_upload",
                              help=f"Up to {uploads.MAX_UPLOAD_BYTES // 2**20} MB, at least {uploads.MIN_SIDE} "
                                   "pixels on the shorter side. The image is embedded with the run's checkpoint; it "
                                   "is not stored.")
    if upload is None:
        return None
    try:
        image = uploads.read_upload(upload.getvalue(), upload.name)
    except uploads.UploadError as exc:
        st.error(f"Upload refused: {exc}", icon=":material/block:")
        return None
    try:
        with st.spinner("Embedding the image ..."):
            table = search.archive_query_upload(run, archive, image, k) if archive else \
                search.query_upload(run, image, k, splits)
    except search.SearchUnavailable as exc:
        st.warning(str(exc))
        return None
    components.picture_card(image, f"Uploaded query: `{upload.name}`",
                            {"size": f"{image.width}x{image.height} pixels", "diagnosis": "unknown (not stored)"},
                            key="upload_card", ratio=CARD_RATIO)
    return table, upload.getvalue()


def _results(run: Path, table: pd.DataFrame, splits: tuple[str, ...], query: str | bytes) -> None:
    st.subheader(f"{len(table)} nearest neighbours in {components.space_words(splits)}")
    components.neighbour_panel(run, table, key="neighbours")
    components.why_similar(run, query, table, key="query_why")
    _vote(table, run_data.run_labels(run))


def _vote(table: pd.DataFrame, labels: list[str]) -> None:
    votes = components.diagnosis_vote(table)
    st.subheader("Neighbours' diagnosis vote")
    st.caption(f"How the {len(table)} most similar images are labelled. This is a similarity statistic over the "
               "search space, not a diagnosis of the query and not medical advice.")
    with st.container(key="vote"):
        left, right = st.columns([2, 1])
        left.plotly_chart(figures.vote_bars(votes, labels), key="vote_bars")
        right.dataframe(votes.rename("neighbours").to_frame(), width="stretch")


def _archive_results(run: Path, archive: str, table: pd.DataFrame) -> None:
    st.subheader(f"{len(table)} nearest images in archive `{archive}`")
    with st.container(key="archive_neighbours"):
        if table.empty:
            st.warning(f"No neighbours: archive {archive} holds no image to compare with.")
            return
        shown = [search.archive_image_bytes(run, archive, p) for p in table["path"]]
        captions = [f"#{int(r['rank'])} · d={r['distance']:.3f} · {Path(r['path']).name}"
                    for _, r in table.iterrows()]
        st.image([picture for picture, _ in shown], caption=captions, width=components.TILE_WIDTH)
        missing = sum(not found for _, found in shown)
        if missing:
            st.info(f"{missing} of these {len(table)} images were not found at the paths the archive stored them "
                    f"under (`{search.archive(run, archive).root}`); they are shown as placeholders.",
                    icon=":material/image_not_supported:")
        st.dataframe(table, hide_index=True,
                     column_config={"distance": st.column_config.NumberColumn("distance", format="%.4f")})
    if "dx" in table.columns and table["dx"].notna().any():
        _vote(table, run_data.classes_all(run_data.run_labels(run), table["dx"].dropna()))


def main() -> None:
    """Render the query viewer page."""
    run = components.page_run("Query viewer")
    if run is None:
        return
    meta, _ = run_data.embeddings(run)
    top = st.columns([2, 2, 2])
    mode = top[0].radio("Query", MODES, horizontal=True, key="query_mode")
    spaces = search.search_space_choices(run)
    if st.session_state.get("query_space") not in spaces:
        st.session_state["query_space"] = spaces[0]  # another run, without the archive chosen before
    space = top[1].radio("Search space", spaces, horizontal=True, key="query_space",
                         help="The run's test split (or test + train), or an image archive embedded with the run's "
                              "model (`python -m skinsim.index`)")
    k = top[2].slider("k", 1, 30, 10, key="query_k")
    archive = search.archive_choice(space)
    splits = neighbour_data.SEARCH_SPACES.get(space, ("test",))
    try:
        if mode == MODES[0]:
            query = _validation_query(run, meta)
            if query is None:
                return
            components.image_card(run, query, "Query", key="query_card", ratio=CARD_RATIO)
            key: str | bytes = str(query["image_id"])
            table = search.archive_neighbours(run, archive, key, k) if archive else \
                neighbour_data.neighbours(run, key, k, splits)
        else:
            found = _upload_query(run, k, splits, archive)
            if found is None:
                return
            table, key = found
    except search.SearchUnavailable as exc:
        st.warning(str(exc))
        return
    if archive:
        _archive_results(run, archive, table)
    else:
        _results(run, table, splits, key)
    components.missing_images_notice(run)


main()
