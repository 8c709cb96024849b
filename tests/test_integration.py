"""On the real HAM10000 copy (skipped where ../shared/ham10000 is missing)."""
from pathlib import Path

import pytest

from skinsim.data import load_dataset
from skinsim.data.splits import make_split

pytestmark = pytest.mark.integration


def test_real_metadata_and_images_check_out(real_data: Path):
    table = load_dataset(real_data, check_images=False)
    assert len(table) == 10015 and table["lesion_id"].nunique() == 7470
    assert table["dx"].value_counts()["nv"] == 6705


def test_real_lesion_split(real_data: Path):
    table = load_dataset(real_data, check_images=False)
    table["split"] = make_split(table, "lesion", 42)
    assert (table.groupby("lesion_id")["split"].nunique() == 1).all()
    for part in ("train", "val", "test"):
        assert table.loc[table["split"] == part, "dx"].nunique() == 7
    counts = table["split"].value_counts(normalize=True)
    assert abs(counts["val"] - 0.1) < 0.01 and abs(counts["test"] - 0.1) < 0.01


def test_short_training_on_real_images(real_data: Path, tmp_path: Path):
    """A few steps on a 600-image subset of the real data, end to end through the run folder."""
    import pandas as pd

    from skinsim.runs.folder import load_run
    from skinsim.train.train import main

    subset = tmp_path / "ham_subset"
    subset.mkdir()
    table = pd.read_csv(real_data / "HAM10000_metadata.csv")
    lesions = table.groupby("dx")["lesion_id"].apply(lambda s: s.drop_duplicates().head(60)).explode()
    picked = table[table["lesion_id"].isin(set(lesions))]
    picked.to_csv(subset / "HAM10000_metadata.csv", index=False)
    (subset / "images").mkdir()
    for image_id in picked["image_id"]:
        (subset / "images" / f"{image_id}.jpg").symlink_to(real_data / "images" / f"{image_id}.jpg")
    out = tmp_path / "run"
    assert main(["--data-dir", str(subset), "--out", str(out), "--image-size", "75x100", "--epochs", "1",
                 "--max_steps", "4", "--cache-views", "1", "--workers", "2"]) == 0
    run = load_run(out)
    assert run.metrics["n_queries"] > 0 and run.metrics["lesion_overlap"] == 0.0
