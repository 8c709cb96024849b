"""Possibly the same lesion: pairs of images filed under two lesion ids, ranked by a calibrated same-lesion score.

A lesion photographed twice and filed under two ids leaks across a lesion split, and near-duplicate rules miss it:
the two photos are different shots. The evidence for one lesion is combined here:

- the run's embedding: how close the two are (cosine distance), and how high each ranks the other among images of
  lesions other than their own two (a mutual rank; a lesion's own other views do not push a partner down);
- the images, when found: pHash and 32x24-pixel distances;
- the metadata a dataset records per lesion (diagnosis, sex, localization, age): one lesion agrees on all of them.

The score is calibrated on what is known. Every image pair among each image's k nearest (by that rank) is either
a pair sharing a lesion id (a same-lesion pair) or a pair with two ids (taken as different lesions, which is
true of all but the few this table is looking for). A logistic regression on the evidence, fitted on those
labels with 5-fold cross-fitting so that no pair is scored by a model that saw it, estimates for each pair the
probability that a pair with that evidence is one lesion. The pairs with two ids, ranked by it, are the candidates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from skinsim.audit.duplicates import precise_cosine
from skinsim.audit.images import ImageHashes, image_distances
from skinsim.audit.knn import Neighbours

METADATA = ("dx", "sex", "localization")  # per-lesion fields compared for equality, where a dataset has them
AGE_GAP = 99.0  # the age difference given when only one of the two has an age
SCHEMA = pa.schema([("rank", pa.int64())]
                   + [(c, pa.string()) for c in ("image_a", "image_b", "lesion_a", "lesion_b", "split_a", "split_b",
                                                  "dx_a", "dx_b")]
                   + [("probability", pa.float64()), ("crosses_split", pa.bool_()),
                      ("cosine_distance", pa.float64()), ("rank_ab", pa.int64()), ("rank_ba", pa.int64()),
                      ("phash_distance", pa.int64()), ("pixel_distance", pa.float64()),
                      ("same_dx", pa.bool_()), ("same_sex", pa.bool_()), ("same_localization", pa.bool_()),
                      ("age_difference", pa.float64())])
COLUMNS = SCHEMA.names


@dataclass
class Calibration:
    """How the probabilities were estimated: the labelled pairs, the features, and held-out quality."""

    positives: int        # candidate pairs that share a lesion id
    negatives: int        # candidate pairs with two lesion ids
    features: list[str]
    auc: float            # ROC AUC of the cross-fitted probabilities against the lesion-id labels
    positives_above_half: float  # share of same-id pairs scored >= 0.5 (recall at 0.5, held out)

    def describe(self) -> str:
        """One sentence for audit.json and the dashboard."""
        return (f"logistic regression on {', '.join(self.features)}, fitted on {self.positives:,} image pairs that "
                f"share a lesion id and {self.negatives:,} pairs with two ids among each image's nearest, 5-fold "
                f"cross-fitted (held-out ROC AUC {self.auc:.3f}; {self.positives_above_half:.0%} of same-id pairs "
                f"score 0.5 or more)")


def ranked_pairs(nb: Neighbours, lesions: np.ndarray, k: int) -> pd.DataFrame:
    """Unordered pairs (a < b) where one ranks the other within its `k` nearest, counting only images of lesions
    other than the pair's own two; with both directed ranks (k + 1 when beyond k)."""
    n, m = nb.idx.shape
    own = lesions[:, None]
    nbr_lesion = lesions[nb.idx]  # (n, m): each neighbour's lesion
    # entry j's rank = 1 + the earlier entries whose lesion is neither the row's own nor entry j's
    rank = np.empty((n, m), dtype=np.int64)
    for j in range(m):
        earlier = nbr_lesion[:, :j]
        rank[:, j] = 1 + ((earlier != own) & (earlier != nbr_lesion[:, j:j + 1])).sum(1)
    keep = (rank <= k).reshape(-1)
    a = np.repeat(np.arange(n, dtype=np.int64), m)[keep]
    b = nb.idx.reshape(-1)[keep]
    r = rank.reshape(-1)[keep]
    # numpy, not a pandas index: a million images give ten million directed pairs
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * n + hi
    pairs = np.unique(key)
    where = np.searchsorted(pairs, key)
    rank_ab = np.full(len(pairs), k + 1, dtype=np.int64)
    rank_ba = np.full(len(pairs), k + 1, dtype=np.int64)
    forward = a == lo
    np.minimum.at(rank_ab, where[forward], r[forward])
    np.minimum.at(rank_ba, where[~forward], r[~forward])
    return pd.DataFrame({"a": pairs // n, "b": pairs % n, "rank_ab": rank_ab, "rank_ba": rank_ba})


def evidence(table: pd.DataFrame, vectors: np.ndarray, pairs: pd.DataFrame,
             hashes: ImageHashes | None) -> pd.DataFrame:
    """The evidence columns of each pair: cosine distance, ranks, image distances and metadata agreement."""
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    phash, pixel = image_distances(hashes, a, b)
    out = pairs.assign(cosine_distance=precise_cosine(vectors, a, b), phash_distance=phash, pixel_distance=pixel)
    for col in METADATA:
        if col in table:
            values = table[col].astype(str).to_numpy(object)
            out["same_" + col] = values[a] == values[b]
        else:
            out["same_" + col] = pd.array([pd.NA] * len(a), dtype="boolean")
    if "age" in table:
        age = pd.to_numeric(table["age"], errors="coerce").to_numpy(float)
        gap = np.abs(age[a] - age[b])
        both_missing = np.isnan(age[a]) & np.isnan(age[b])
        out["age_difference"] = np.where(both_missing, 0.0, np.where(np.isnan(gap), AGE_GAP, gap))
    else:
        out["age_difference"] = np.nan
    return out


def features(ev: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The model's inputs from the evidence, and their names (columns a dataset lacks are left out)."""
    cols: dict[str, np.ndarray] = {
        "log cosine distance": np.log10(ev["cosine_distance"].to_numpy(float) + 1e-7),
        "mutual rank": np.log(np.maximum(ev["rank_ab"], ev["rank_ba"]).to_numpy(float)),
        "best rank": np.log(np.minimum(ev["rank_ab"], ev["rank_ba"]).to_numpy(float)),
    }
    pixel = ev["pixel_distance"].to_numpy(float)
    if np.isfinite(pixel).any():
        known = np.isfinite(pixel)
        cols["pixel distance"] = np.where(known, pixel, np.nanmedian(pixel))
        cols["pHash distance"] = np.where(known, ev["phash_distance"].astype("Float64").fillna(32).to_numpy(float),
                                          32.0)
    for col in METADATA:
        same = ev["same_" + col]
        if same.notna().all():
            cols[f"same {col}"] = same.to_numpy(bool).astype(float)
    age = ev["age_difference"].to_numpy(float)
    if np.isfinite(age).all():
        cols["age difference"] = np.minimum(age, 20.0)
    return np.column_stack(list(cols.values())), list(cols)


def calibrated_probabilities(x: np.ndarray, same: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """Cross-fitted P(same lesion) for every pair, the held-out ROC AUC, and the recall of same-id pairs at 0.5."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if same.all() or not same.any() or min(same.sum(), (~same).sum()) < 5:
        return np.where(same, 1.0, 0.0), float("nan"), float("nan")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    p = cross_val_predict(model, x, same, cv=folds, method="predict_proba")[:, 1]
    return p, float(roc_auc_score(same, p)), float((p[same] >= 0.5).mean())


def same_lesion_candidates(table: pd.DataFrame, vectors: np.ndarray, nb: Neighbours, lesions: np.ndarray,
                           hashes: ImageHashes | None, k: int = 10, keep: float = 0.05,
                           at_least: int = 100) -> tuple[pd.DataFrame, Calibration]:
    """Pairs of images with two lesion ids, most probably one lesion first: those with probability >= `keep`, and
    at least the `at_least` best; with the calibration that scored them."""
    table = table.reset_index(drop=True)
    pairs = ranked_pairs(nb, lesions, k)
    ev = evidence(table, vectors, pairs, hashes)
    x, names = features(ev)
    same = lesions[ev["a"].to_numpy()] == lesions[ev["b"].to_numpy()]
    p, auc, recall = calibrated_probabilities(x, same)
    calibration = Calibration(int(same.sum()), int((~same).sum()), names, auc, recall)
    cand = ev.assign(probability=p)[~same]
    cand = cand.sort_values(["probability", "cosine_distance", "a", "b"], ascending=[False, True, True, True],
                            kind="stable")
    cand = cand[(cand["probability"] >= keep) | (np.arange(len(cand)) < at_least)]
    a, b = cand["a"].to_numpy(), cand["b"].to_numpy()
    col = {c: table[c].to_numpy(object) for c in ("image_id", "lesion_id", "split", "dx")}
    out = pd.DataFrame({
        "rank": np.arange(1, len(cand) + 1), "image_a": col["image_id"][a], "image_b": col["image_id"][b],
        "lesion_a": col["lesion_id"][a], "lesion_b": col["lesion_id"][b], "split_a": col["split"][a],
        "split_b": col["split"][b], "dx_a": col["dx"][a], "dx_b": col["dx"][b],
        "probability": cand["probability"].to_numpy(float), "crosses_split": col["split"][a] != col["split"][b],
        **{c: cand[c].to_numpy() for c in ("cosine_distance", "rank_ab", "rank_ba")},
        "phash_distance": cand["phash_distance"].array, "pixel_distance": cand["pixel_distance"].to_numpy(float),
        **{c: cand[c].array for c in ("same_dx", "same_sex", "same_localization")},
        "age_difference": cand["age_difference"].to_numpy(float),
    })
    return out[COLUMNS], calibration
