"""Synthetic run folders and a live Streamlit server for the dashboard tests and benchmark.

A synthetic run has the same files as a real one (see data/README.md) but its embeddings are class-clustered
random vectors and its "UMAP" is a noisy 2-D layout of the class centres, so it is made in a second.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the package is used from the checkout, installed or not
    sys.path.insert(0, str(REPO))

from skinsim.runs.config import TrainConfig  # noqa: E402
from skinsim.evaluate.report import evaluate  # noqa: E402
from skinsim.runs.folder import write_json, write_vectors  # noqa: E402

DX = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
# roughly HAM10000's class shares, so the synthetic map looks like the real one
DX_SHARE = np.array([327, 514, 1099, 115, 1113, 6705, 142], dtype=float)
LOCALIZATIONS = ["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest", "scalp"]
SHARED_HAM = REPO.parent / "shared" / "ham10000"
DX_COLOURS = {"akiec": (200, 120, 60), "bcc": (180, 60, 90), "bkl": (150, 110, 70), "df": (120, 90, 60),
              "mel": (60, 40, 40), "nv": (140, 90, 80), "vasc": (190, 40, 60)}


def synthetic_metadata(n: int, seed: int = 0) -> pd.DataFrame:
    """A HAM10000-like metadata table with `n` images (about 1.4 images per lesion)."""
    rng = np.random.default_rng(seed)
    dx = rng.choice(DX, size=n, p=DX_SHARE / DX_SHARE.sum())
    lesion = np.zeros(n, dtype=int)
    current = 0
    for i in range(1, n):
        # consecutive images of the same diagnosis sometimes share a lesion, as in HAM10000
        if dx[i] != dx[i - 1] or rng.random() > 0.3:
            current += 1
        lesion[i] = current
    age = rng.choice(np.arange(5, 90, 5), size=n).astype(float)
    age[rng.random(n) < 0.01] = np.nan
    return pd.DataFrame({
        "lesion_id": [f"HAM_{v:07d}" for v in lesion],
        "image_id": [f"ISIC_{9000000 + i:07d}" for i in range(n)],
        "dx": dx,
        "dx_type": rng.choice(["histo", "follow_up", "consensus", "confocal"], size=n, p=[0.5, 0.35, 0.14, 0.01]),
        "age": age,
        "sex": rng.choice(["male", "female", "unknown"], size=n, p=[0.54, 0.45, 0.01]),
        "localization": rng.choice(LOCALIZATIONS, size=n),
    })


def split_by_lesion(meta: pd.DataFrame, seed: int = 0, val: float = 0.1, test: float = 0.1) -> np.ndarray:
    """train/val/test labels with every lesion in one split only."""
    rng = np.random.default_rng(seed)
    lesions = meta["lesion_id"].unique()
    draw = pd.Series(rng.random(len(lesions)), index=lesions)
    r = meta["lesion_id"].map(draw).to_numpy()
    return np.where(r < val, "val", np.where(r < val + test, "test", "train"))


def write_images(folder: Path, meta: pd.DataFrame, size: tuple[int, int] = (64, 48), seed: int = 0) -> None:
    """Small JPEGs, one blob per image tinted by diagnosis, at `folder/images/<id>.jpg`, plus the metadata CSV."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for image_id, dx in zip(meta["image_id"], meta["dx"]):
        img = Image.new("RGB", size, (226, 196, 180))
        draw = ImageDraw.Draw(img)
        w, h = size
        r = int(rng.integers(h // 5, h // 2))
        cx, cy = w // 2 + int(rng.integers(-5, 6)), h // 2 + int(rng.integers(-5, 6))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=DX_COLOURS[dx])
        img.save(folder / "images" / f"{image_id}.jpg", quality=80)
    meta[["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]].to_csv(
        folder / "HAM10000_metadata.csv", index=False)


def make_run(root: Path, name: str = "synthetic", n: int = 400, dim: int = 32, seed: int = 0,
             meta: pd.DataFrame | None = None, data_dir: Path | None = None, images: bool = True,
             latest: bool = True, metrics_on: int | None = None) -> Path:
    """Write a complete synthetic run folder `root/name` (images too, under `root/<name>-data`, when asked);
    `metrics_on` evaluates a random subset of that many images instead of all (for runs of a million)."""
    rng = np.random.default_rng(seed)
    meta = synthetic_metadata(n, seed) if meta is None else meta.reset_index(drop=True).copy()
    n = len(meta)
    if data_dir is None:
        data_dir = root / f"{name}-data"
        if images:
            write_images(data_dir, meta, seed=seed)
    meta["split"] = split_by_lesion(meta, seed)
    meta["path"] = "images/" + meta["image_id"] + ".jpg"
    centres = rng.normal(size=(len(DX), dim))
    code = meta["dx"].map({c: i for i, c in enumerate(DX)}).to_numpy()
    vectors = centres[code] * 0.9 + rng.normal(size=(n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors.astype(np.float32)
    centres2d = rng.normal(scale=6.0, size=(len(DX), 2))
    xy = centres2d[code] + rng.normal(size=(n, 2)) * 1.5 + vectors[:, :2] * 3

    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    cols = ["image_id", "lesion_id", "split", "dx", "dx_type", "age", "sex", "localization", "path"]
    write_vectors(run / "embeddings.parquet", meta[cols], vectors)
    umap = meta[cols].copy()
    umap["x"], umap["y"] = xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32)
    umap.to_parquet(run / "umap.parquet", index=False)
    meta[["image_id", "lesion_id", "dx", "split"]].to_parquet(run / "split.parquet", index=False)
    epochs = 5
    pd.DataFrame({"epoch": np.arange(1, epochs + 1), "train_loss": np.linspace(0.9, 0.3, epochs),
                  "violating_triplets": np.linspace(0.8, 0.2, epochs), "val_p_at_1": np.linspace(0.5, 0.7, epochs),
                  "lr": np.full(epochs, 1e-3), "time_s": np.full(epochs, 1.0)}).to_csv(run / "curves.csv", index=False)
    scored = np.arange(n) if metrics_on is None or n <= metrics_on else np.sort(
        rng.choice(n, metrics_on, replace=False))
    write_json(run / "metrics.json", evaluate(meta.iloc[scored].reset_index(drop=True), vectors[scored], seed))
    config = TrainConfig(data_dir=str(data_dir), backbone="synthetic", pretrained="none", em=dim, epochs=epochs,
                         seed=seed).to_dict()
    config["meta"] = {"complete": True, "created": "2026-01-01T00:00:00+0000", "data_dir": str(data_dir),
                      "n_images": n, "device": "cpu", "synthetic": True, "time_s": {"train": 1.0, "total": 1.0},
                      "metrics_on": len(scored)}
    write_json(run / "config.json", config)
    if latest:
        (root / "latest").write_text(name + "\n")
    return run


def make_full_size_run(root: Path, name: str = "synthetic-10015") -> Path:
    """A 10,015-image synthetic run: the real HAM10000 ids and images when ../shared/ham10000 exists."""
    csv = SHARED_HAM / "HAM10000_metadata.csv"
    if csv.is_file():
        meta = pd.read_csv(csv, dtype={"image_id": str, "lesion_id": str})
        return make_run(root, name, meta=meta, data_dir=SHARED_HAM, dim=64)
    return make_run(root, name, n=10015, dim=64, images=False)


def make_large_run(root: Path, n: int, name: str | None = None) -> Path:
    """A synthetic run of `n` images (no image files) with 128-d embeddings, as big as an archive of a clinic's
    photos; its metrics are computed on 20,000 of them."""
    return make_run(root, name or f"synthetic-{n}", n=n, dim=128, images=False, metrics_on=20_000)


def make_sample_run(root: Path, name: str = "sample", n: int = 600) -> Path:
    """A small run over `n` real HAM10000 images when ../shared/ham10000 exists (nicer screenshots), else synthetic."""
    csv = SHARED_HAM / "HAM10000_metadata.csv"
    if csv.is_file():
        meta = pd.read_csv(csv, dtype={"image_id": str, "lesion_id": str})
        # whole lesions, so the lesion-grouped split stays clean
        lesions = meta["lesion_id"].drop_duplicates().sample(frac=1.0, random_state=0)
        keep = meta[meta["lesion_id"].isin(lesions.iloc[: int(n / 1.35)])].head(n)
        return make_run(root, name, meta=keep, data_dir=SHARED_HAM)
    return make_run(root, name, n=n)
