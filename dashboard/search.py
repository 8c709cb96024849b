"""Searching with a run's model: its search index for uploaded images, and its image archives (made by
`python -m skinsim.index`) as search spaces, behind Streamlit's caches (run as a path string plus `version`, as in
dashboard.run_data; an archive's own version is its manifest's mtime)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.neighbour_data import SEARCH_SPACES, in_column_order
from dashboard.run_data import cached_embeddings, mtime, rows_of, stamp
from dashboard.run_images import picture

ARCHIVE_SPACE = "archive: "  # search-space label prefix: "archive: NAME"


class SearchUnavailable(RuntimeError):
    """The run cannot embed new images here (no checkpoint, or torch / skinsim.search.search_index missing)."""


def search_index(run: Path, splits: tuple[str, ...] = ("test",)) -> Any:
    """The run's model and search space, loaded once per run (raises SearchUnavailable with a reason)."""
    if not (Path(run) / "checkpoint.safetensors").is_file():
        raise SearchUnavailable(f"run {Path(run).name} has no checkpoint.safetensors, so uploads cannot be "
                                "embedded; choose a run trained with `python -m skinsim.train`.")
    return cached_search_index(str(run), stamp(run), tuple(splits))


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def cached_search_index(run: str, version: float, splits: tuple[str, ...]) -> Any:
    """`search_index` by the cache's own key (run as a string, version), without the checkpoint check."""
    try:
        from skinsim.search.search_index import SearchIndex
    except ImportError as exc:
        raise SearchUnavailable(f"uploads need skinsim.search.search_index and torch ({exc}).") from None
    return SearchIndex.from_run(Path(run), search_space=splits, device="cpu")


def query_upload(run: Path, image: Any, k: int, splits: tuple[str, ...] = ("test",)) -> pd.DataFrame:
    """The k nearest images of the search space to an uploaded image, embedded with the run's checkpoint."""
    return in_column_order(search_index(run, splits).query_image(image, k=int(k)))


def search_space_choices(run: Path) -> list[str]:
    """The query viewer's search spaces: the run's splits, then its complete archives as 'archive: NAME'."""
    from skinsim.search.archive import list_archives

    return list(SEARCH_SPACES) + [f"{ARCHIVE_SPACE}{name}" for name in list_archives(Path(run))]


def archive_choice(space: str) -> str | None:
    """The archive name of an 'archive: NAME' search space, else None."""
    return space[len(ARCHIVE_SPACE):] if space.startswith(ARCHIVE_SPACE) else None


def _archive_stamp(run: Path, name: str) -> float:
    return mtime(Path(run) / "archives" / name / "manifest.json")


def archive(run: Path, name: str) -> Any:
    """The run's archive `name` (skinsim.search.archive.Archive), opened once per version, or SearchUnavailable."""
    return _archive(str(run), stamp(run), name, _archive_stamp(run, name))


@st.cache_resource(show_spinner="Opening the archive ...", max_entries=4)
def _archive(run: str, version: float, name: str, archive_version: float) -> Any:
    from skinsim.search.archive import ArchiveError, open_archive
    from skinsim.search.vector_index import IndexMismatch

    try:
        return open_archive(Path(run), name)
    except (ArchiveError, IndexMismatch, ImportError, OSError) as err:
        raise SearchUnavailable(f"archive {name} cannot be searched: {err}") from None


def archive_neighbours(run: Path, name: str, image_id: str, k: int) -> pd.DataFrame:
    """The k nearest archive images to a stored image of the run, by its stored vector."""
    return _archive_neighbours(str(run), stamp(run), name, _archive_stamp(run, name), image_id, int(k))


@st.cache_data(show_spinner=False, max_entries=256)
def _archive_neighbours(run: str, version: float, name: str, archive_version: float, image_id: str,
                        k: int) -> pd.DataFrame:
    found = _archive(run, version, name, archive_version)
    _, vectors = cached_embeddings(run, version)
    rows = rows_of(run, version, [image_id])
    if len(rows) == 0:
        return pd.DataFrame(columns=["rank", "id", "path", "distance", *found.metadata_columns])
    return found.neighbours(vectors[rows[:1]], k)[0]


def archive_query_upload(run: Path, name: str, image: Any, k: int) -> pd.DataFrame:
    """The k nearest archive images to an uploaded image, embedded with the run's checkpoint."""
    found = archive(run, name)
    return found.neighbours(search_index(run).embed_images([image]), int(k))[0]


def archive_image_bytes(run: Path, name: str, path: str) -> tuple[bytes, bool]:
    """(displayable bytes, found) for an archive image by its stored path; a placeholder tile when it is missing."""
    file = archive(run, name).image_path(path)
    return picture(file if file.is_file() else None)
