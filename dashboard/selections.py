"""Saved selections of a run's images (its selections/ folder): their names, their image ids and the tables they
are saved from; saving one is the one thing the dashboard writes (see skinsim.runs.selections)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.run_data import embeddings, mtime, rows_of, stamp


def names(run: Path) -> list[str]:
    """Names of the run's saved selections (read on every call: saving one must show at once)."""
    from skinsim.runs.selections import list_selections

    return list_selections(run)


def selection_ids(run: Path, name: str) -> tuple[str, ...]:
    """The image ids of a saved selection (raises skinsim.runs.selections.SelectionError with a reason)."""
    from skinsim.runs.selections import selection_path

    return _selection_ids(str(run), name, mtime(selection_path(run, name)))


@st.cache_data(show_spinner=False, max_entries=32)
def _selection_ids(run: str, name: str, version: float) -> tuple[str, ...]:
    from skinsim.runs.selections import load_selection

    return tuple(load_selection(run, name)["image_id"].astype(str))


def selection_table(run: Path, image_ids: list[str], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """The run's metadata for `image_ids` as a selection table (standard columns, then `scores`)."""
    from skinsim.runs.selections import selection_table as make

    meta, _ = embeddings(run)
    return make(meta.iloc[rows_of(str(run), stamp(run), image_ids)], image_ids, scores)


def save_selection(run: Path, name: str, table: pd.DataFrame, overwrite: bool = False) -> Path:
    """Keep a selection in the run's selections/ folder (the one thing the dashboard writes)."""
    from skinsim.runs.selections import save_selection as save

    return save(run, name, table, overwrite=overwrite)
