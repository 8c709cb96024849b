"""Search a run: embed any image as in training and return its nearest lesions in the search space.

    from skinsim.search.search_index import SearchIndex
    index = SearchIndex.from_run("data/runs/demo")
    index.query_image("my_lesion.jpg", k=10)      # DataFrame: rank, image_id, distance, dx, metadata...

    python -m skinsim.search --run demo my_lesion.jpg          # the same from a shell
    python -m skinsim.search --run demo --id ISIC_0024306 -k 5  # neighbours of a stored image
    python -m skinsim.search --run demo --index HNSW32 ...       # through another FAISS index (default: exact)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from safetensors.torch import load_file

from skinsim.compute.compiled import CompiledForward, trunk_pass
from skinsim.compute.device import pick_device
from skinsim.data.images import parse_size, to_array
from skinsim.model.embed import embed_batches
from skinsim.model.embedder import Embedder
from skinsim.model.transforms import normalise
from skinsim.runs.config import TrainConfig
from skinsim.runs.folder import Run, data_folders, load_run
from skinsim.search.archive import open_archive
from skinsim.search.explain import SimilarityMaps, prepare, similarity_maps
from skinsim.search.vector_index import AUTO_EXACT_LIMIT, VectorIndex, auto_spec


def load_model(run: Run, device: str = "cpu") -> Embedder:
    """Rebuild a run's embedder from config.json and its safetensors checkpoint (no unpickling)."""
    cfg = TrainConfig.from_dict(run.config)
    model = Embedder(cfg.backbone, cfg.em, pretrained="none")
    state = load_file(run.path / "checkpoint.safetensors")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(pick_device(device)).eval()


def run_data_dir(run: Run) -> Path | None:
    """Where the run's images are (see `skinsim.runs.folder.data_folders`), or None."""
    folders = data_folders(run.config)
    return folders[0] if folders else None


def ranked(found: pd.DataFrame, distances: np.ndarray) -> pd.DataFrame:
    """Neighbour rows with their rank and distance in front."""
    found = found.reset_index(drop=True)
    found.insert(0, "distance", distances)
    found.insert(0, "rank", np.arange(1, len(found) + 1))
    return found


class SearchIndex:
    """Nearest-neighbour search over one run's stored embeddings, through one FAISS index of the search space.

    `index` is a FAISS factory string ("Flat": exact, "HNSW32", "IVF256,PQ32x8" ...; see skinsim.search.vector_index);
    None picks `vector_index.auto_spec` for the search space's size (exact up to 200,000 images).
    """

    def __init__(self, run: Run, search_space: tuple[str, ...] = ("test",), device: str = "cpu",
                 index: str | None = None, archive: str | None = None):
        self.run = run
        self.config = TrainConfig.from_dict(run.config)
        self.table, self.vectors = run.embeddings()
        self.search_rows = np.flatnonzero(self.table["split"].isin(search_space).to_numpy())
        self.search_table = self.table.iloc[self.search_rows].reset_index(drop=True)
        self.search_vectors = self.vectors[self.search_rows]
        self.search_space = tuple(search_space)
        self.vector_index = VectorIndex(self.search_vectors, index or auto_spec(len(self.search_rows)))
        # an archive (python -m skinsim.index) replaces the run's splits as the search space
        self.archive = open_archive(run, archive) if archive else None
        self.device = device
        self.data_dir = run_data_dir(run)
        self._model: Embedder | None = None
        self.compiled = False  # True: embed_images runs the frozen trunk through torch.compile (compute.compiled)
        self._trunk: CompiledForward | None = None

    @classmethod
    def from_run(cls, run: str | Path | Run | None = None, search_space: tuple[str, ...] = ("test",),
                 device: str = "cpu", index: str | None = None, archive: str | None = None) -> "SearchIndex":
        """Open a run (name, path, Run or None for the latest) for searching its splits, or one of its archives."""
        return cls(run if isinstance(run, Run) else load_run(run), search_space, device, index, archive)

    @property
    def model(self) -> Embedder:
        """The run's model, loaded on first use (searching by id needs none)."""
        if self._model is None:
            self._model = load_model(self.run, self.device)
        return self._model

    def _array(self, item: str | Path | Image.Image) -> np.ndarray:
        size = parse_size(self.config.image_size)
        if isinstance(item, Image.Image):
            return to_array(item, size)
        with Image.open(item) as img:
            return to_array(img, size)

    def embed_images(self, images: list[str | Path | Image.Image]) -> np.ndarray:
        """Embed images (paths or PIL images) resized and normalised as in training."""
        batch = np.stack([self._array(item) for item in images])
        model, freeze = self.model, self.config.freeze
        if self.compiled and self._trunk is None:  # compiled once, on first use
            self._trunk = trunk_pass(model, freeze, compiled=True)
        trunk = self._trunk if self.compiled else trunk_pass(model, freeze, compiled=False)

        def get(s: slice) -> torch.Tensor:
            x = normalise(batch[s], model.mean, model.std)
            # rounded to float16 as the run's cache was, so a file of the run embeds to its stored vector
            return trunk(x.to(next(model.parameters()).device)).half() if freeze else x

        with torch.no_grad():
            # as in training: the trunk in `get` in float32 (the cache), the later stages in the run's precision
            return embed_batches(model, len(batch), get, freeze, self.config.tta,
                                 device=next(model.parameters()).device, precision=self.config.precision)

    def explain(self, query: str | Path | Image.Image, neighbour: str | Path | Image.Image) -> SimilarityMaps:
        """Heat maps of the regions that make two images (paths or PIL images) close under this run's model."""
        model = self.model
        size = parse_size(self.config.image_size)
        return similarity_maps(model, prepare(self._array(query), size, model.mean, model.std),
                               prepare(self._array(neighbour), size, model.mean, model.std))

    def neighbours(self, vectors: np.ndarray, k: int = 10) -> list[pd.DataFrame]:
        """For each vector, a table of its k nearest images in the search space (or the archive)."""
        if self.archive is not None:
            return self.archive.neighbours(vectors, k)
        idx, dist = self.vector_index.search(np.atleast_2d(vectors), k)
        # an approximate index may find fewer than k: those places hold -1
        return [ranked(self.table.iloc[self.search_rows[i[i >= 0]]], d[i >= 0]) for i, d in zip(idx, dist)]

    def query_image(self, image: str | Path | Image.Image, k: int = 10) -> pd.DataFrame:
        """The k nearest lesions in the search space to an image file or PIL image."""
        return self.neighbours(self.embed_images([image]), k)[0]

    def query_id(self, image_id: str, k: int = 10) -> pd.DataFrame:
        """The k nearest lesions to an image of the run, by its stored embedding (itself excluded)."""
        rows = np.flatnonzero(self.table["image_id"].to_numpy() == image_id)
        if len(rows) == 0:
            raise KeyError(f"{image_id} is not in run {self.run.name}")
        if self.archive is not None:
            return self.archive.neighbours(self.vectors[rows[0]], k)[0]
        inside = np.flatnonzero(self.search_rows == rows[0])
        idx, dist = self.vector_index.search(self.vectors[rows[0]], k, exclude=inside[:1] if len(inside) else [-1])
        found = idx[0] >= 0  # an approximate index may find fewer than k
        return ranked(self.table.iloc[self.search_rows[idx[0][found]]], dist[0][found])


