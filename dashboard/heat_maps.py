"""Why-similar heat maps: the regions of two images that make their embeddings close, from the run's checkpoint,
behind Streamlit's cache (run as a path string plus `version`, as in dashboard.run_data)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image

from dashboard import images
from dashboard.run_data import stamp
from dashboard.run_images import GET_DATA, image_paths
from dashboard.search import SearchUnavailable, cached_search_index, search_index


@dataclass(frozen=True)
class WhySimilar:
    """Two heat-map overlays (PNG bytes) and the cosine similarity they explain."""

    query: bytes
    neighbour: bytes
    cosine: float
    method: str


def why_similar(run: Path, query: str | bytes, neighbour_id: str) -> WhySimilar:
    """Heat maps of why `query` (an image id of the run, or an uploaded image's bytes) and a neighbour are close.

    Raises SearchUnavailable when the run has no checkpoint or an image file is missing.
    """
    search_index(run)  # the checkpoint check, with its message
    paths = image_paths(run)
    missing = [i for i in ([query] if isinstance(query, str) else []) + [neighbour_id] if i not in paths]
    if missing:
        raise SearchUnavailable(f"the image file of {', '.join(missing)} is not on this machine, so its heat map "
                                f"cannot be computed. {GET_DATA}")
    source = paths[query] if isinstance(query, str) else query
    return _why_similar(str(run), stamp(run), source, paths[neighbour_id])


@st.cache_data(show_spinner="Computing the heat maps ...", max_entries=256)
def _why_similar(run: str, version: float, query: str | bytes, neighbour: str) -> WhySimilar:
    index = cached_search_index(run, version, ("test",))
    with Image.open(io.BytesIO(query) if isinstance(query, bytes) else query) as img:
        picture_q = img.convert("RGB")
    with Image.open(neighbour) as img:
        picture_n = img.convert("RGB")
    maps = index.explain(picture_q, picture_n)
    size = (maps.query.shape[1], maps.query.shape[0])
    return WhySimilar(query=images.heat_overlay(picture_q.resize(size, Image.BILINEAR), maps.query),
                      neighbour=images.heat_overlay(picture_n.resize(size, Image.BILINEAR), maps.neighbour),
                      cosine=maps.cosine, method=maps.method)
