"""Near-duplicate pairs: identical files, perceptually equal images and almost equal embeddings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from skinsim.audit.images import ImageHashes, identical_pairs, image_distances, phash_pairs
from skinsim.audit.knn import Neighbours

RULES = ("identical bytes", "phash", "embedding")  # strongest evidence first; a pair is labelled by the first
# 'phash' needs the thumbnails to agree too: dermatoscopic images are mostly one dark blob centred on plain skin,
# so on HAM10000 pHash alone (<= 4 bits) paired 281 different lesions; every different-lesion pair among them
# differed by >= 5.8 per pixel at 32x24, while re-shot views of one lesion start near 0 (docs/results.md)
PIXEL_THRESHOLD = 5.0
# written with this schema so an empty table has the same column types as a full one
SCHEMA = pa.schema([(c, pa.string()) for c in ("image_a", "image_b", "lesion_a", "lesion_b", "split_a", "split_b",
                                                "dx_a", "dx_b")]
                   + [("cosine_distance", pa.float64()), ("phash_distance", pa.int64()),
                      ("pixel_distance", pa.float64()),
                      ("identical_bytes", pa.bool_()), ("same_lesion", pa.bool_()), ("crosses_split", pa.bool_()),
                      ("same_dx", pa.bool_()), ("rule", pa.string()), ("embedding_match", pa.bool_()),
                      ("phash_match", pa.bool_())])
COLUMNS = SCHEMA.names


def auto_threshold(nb: Neighbours, ratio: float = 0.05, cap: float = 0.01) -> float:
    """The cosine distance for 'almost the same embedding': `ratio` x the median nearest distance, at most `cap`.

    A fixed threshold means nothing across runs: in the committed demo run 10% of all pairs are closer than
    0.0013 and the median nearest neighbour is 1.2e-4 away, while its two closest pairs sit at ~1e-7.
    """
    if nb.dist.shape[1] == 0:
        return 0.0
    return float(min(cap, ratio * float(np.median(nb.dist[:, 0]))))


def embedding_pairs(nb: Neighbours, threshold: float, per_image: int) -> np.ndarray:
    """(p, 2) row pairs (a < b) among each row's `per_image` nearest that are within `threshold`."""
    m = min(per_image, nb.idx.shape[1])
    rows = np.repeat(np.arange(len(nb.idx)), m)
    cols = nb.idx[:, :m].reshape(-1)
    # float32 distances of near-identical vectors are only good to ~1e-7: keep a little slack, then the
    # precise float64 distance decides in find_duplicates
    hit = nb.dist[:, :m].reshape(-1) <= threshold + 1e-6
    pairs = np.sort(np.stack([rows[hit], cols[hit]], 1), axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def precise_cosine(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """Cosine distances of unit rows as |a - b|^2 / 2 in float64, exact near 0 where 1 - a.b cancels; `block` pairs
    at a time (the float64 differences of millions of pairs at once do not fit in memory)."""
    out = np.empty(len(a))
    for start in range(0, len(a), block):
        rows = slice(start, start + block)
        diff = vectors[a[rows]].astype(np.float64) - vectors[b[rows]].astype(np.float64)
        out[rows] = 0.5 * np.einsum("ij,ij->i", diff, diff)
    return out


def find_duplicates(table: pd.DataFrame, vectors: np.ndarray, nb: Neighbours, hashes: ImageHashes | None,
                    threshold: float, phash_threshold: int = 4, per_image: int = 10,
                    pixel_threshold: float = PIXEL_THRESHOLD) -> pd.DataFrame:
    """One row per near-duplicate pair, strongest rule first, then by cosine distance."""
    table = table.reset_index(drop=True)
    found = {"embedding": embedding_pairs(nb, threshold, per_image)}
    if hashes is not None:
        found["identical bytes"] = identical_pairs(hashes.sha256)
        found["phash"] = phash_pairs(hashes.phash, hashes.has_phash, phash_threshold, per_image)
    pairs = np.unique(np.concatenate([p.reshape(-1, 2) for p in found.values()]), axis=0)
    a, b = pairs[:, 0], pairs[:, 1]
    cosine = precise_cosine(vectors, a, b)

    n = len(pairs)
    phash_d, pixel_d = image_distances(hashes, a, b)
    identical = pd.array([pd.NA] * n, dtype="boolean")
    if hashes is not None:
        shas = np.array(hashes.sha256, dtype=object)
        known = np.array([x is not None and y is not None for x, y in zip(shas[a], shas[b])], dtype=bool)
        identical[known] = shas[a[known]] == shas[b[known]]
    embedding_match = cosine <= threshold
    phash_match = (phash_d <= phash_threshold) & pd.array(pixel_d <= pixel_threshold, dtype="boolean")
    phash_match[pd.isna(phash_d)] = pd.NA
    # the rule records evidence, so the precise distance, not the float32 slack, decides 'embedding'
    rule = np.where(identical.fillna(False).to_numpy(bool), RULES[0],
                    np.where(phash_match.fillna(False).to_numpy(bool), RULES[1],
                             np.where(embedding_match, RULES[2], "")))
    lesion = table["lesion_id"].to_numpy(object)
    split = table["split"].to_numpy(object)
    dx = table["dx"].to_numpy(object)
    out = pd.DataFrame({
        "image_a": table["image_id"].to_numpy(object)[a], "image_b": table["image_id"].to_numpy(object)[b],
        "lesion_a": lesion[a], "lesion_b": lesion[b], "split_a": split[a], "split_b": split[b],
        "dx_a": dx[a], "dx_b": dx[b], "cosine_distance": cosine, "phash_distance": phash_d,
        "pixel_distance": pixel_d,
        "identical_bytes": identical,
        "same_lesion": pd.notna(lesion[a]) & (lesion[a] == lesion[b]),
        "crosses_split": split[a] != split[b],
        "same_dx": dx[a] == dx[b],
        "rule": rule, "embedding_match": embedding_match, "phash_match": phash_match,
    })
    out = out[out["rule"] != ""]
    out = out.assign(_order=out["rule"].map({r: i for i, r in enumerate(RULES)}))
    out = out.sort_values(["_order", "cosine_distance", "image_a", "image_b"], kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)[COLUMNS]
