"""A run's image files on this machine: where they are looked for, which were found, and their thumbnails (or a
placeholder tile), behind Streamlit's caches (run as a path string plus `version`, as in dashboard.run_data)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import images
from dashboard.run_data import cached_embeddings, embeddings, run_info, stamp
from skinsim.runs.folder import data_folders

GET_DATA = ("Images are read from `SKINSIM_DATA`, else the run's data folder (`meta.data_dir` in its config.json), "
            "else `data/ham10000`. Fetch HAM10000 with `python -m skinsim.data download` or point `SKINSIM_DATA` "
            "at your copy.")


def data_dirs(run: Path) -> list[Path]:
    """Folders that may hold the run's images, in the order they are tried."""
    return data_folders(run_info(run).config)


def image_paths(run: Path) -> dict[str, str]:
    """image_id -> image file for every image of the run that exists on this machine."""
    dirs = tuple(str(p) for p in data_dirs(run))
    return _image_paths(str(run), stamp(run), dirs)


@st.cache_data(show_spinner="Looking for the images ...", max_entries=8)
def _image_paths(run: str, version: float, dirs: tuple[str, ...]) -> dict[str, str]:
    from skinsim.data.images import find_image

    meta, _ = cached_embeddings(run, version)
    found: dict[str, str] = {}
    for folder in map(Path, dirs):
        todo = meta[~meta["image_id"].isin(found.keys())]
        for image_id, rel in zip(todo["image_id"], todo["path"].fillna("")):
            if rel and (folder / rel).is_file():
                found[image_id] = str(folder / rel)
        # only search a folder exhaustively when the stored relative paths do not fit it at all
        if len(found) == 0 and len(todo) > 0:
            for image_id in todo["image_id"]:
                hit = find_image(folder, image_id)
                if hit is None:
                    break  # the first miss means this folder is not the dataset; keep the cost bounded
                found[image_id] = str(hit)
    return found


def image_coverage(run: Path) -> tuple[int, int]:
    """(images found on this machine, images in the run)."""
    meta, _ = embeddings(run)
    return len(image_paths(run)), len(meta)


def image_bytes(run: Path, image_id: str) -> tuple[bytes, bool]:
    """(displayable bytes, found): the image's thumbnail, or a placeholder tile when the file is missing."""
    return picture(image_paths(run).get(image_id))


def picture(path: str | Path | None) -> tuple[bytes, bool]:
    """(displayable bytes, found) for an image file: its thumbnail, or a placeholder tile when there is none."""
    if path is not None:
        try:
            return _thumbnail(str(path)), True
        except OSError:
            pass  # unreadable file: fall through to the placeholder like a missing one
    return _placeholder(), False


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumbnail(path: str) -> bytes:
    return images.thumbnail(Path(path))


@st.cache_data(show_spinner=False)
def _placeholder() -> bytes:
    return images.placeholder()
