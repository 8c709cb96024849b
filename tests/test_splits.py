"""Splits: lesion-disjoint, stratified, deterministic."""
import numpy as np
import pandas as pd

from skinsim.data.splits import make_split


def table(n_lesions: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dx = rng.choice(["nv", "mel", "bkl", "df"], size=n_lesions, p=[0.7, 0.15, 0.1, 0.05])
    rows = []
    for i, d in enumerate(dx):
        for j in range(rng.integers(1, 4)):
            rows.append({"lesion_id": f"L{i}", "image_id": f"I{i}_{j}", "dx": d})
    return pd.DataFrame(rows)


def test_lesion_split_keeps_lesions_on_one_side():
    t = table()
    t["split"] = make_split(t, "lesion", 42)
    assert (t.groupby("lesion_id")["split"].nunique() == 1).all()
    shares = t["split"].value_counts(normalize=True)
    assert 0.75 < shares["train"] < 0.85 and 0.06 < shares["val"] < 0.14 and 0.06 < shares["test"] < 0.14
    for part in ("train", "val", "test"):
        assert set(t.loc[t["split"] == part, "dx"]) == set(t["dx"])


def test_splits_are_deterministic_and_seeded():
    t = table()
    for protocol in ("lesion", "image"):
        a, b = make_split(t, protocol, 42), make_split(t, protocol, 42)
        assert (a == b).all()
        assert (a != make_split(t, protocol, 7)).any()


def test_image_split_sizes():
    t = table()
    s = make_split(t, "image", 42)
    assert (s == "train").sum() == int(0.8 * len(t)) and (s == "val").sum() == int(0.1 * len(t))
