"""Uniqueness: how far each image lies from its nearest neighbours."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from skinsim.audit.knn import Neighbours

SCHEMA = pa.schema([("image_id", pa.string()), ("lesion_id", pa.string()), ("dx", pa.string()),
                    ("split", pa.string()), ("score", pa.float64()), ("rank", pa.int64()),
                    ("score_other_lesions", pa.float64()), ("nearest_image_id", pa.string()),
                    ("nearest_distance", pa.float64())])
COLUMNS = SCHEMA.names


def outliers(table: pd.DataFrame, nb: Neighbours, k: int = 10) -> pd.DataFrame:
    """One row per image, most isolated first: `score` is the mean cosine distance to its k nearest (self excluded).

    `score_other_lesions` leaves out the image's own lesion, so a lesion photographed several times, but unlike
    anything else, still stands out there.
    """
    table = table.reset_index(drop=True)
    k = min(k, nb.dist.shape[1])
    score = nb.dist[:, :k].astype(np.float64).mean(1) if k else np.zeros(len(table))
    other = nb.other_dist.astype(np.float64)
    counted = (~np.isnan(other)).sum(1)
    other_score = np.where(counted > 0, np.nansum(other, 1) / np.maximum(counted, 1), np.nan)
    order = np.lexsort((np.arange(len(table)), -score))
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(1, len(table) + 1)
    ids = table["image_id"].to_numpy(object)
    has = nb.idx.shape[1] > 0
    out = pd.DataFrame({
        "image_id": ids, "lesion_id": table["lesion_id"], "dx": table["dx"], "split": table["split"],
        "score": score, "rank": rank, "score_other_lesions": other_score,
        "nearest_image_id": ids[nb.idx[:, 0]] if has else None,
        "nearest_distance": nb.dist[:, 0].astype(np.float64) if has else np.nan,
    })
    return out.sort_values("rank", kind="stable").reset_index(drop=True)[COLUMNS]
