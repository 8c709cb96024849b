"""Finding dataset image files and decoding them into uint8 arrays at the training size."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# HAM10000 images are 600x450 originally; the shared copy is 200x150. Both are 4:3 (width:height).
Image.MAX_IMAGE_PIXELS = 40_000_000


def index_images(root: Path, pattern: str = "ISIC_*") -> dict[str, Path]:
    """Map image_id (file stem) to path for every image named like `pattern` anywhere below `root`."""
    found: dict[str, Path] = {}
    for path in sorted(Path(root).rglob(pattern)):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def find_image(root: Path | None, image_id: str, relative: str | None = None) -> Path | None:
    """The file of one image: at `relative` below `root` if given and present, else searched for."""
    if root is None or not Path(root).is_dir():
        return None
    if relative and (Path(root) / relative).is_file():
        return Path(root) / relative
    # the official image folders of HAM10000, ISIC 2019, ISIC 2020 and PAD-UFES-20, then the folder itself
    for sub in ("images", "HAM10000_images_part_1", "HAM10000_images_part_2", "ISIC_2019_Training_Input", "train",
                "jpeg/train", "imgs_part_1", "imgs_part_2", "imgs_part_3", "."):
        for suffix in IMAGE_SUFFIXES:
            candidate = Path(root) / sub / f"{image_id}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # PIL raises many types for broken files
        return False


def unreadable_images(root: Path, paths: list[str], workers: int = 4) -> list[str]:
    """The relative paths among `paths` that PIL cannot open and verify."""
    with ThreadPoolExecutor(workers) as pool:
        ok = list(pool.map(lambda p: _readable(Path(root) / p), paths))
    return [p for p, good in zip(paths, ok) if not good]


def parse_size(text: str | int | tuple[int, int]) -> tuple[int, int]:
    """'224' -> (224, 224); '150x200' -> (150, 200) as (height, width)."""
    if isinstance(text, tuple):
        return int(text[0]), int(text[1])
    parts = str(text).lower().replace(",", "x").split("x")
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    return int(parts[0]), int(parts[1])


def to_array(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """An RGB uint8 array of shape (height, width, 3) resized to `size` = (height, width)."""
    image = image.convert("RGB")
    if image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(image, dtype=np.uint8)


def load_array(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode one image file to an RGB uint8 array at `size`."""
    with Image.open(path) as img:
        return to_array(img, size)


def decode_all(root: Path, paths: list[str], size: tuple[int, int], workers: int = 2) -> np.ndarray:
    """Decode every image once into one (n, height, width, 3) uint8 array kept in memory."""
    out = np.empty((len(paths), size[0], size[1], 3), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = load_array(Path(root) / paths[i], size)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(work, range(len(paths))))
    return out
