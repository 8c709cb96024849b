"""Dataset audit of a run: near-duplicate pairs, label-issue candidates, outliers and images possibly of one lesion
under two ids, written into the run folder.

`python -m skinsim.audit RUN` (or `run_audit(RUN)`) reads `embeddings.parquet` (and the images, when found) and
writes, atomically, beside the run's own files which it never changes:

- `audit_duplicates.parquet`: one row per pair (image_a, image_b, lesion_*, split_*, dx_*, cosine_distance,
  phash_distance, pixel_distance, identical_bytes, same_lesion, crosses_split, same_dx, rule, embedding_match,
  phash_match); `rule` is the strongest evidence: 'identical bytes' > 'phash' (pHash and 32x24 pixels agree)
  > 'embedding'. Hash and pixel columns are null without images.
- `audit_label_issues.parquet`: every image, rank 1 = most doubtful label (cleanlab over kNN votes of other lesions).
- `audit_outliers.parquet`: every image, rank 1 = farthest from its k nearest neighbours.
- `audit_same_lesion.parquet`: pairs of images with two lesion ids, most probably one lesion first (a calibrated
  probability from the embedding, the images and the per-lesion metadata: skinsim.audit.same_lesion).
- `audit.json`: format_version, audit_id (also in each table's parquet metadata under b"skinsim.audit"),
  parameters and thresholds used, counts and seconds per phase.

Floor 5: may import evaluate, search, data, runs and compute.

Nothing here needs the model or torch; cleanlab and imagehash are imported only inside the functions that use
them, so importing this package stays light.
"""
from skinsim.audit.core import (
                                FILES,
                                FORMAT_VERSION,
                                SUMMARY,
                                AuditError,
                                AuditTables,
                                bench,
                                open_run,
                                read_audit,
                                read_audit_table,
                                run_audit,
)
from skinsim.audit.duplicates import auto_threshold, find_duplicates
from skinsim.audit.knn import Neighbours, neighbours
from skinsim.audit.labels import knn_class_probabilities, label_issues
from skinsim.audit.outliers import outliers

__all__ = ["FILES", "FORMAT_VERSION", "SUMMARY", "AuditError", "AuditTables", "Neighbours", "auto_threshold", "bench",
           "find_duplicates", "knn_class_probabilities", "label_issues", "neighbours", "open_run", "outliers",
           "read_audit", "read_audit_table", "run_audit"]
