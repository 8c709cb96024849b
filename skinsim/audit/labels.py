"""Label-issue candidates: cleanlab over out-of-sample kNN class probabilities."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from skinsim.audit.knn import Neighbours

SCHEMA = pa.schema([("image_id", pa.string()), ("lesion_id", pa.string()), ("dx", pa.string()),
                    ("dx_type", pa.string()), ("split", pa.string()), ("suggested_dx", pa.string()),
                    ("label_quality", pa.float64()), ("is_label_issue", pa.bool_()), ("rank", pa.int64()),
                    ("knn_votes_for_dx", pa.int64())])
COLUMNS = SCHEMA.names


def knn_class_probabilities(labels: np.ndarray, neighbour_idx: np.ndarray, n_classes: int,
                            smoothing: float = 0.1) -> np.ndarray:
    """(n, n_classes) share of each class among each row's neighbours (-1 = none), with `smoothing` pseudo-counts.

    The pseudo-counts keep every probability above 0, which cleanlab's scores need to stay finite and ranked.
    """
    counts = np.zeros((len(neighbour_idx), n_classes), dtype=np.float64)
    valid = neighbour_idx >= 0
    rows = np.repeat(np.arange(len(neighbour_idx)), neighbour_idx.shape[1])[valid.reshape(-1)]
    np.add.at(counts, (rows, labels[neighbour_idx[valid]]), 1.0)
    counts += smoothing
    return counts / counts.sum(1, keepdims=True)


def label_issues(table: pd.DataFrame, nb: Neighbours, smoothing: float = 0.1) -> pd.DataFrame:
    """One row per image, most suspicious label first (rank 1).

    The probabilities come from neighbours of other lesions only: a lesion's other views carry the same label
    by construction (labels are per lesion), so letting them vote would hide exactly the wrong lesion labels.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores, get_normalized_margin_for_each_label

    table = table.reset_index(drop=True)
    labels, classes = pd.factorize(table["dx"].astype(str), sort=True)
    probs = knn_class_probabilities(labels, nb.other_idx, len(classes), smoothing)
    if len(classes) < 2:  # nothing to confuse a label with; cleanlab needs two classes
        quality = np.ones(len(table))
        margin = np.ones(len(table))
        issue = np.zeros(len(table), dtype=bool)
    else:
        quality = get_label_quality_scores(labels, probs, method="self_confidence")
        margin = get_normalized_margin_for_each_label(labels, probs)
        # one job: the audit must not take over a machine that is busy training
        issue = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    # self-confidence takes only k + 1 values with k neighbours: the margin, then row order, break its ties
    order = np.lexsort((np.arange(len(table)), margin, quality))
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(1, len(table) + 1)
    votes = ((nb.other_idx >= 0) & (labels[np.maximum(nb.other_idx, 0)] == labels[:, None])).sum(1)
    # on a tie the given label stands: a suggestion should mean another class strictly won the vote
    own = probs[np.arange(len(table)), labels]
    suggested = np.where(own >= probs.max(1), labels, probs.argmax(1))
    out = pd.DataFrame({
        "image_id": table["image_id"], "lesion_id": table["lesion_id"], "dx": table["dx"],
        "dx_type": table["dx_type"] if "dx_type" in table else pd.Series([None] * len(table), dtype=object),
        "split": table["split"],
        "suggested_dx": np.asarray(classes, dtype=object)[suggested],
        "label_quality": quality.astype(np.float64), "is_label_issue": issue.astype(bool), "rank": rank,
        "knn_votes_for_dx": votes.astype(np.int64),
    })
    return out.sort_values("rank", kind="stable").reset_index(drop=True)[COLUMNS]
