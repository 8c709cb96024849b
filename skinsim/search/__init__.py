"""Finding neighbours: exact distances and the numpy reference (exact), exact kNN through FAISS (neighbours),
FAISS indexes named by factory strings (vector_index), searching a run with any image (search_index: SearchIndex
and `python -m skinsim.search`), image archives embedded with a run's model (archive: the layout; archive_plan:
the files and shards; archive_job: the job and its manifest; indexing: `python -m skinsim.index`), and why two
images are close (explain).

Floor 3: may import model, data, runs and compute. `from skinsim.search import SearchIndex` works and stays
light: the class is loaded on first use.
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "SearchIndex":  # the public entry point, without importing torch for every `skinsim.search.*`
        from skinsim.search.search_index import SearchIndex
        return SearchIndex
    raise AttributeError(f"module 'skinsim.search' has no attribute {name!r}")
