"""The end of a run: metrics and map of its embeddings, the run folder written and moved into place, the audit."""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import skinsim
from skinsim.evaluate.projection import Projection, fit_umap
from skinsim.evaluate.report import evaluate, summary
from skinsim.model.embedder import Embedder
from skinsim.runs import folder as runs
from skinsim.runs.config import TrainConfig
from skinsim.train.curves import save_curves
from skinsim.train.inputs import Data


def finish(cfg: TrainConfig, writer: runs.RunWriter, data: Data, vectors: np.ndarray, curves: list[dict],
           model: Embedder, device: torch.device, clock: dict[str, float], wb=None) -> Path:
    """Metrics and UMAP of the embeddings, the run folder moved into place, then the audit (rank 0 only)."""
    tick = time.perf_counter()
    report = evaluate(data.table, vectors, seed=cfg.split_rng)
    clock["evaluate"] = time.perf_counter() - tick
    tick = time.perf_counter()
    projection = fit_umap(vectors, seed=cfg.seed)
    clock["umap"] = time.perf_counter() - tick
    write_outputs(cfg, writer.work, data, vectors, projection, report, curves, model, device, clock)
    if wb is not None:
        wb.summary.update({f"test/{k}": v for k, v in report["overall"].items()})
        wb.finish()
    path = writer.commit()
    if cfg.audit:
        audit_run(path)
    print(summary(report))
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in clock.items()))
    print(f"run written to {path}")
    return path


def audit_run(path: Path) -> None:
    """The dataset audit (duplicates, label issues, outliers, one lesion under two ids) beside a finished run, and
    its leak check in metrics.json; a failure only warns."""
    from skinsim.audit import AuditError, run_audit

    try:
        summary = run_audit(path)
    except (AuditError, OSError, ValueError) as exc:  # the run itself is complete and must stay usable
        print(f"warning: the dataset audit failed ({exc}); retry with `python -m skinsim.audit {path}`",
              file=sys.stderr)
        return
    metrics = json.loads((path / "metrics.json").read_text())
    runs.write_atomic(path / "metrics.json", lambda tmp: runs.write_json(tmp, {**metrics,
                                                                            "leak_check": summary["leak_check"]}))


def write_outputs(cfg: TrainConfig, work: Path, data: Data, vectors: np.ndarray, projection: Projection,
                  report: dict, curves: list[dict], model: Embedder, device: torch.device,
                  clock: dict[str, float]) -> None:
    """The run's tables, metrics, curves, checkpoint and finished config, into the work folder."""
    # the dataset's own columns (ISIC 2020's diagnosis, a CSV's extra columns...) travel with every image
    meta_cols = runs.META_COLUMNS + [c for c in data.table.columns if c not in runs.META_COLUMNS]
    runs.write_vectors(work / "embeddings.parquet", data.table[meta_cols], vectors)
    coords = projection.coords
    runs.write_map(work / "umap.parquet", data.table[meta_cols].assign(x=coords[:, 0], y=coords[:, 1]),
                   projection.method)
    runs.write_json(work / "metrics.json", report)
    save_curves(curves, work)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, work / "checkpoint.safetensors")
    clock["total"] = sum(clock.values())
    meta = {"complete": True, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data_dir": str(data.data_dir.resolve()), "n_images": len(data.table),
            "classes": data.classes, "device": str(device), "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "map": projection.method,
            "versions": {"skinsim": skinsim.__version__, "torch": torch.__version__,
                         "python": platform.python_version()},
            "time_s": clock, **({"lesion_merges": data.merges} if data.merges else {})}
    runs.write_json(work / "config.json", cfg.saved(meta))
