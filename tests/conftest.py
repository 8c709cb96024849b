"""Shared fixtures: a tiny synthetic HAM10000-like folder, a tiny trained run, and the real data if present."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import os

REAL_DATA = Path(os.environ.get("SKINSIM_DATA") or Path(__file__).resolve().parents[2] / "shared" / "ham10000")
DX = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
# a distinct colour per diagnosis, so a few training steps can already separate them
COLOURS = {"akiec": (200, 80, 60), "bcc": (220, 160, 160), "bkl": (150, 110, 70), "df": (120, 70, 90),
           "mel": (50, 35, 30), "nv": (110, 70, 40), "vasc": (200, 40, 70)}


def make_synthetic_dataset(root: Path, lesions_per_class: int = 6, images_per_lesion: int = 2,
                           size: tuple[int, int] = (30, 40), seed: int = 0) -> pd.DataFrame:
    """Write a HAM10000-shaped folder of tiny images (metadata CSV + images/) and return its table."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows, n = [], 0
    for dx in DX:
        for lesion in range(lesions_per_class):
            lesion_id = f"HAM_{DX.index(dx):02d}{lesion:05d}"
            for _ in range(images_per_lesion):
                image_id = f"ISIC_{9000000 + n:07d}"
                n += 1
                base = np.array(COLOURS[dx], dtype=float)
                pixels = base + rng.normal(0, 25, size=(*size, 3))
                yy, xx = np.mgrid[:size[0], :size[1]]
                blob = ((yy - size[0] / 2) ** 2 + (xx - size[1] / 2) ** 2) < (size[0] / 3) ** 2
                pixels[blob] *= 0.6
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / "images" / f"{image_id}.jpg")
                rows.append({"lesion_id": lesion_id, "image_id": image_id, "dx": dx,
                             "dx_type": "histo" if lesion % 2 else "follow_up", "age": float(30 + lesion * 5),
                             "sex": ["male", "female"][lesion % 2], "localization": ["back", "face", "trunk"][lesion % 3]})
    table = pd.DataFrame(rows)
    table.to_csv(root / "HAM10000_metadata.csv", index=False)
    return table


TINY_ARGS = ["--backbone", "efficientnet_lite0", "--image-size", "32x40", "--epochs", "2", "--batch_size", "14",
             "--samples-per-class", "2", "--freeze", "4", "--cache-views", "2", "--em", "16", "--workers", "1",
             "--log_interval", "1"]


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic HAM10000 folder (7 classes x 6 lesions x 2 images)."""
    root = tmp_path_factory.mktemp("ham_synthetic")
    make_synthetic_dataset(root)
    return root


@pytest.fixture(scope="session")
def tiny_run(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run folder trained for a few steps on the synthetic images (checkpoint included)."""
    from skinsim.train.train import main

    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS]) == 0
    return out


@pytest.fixture
def real_data() -> Path:
    """The shared HAM10000 copy; skips the test when it is not there."""
    if not (REAL_DATA / "HAM10000_metadata.csv").is_file():
        pytest.skip(f"the real HAM10000 folder is not at {REAL_DATA}")
    return REAL_DATA
