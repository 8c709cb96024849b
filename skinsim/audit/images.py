"""Image files of a run: where they are, their sha256 and perceptual hashes, and pairs found by the hashes."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
THUMB = (32, 24)  # (width, height) of the thumbnails compared pixel by pixel; HAM10000 is 4:3


@dataclass
class ImageHashes:
    """Per row of the run's table: the file found (or None), its sha256 and its 64-bit pHash."""

    files: list[Path | None]
    sha256: list[str | None]
    phash: np.ndarray      # (n,) uint64, meaningful where has_phash
    has_phash: np.ndarray  # (n,) bool; False when the file is missing or cannot be decoded
    thumbs: np.ndarray     # (n, 24, 32, 3) float32 RGB thumbnails, meaningful where has_phash

    @property
    def found(self) -> int:
        """How many rows have a file."""
        return sum(f is not None for f in self.files)

    @property
    def unreadable(self) -> int:
        """How many found files could not be decoded as images."""
        return sum(f is not None for f in self.files) - int(self.has_phash.sum())


def locate_images(paths: pd.Series, folders: list[Path]) -> list[Path | None]:
    """The first existing `folder / path` for each relative path, else None."""
    found: list[Path | None] = []
    for rel in paths:
        hit = None
        if isinstance(rel, str) and rel:
            for folder in folders:
                candidate = Path(folder) / rel
                if candidate.is_file():
                    hit = candidate
                    break
        found.append(hit)
    return found


def _decode(data: bytes) -> tuple[int, np.ndarray] | None:
    """(64-bit pHash, RGB thumbnail) of an image file's bytes, or None when it cannot be decoded."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            bits = imagehash.phash(img).hash.reshape(-1)
            thumb = np.asarray(img.convert("RGB").resize(THUMB, Image.BILINEAR), dtype=np.float32)
    except (OSError, ValueError, SyntaxError):  # what PIL raises for truncated or foreign files
        return None
    return int.from_bytes(np.packbits(bits).tobytes(), "big"), thumb


def hash_images(files: list[Path | None]) -> ImageHashes:
    """sha256 of every file's bytes, the pHash and a thumbnail of its decoded image (each file read once)."""
    sha: list[str | None] = []
    phash = np.zeros(len(files), dtype=np.uint64)
    has = np.zeros(len(files), dtype=bool)
    thumbs = np.zeros((len(files), THUMB[1], THUMB[0], 3), dtype=np.float32)
    for i, path in enumerate(files):
        if path is None:
            sha.append(None)
            continue
        data = path.read_bytes()
        sha.append(hashlib.sha256(data).hexdigest())
        decoded = _decode(data)
        if decoded is not None:
            (phash[i], thumbs[i]), has[i] = decoded, True
    return ImageHashes(files=files, sha256=sha, phash=phash, has_phash=has, thumbs=thumbs)


def pixel_distance(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference (0-255) between the thumbnails of rows a and b."""
    return np.abs(thumbs[a] - thumbs[b]).mean(axis=(1, 2, 3))


def image_distances(hashes: ImageHashes | None, a: np.ndarray, b: np.ndarray) -> tuple[pd.arrays.IntegerArray,
                                                                                     np.ndarray]:
    """(pHash Hamming distances, mean 32x24 pixel differences) of row pairs; null / nan where an image was not read
    (all of them without `hashes`)."""
    phash = pd.array([pd.NA] * len(a), dtype="Int64")
    pixel = np.full(len(a), np.nan)
    if hashes is not None:
        both = hashes.has_phash[a] & hashes.has_phash[b]
        phash[both] = hamming(hashes.phash[a[both]], hashes.phash[b[both]]).astype(np.int64)
        pixel[both] = pixel_distance(hashes.thumbs, a[both], b[both])
    return phash, pixel


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distances between broadcastable uint64 arrays."""
    x = np.bitwise_xor(a, b)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return _POPCOUNT8[x[..., None].view(np.uint8)].sum(-1, dtype=np.uint8)


def identical_pairs(sha256: list[str | None]) -> np.ndarray:
    """(p, 2) row pairs (a < b) whose files have the same sha256."""
    groups: dict[str, list[int]] = {}
    for i, digest in enumerate(sha256):
        if digest is not None:
            groups.setdefault(digest, []).append(i)
    pairs = [(a, b) for rows in groups.values() for j, a in enumerate(rows) for b in rows[j + 1:]]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def phash_pairs(phash: np.ndarray, valid: np.ndarray, threshold: int, per_image: int,
                block_bytes: int = 32 << 20) -> np.ndarray:
    """(p, 2) row pairs (a < b) within `threshold` bits, at most `per_image` closest partners per row."""
    rows = np.flatnonzero(valid)
    hashes = phash[rows]
    found = []
    block = max(1, block_bytes // max(1, 8 * len(rows)))
    for start in range(0, len(rows), block):
        d = hamming(hashes[start:start + block, None], hashes[None, :])
        a, b = np.nonzero(d <= threshold)
        keep = b > start + a  # each unordered pair once, never a row with itself
        a, b = a[keep], b[keep]
        if len(a) == 0:
            continue
        dist = d[a, b]
        # a hash shared by many files (blank frames) must not turn into a quadratic list
        order = np.lexsort((b, dist, a))
        a, b = a[order], b[order]
        first = np.r_[0, np.flatnonzero(np.diff(a)) + 1]
        rank = np.arange(len(a)) - np.repeat(first, np.diff(np.r_[first, len(a)]))
        found.append(np.stack([rows[start + a[rank < per_image]], rows[b[rank < per_image]]], 1))
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