SHOWN = ["rank", "image_id", "distance", "dx", "lesion_id", "split", "dx_type", "age", "sex", "localization"]


def main(argv: list[str] | None = None) -> int:
    """CLI: print the nearest lesions of image files, or of a stored image by id."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="JPEG or PNG files to search with")
    parser.add_argument("--id", dest="image_ids", action="append", default=[], metavar="IMAGE_ID",
                        help="an image of the run, by id (repeatable); its stored embedding, itself excluded")
    parser.add_argument("--run", default="latest", help="run folder or name under data/runs (default: latest)")
    parser.add_argument("-k", type=int, default=10, help="neighbours per query (default 10)")
    parser.add_argument("--search-space", default="test",
                        help="splits searched, comma-separated: test (default), test,train, train,val,test")
    parser.add_argument("--archive", default=None, metavar="NAME",
                        help="search an archive of the run (made by python -m skinsim.index) instead of its splits")
    parser.add_argument("--index", default=None, metavar="SPEC",
                        help="FAISS index of the search space, as a factory string: Flat (exact), HNSW32, "
                             f"IVF256,PQ32x8 ... (default: Flat up to {AUTO_EXACT_LIMIT:,} images, HNSW32 above)")
    args = parser.parse_args(argv)
    if not args.images and not args.image_ids:
        parser.error("give at least one IMAGE or --id")
    if args.k < 1:
        parser.error("-k must be at least 1")
    space = tuple(s.strip() for s in args.search_space.split(",") if s.strip())
    if not space or set(space) - {"train", "val", "test"}:
        parser.error(f"--search-space takes train, val and test, not {args.search_space!r}")
    try:
        index = SearchIndex.from_run(args.run, search_space=space, index=args.index, archive=args.archive)
        queries = [(image_id, lambda i=image_id: index.query_id(i, args.k)) for image_id in args.image_ids]
        for image in args.images:
            if not Path(image).is_file():
                raise FileNotFoundError(f"{image} does not exist")
            queries.append((image, lambda i=image: index.query_image(i, args.k)))
        for name, query in queries:
            try:
                found = query()
            except (OSError, SyntaxError, ValueError) as exc:  # PIL's ways of failing on a damaged file
                raise ValueError(f"{name} could not be read as an image ({exc})") from None
            where = f"archive {args.archive}" if args.archive else "+".join(space)
            print(f"{name}: {len(found)} nearest in {where} of run {index.run.name}")
            shown = list(found.columns) if args.archive else [c for c in SHOWN if c in found.columns]
            print(found[shown].to_string(index=False, float_format="%.4f"))
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {str(exc).strip(chr(39))}", file=sys.stderr)
        return 2
    return 0

