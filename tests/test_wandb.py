"""--wandb for real: wandb installed, WANDB_MODE=offline, a short run, and the offline run's log read back."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY_ARGS
from skinsim.train.train import main

pytest.importorskip("wandb", reason="wandb is not installed (pip install -e '.[wandb]')")
from wandb.proto import wandb_internal_pb2  # noqa: E402

BLOCK, HEADER = 32768, 7  # a .wandb file is a LevelDB-style log: 32 KiB blocks of (crc, length, type) chunks


def wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    """The protobuf records of an offline run's .wandb file."""
    raw, pos, out, pending = path.read_bytes(), HEADER, [], b""  # the file opens with a 7-byte ':W&B' header
    while pos + HEADER <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = raw[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def logged(folder: Path) -> tuple[list[dict], dict]:
    """(history rows, summary) of the single offline run under `folder`."""
    runs = list(folder.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1, runs
    history, summary = [], {}
    for record in wandb_records(runs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update})
    return history, summary


def test_an_offline_wandb_run_holds_the_curves_and_the_test_metrics(synthetic_data: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--max_steps", "3",
                 "--no-audit", "--wandb"]) == 0
    history, summary = logged(tmp_path)
    curves = pd.read_csv(out / "curves.csv")
    epochs = [row for row in history if "val/p_at_1" in row]
    assert [row["epoch"] for row in epochs] == curves["epoch"].tolist()
    assert [row["val/p_at_1"] for row in epochs] == pytest.approx(curves["val_p_at_1"].tolist())
    assert [row["train/epoch_loss"] for row in epochs] == pytest.approx(curves["train_loss"].tolist())
    assert sum("train/loss" in row for row in history) == len(curves) * 3  # --log_interval 1, 3 steps an epoch
    metrics = json.loads((out / "metrics.json").read_text())["overall"]
    assert summary["test/p_at_1"] == pytest.approx(metrics["p_at_1"])
    assert summary["test/macro_p_at_1"] == pytest.approx(metrics["macro_p_at_1"])
