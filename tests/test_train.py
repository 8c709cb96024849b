"""The training entry point writes a complete run folder; interrupted runs resume; flags keep their meaning."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from skinsim.runs.config import TrainConfig
from skinsim.runs.folder import load_run, read_vectors
from skinsim.train.cli import parse_args
from skinsim.train.train import main
from tests.conftest import TINY_ARGS

RUN_FILES = ["config.json", "split.parquet", "embeddings.parquet", "umap.parquet", "metrics.json",
             "curves.csv", "curves.png", "checkpoint.safetensors", "audit.json", "audit_duplicates.parquet",
             "audit_label_issues.parquet", "audit_outliers.parquet"]


def test_run_folder_is_complete(tiny_run: Path):
    for name in RUN_FILES:
        assert (tiny_run / name).is_file(), name
    assert not (tiny_run / "train_state.pt").exists()
    assert (tiny_run.parent / "latest").read_text().strip() == tiny_run.name
    assert not list(tiny_run.parent.glob(".*partial"))


def test_run_tables(tiny_run: Path):
    table, vectors = read_vectors(tiny_run / "embeddings.parquet")
    assert len(table) == 84 and vectors.shape == (84, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert {"image_id", "lesion_id", "split", "dx", "age", "sex", "localization"} <= set(table.columns)
    assert set(table["split"]) == {"train", "val", "test"}
    # no lesion on two sides of the default (lesion) split
    assert (table.groupby("lesion_id")["split"].nunique() == 1).all()
    coords = pd.read_parquet(tiny_run / "umap.parquet")
    assert list(coords["image_id"]) == list(table["image_id"]) and coords[["x", "y"]].notna().all().all()


def test_metrics_and_curves(tiny_run: Path):
    run = load_run(tiny_run)
    m = run.metrics
    assert 0 <= m["overall"]["p_at_1"] <= 1 and m["lesion_overlap"] == 0.0
    split = pd.read_parquet(tiny_run / "split.parquet")
    train_counts = split.query("split == 'train'")["dx"].value_counts()
    majority = m["baselines"]["majority"]["label"]
    assert train_counts[majority] == train_counts.max()  # the commonest training diagnosis, found from the data
    assert m["baselines"]["majority"]["p_at_1"] == pytest.approx(
        np.mean([1.0 if c == majority else 0.0 for c in split.query("split == 'val'")["dx"]]))
    assert set(m["per_class"]) <= {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert m["with_train"]["search_space"] == "test+train"
    curves = run.curves()
    assert list(curves["epoch"]) == [1, 2] and curves["train_loss"].notna().all()
    assert curves["violating_triplets"].between(0, 1).all()
    assert run.config["meta"]["complete"] and run.config["em"] == 16


def test_checkpoint_loads_without_pickle(tiny_run: Path):
    state = load_file(tiny_run / "checkpoint.safetensors")
    assert state["fc.weight"].shape == (16, 1280)


def test_evaluate_recomputes_the_same_metrics(tiny_run: Path, capsys):
    from skinsim.evaluate.report import main as evaluate_main

    before = json.loads((tiny_run / "metrics.json").read_text())
    assert "leak_check" in before  # copied from the audit, kept by the recomputation
    assert evaluate_main([str(tiny_run)]) == 0
    after = json.loads((tiny_run / "metrics.json").read_text())
    assert after == before  # the same stored vectors give the same numbers, nested blocks included
    assert "P@1" in capsys.readouterr().out


def test_original_flags_keep_their_meaning():
    cfg, _ = parse_args(["--em", "64", "--lr", "0.01", "--epochs", "3", "--gamma", "0.5", "--loss_margin", "0.3",
                         "--step_size", "2", "--batch_size", "16", "--seed", "7", "--log_interval", "5"])
    assert (cfg.em, cfg.lr, cfg.epochs, cfg.gamma, cfg.loss_margin, cfg.step_size, cfg.batch_size, cfg.seed,
            cfg.log_interval) == (64, 0.01, 3, 0.5, 0.3, 2, 16, 7, 5)


def test_seed_preset_is_the_original_setup():
    cfg, _ = parse_args(["--preset", "seed"])
    assert (cfg.backbone, cfg.mining, cfg.optimizer, cfg.lr, cfg.scheduler, cfg.gamma, cfg.step_size, cfg.epochs,
            cfg.em, cfg.batch_size, cfg.loss_margin, cfg.seed, cfg.split) == (
        "resnet18", "random", "adagrad", 0.05, "step", 0.7, 3, 12, 128, 32, 0.2, 42, "image")
    cfg, _ = parse_args(["--preset", "seed", "--epochs", "1"])
    assert cfg.epochs == 1 and cfg.backbone == "resnet18"


def test_full_preset_is_the_default_trained_twice_as_long():
    cfg, _ = parse_args(["--preset", "full"])
    assert cfg.preset == "full" and cfg.epochs == 20 and cfg.preset_changes() == {}
    default, _ = parse_args([])
    changed = {k for k, v in cfg.to_dict().items() if default.to_dict()[k] != v}
    assert changed == {"preset", "epochs"}
    cfg, _ = parse_args(["--preset", "full", "--lesion-weight", "0.5"])
    assert cfg.preset_changes() == {"lesion_weight": 0.5} and cfg.epochs == 20


def test_config_json_records_the_preset_and_what_the_flags_changed(tiny_run: Path):
    saved = load_run(tiny_run).config
    assert saved["preset"] == "default"
    # TINY_ARGS: the flags that differ from the default preset are listed, those equal to it are not
    assert saved["preset_changes"]["image_size"] == "32x40" and saved["preset_changes"]["epochs"] == 2
    assert "backbone" not in saved["preset_changes"] and "freeze" not in saved["preset_changes"]
    cfg, _ = parse_args(["--preset", "seed", "--epochs", "1"])
    assert cfg.preset == "seed" and cfg.preset_changes() == {"epochs": 1}
    assert TrainConfig.from_dict({"mining": "semi-hard"}).preset is None  # a run made before presets were recorded
    assert TrainConfig.from_dict(saved).preset == "default"


def test_resume_continues_an_interrupted_run(synthetic_data: Path, tmp_path: Path, monkeypatch):
    import skinsim.train.sampler as S

    out = tmp_path / "runs" / "resumable"
    args = ["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--epochs", "3"]
    real_set_epoch = S.PKSampler.set_epoch

    def interrupt_at_second_epoch(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C
        real_set_epoch(self, epoch)

    monkeypatch.setattr(S.PKSampler, "set_epoch", interrupt_at_second_epoch)
    assert main(args) == 130
    assert not out.exists() and (out.parent / ".resumable.partial" / "train_state.pt").is_file()
    monkeypatch.setattr(S.PKSampler, "set_epoch", real_set_epoch)
    assert main(["--resume", str(out)]) == 0
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves["epoch"]) == [1, 2, 3]


def test_random_mining_and_resnet_train_from_scratch(synthetic_data: Path, tmp_path: Path):
    """The original recipe's code path (random triplets, ResNet18, no frozen stages) runs end to end."""
    out = tmp_path / "seedlike"
    assert main(["--preset", "seed", "--pretrained", "none", "--data-dir", str(synthetic_data), "--out", str(out),
                 "--image-size", "32", "--epochs", "1", "--batch_size", "4", "--max_steps", "2", "--em", "8",
                 "--no-audit"]) == 0
    cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert not cfg.audit and not (out / "audit.json").exists()
    assert cfg.mining == "random" and cfg.split == "image" and cfg.backbone == "resnet18"


def test_a_lesion_term_trains_and_is_recorded(synthetic_data: Path, tmp_path: Path):
    out = tmp_path / "lesion"
    assert main(["--data-dir", str(synthetic_data), *TINY_ARGS, "--max_steps", "2", "--lesion-weight", "0.5",
                 "--out", str(out), "--no-audit"]) == 0
    cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert cfg.lesion_weight == 0.5 and cfg.mining == "semi-hard"
    assert np.isfinite(pd.read_csv(out / "curves.csv")["train_loss"]).all()


@pytest.mark.parametrize("extra, message", [(["--lesion-weight", "-1"], "must be 0 or more"),
                                            (["--mining", "random", "--lesion-weight", "1"], "P x K batches")])
def test_a_lesion_term_that_cannot_work_is_refused_before_any_work(extra: list[str], message: str,
                                                                    synthetic_data: Path, tmp_path: Path, capsys):
    out = tmp_path / "refused"
    assert main(["--data-dir", str(synthetic_data), *TINY_ARGS, *extra, "--out", str(out), "--no-audit"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (out.parent / ".refused.partial").exists()


@pytest.mark.parametrize("loss", ["proxy-anchor", "triplet+multi-similarity"])
def test_another_loss_writes_a_complete_run_whose_checkpoint_is_the_embedder_alone(loss: str, synthetic_data: Path,
                                                                                   tmp_path: Path):
    from skinsim.model.embedder import Embedder

    out = tmp_path / "other-loss"
    assert main(["--data-dir", str(synthetic_data), *TINY_ARGS, "--max_steps", "2", "--loss", loss,
                 "--lesion-weight", "0.5", "--out", str(out), "--no-audit"]) == 0
    for name in RUN_FILES:
        assert (out / name).is_file() or name.startswith("audit"), name
    cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert cfg.loss == loss and cfg.lesion_weight == 0.5
    assert np.isfinite(pd.read_csv(out / "curves.csv")["train_loss"]).all()
    # proxies train with the model but are no part of it: the checkpoint loads into a plain embedder
    assert load_file(out / "checkpoint.safetensors").keys() == Embedder(em=16, pretrained="none").state_dict().keys()


def test_the_loss_flag_defaults_to_the_triplet_loss_in_every_preset():
    assert parse_args([])[0].loss == "triplet" and parse_args(["--preset", "seed"])[0].loss == "triplet"
    assert parse_args(["--loss", "triplet+proxy-anchor"])[0].loss == "triplet+proxy-anchor"
    assert TrainConfig.from_dict({"mining": "random"}).loss == "triplet"  # runs made before --loss


@pytest.mark.parametrize("extra, message", [
    (["--loss", "arcface"], "unknown --loss 'arcface'; choose triplet, multi-similarity"),
    (["--loss", "triplet+triplet"], "unknown --loss"),
    (["--loss", "proxy-anchor", "--mining", "random", "--lesion-weight", "0"], "--loss proxy-anchor needs P x K"),
    (["--loss", "triplet+supcon", "--preset", "seed", "--lesion-weight", "0"], "--loss triplet+supcon needs P x K")])
def test_a_loss_that_cannot_work_is_refused_before_any_work(extra: list[str], message: str, synthetic_data: Path,
                                                            tmp_path: Path, capsys):
    out = tmp_path / "refused"
    assert main(["--data-dir", str(synthetic_data), *TINY_ARGS, *extra, "--out", str(out), "--no-audit"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (out.parent / ".refused.partial").exists()


def test_a_dev_fold_run_never_trains_or_scores_on_validation_and_test(synthetic_data: Path, tmp_path: Path):
    from skinsim.data.splits import make_split

    out = tmp_path / "dev"
    assert main(["--data-dir", str(synthetic_data), *TINY_ARGS, "--max_steps", "2", "--dev-fold", "--out", str(out),
                 "--no-audit"]) == 0
    cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert cfg.dev_fold
    split = pd.read_parquet(out / "split.parquet")
    real = make_split(split.assign(split=None), cfg.split, cfg.split_rng)
    assert (split["split"][real != "train"] == "held").all()  # the real val and test are set aside
    assert set(split["split"][real == "train"]) == {"train", "val", "test"}  # the dev fold is cut from train
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_queries"] == (split["split"] == "val").sum()  # the dev half, not the real validation


def test_resnet18_imagenet_weights_fail_with_advice(monkeypatch):
    import torchvision.models as tvm

    from skinsim.model.backbones import WeightsError, build_backbone

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tvm.ResNet18_Weights.IMAGENET1K_V1, "get_state_dict", offline, raising=False)
    monkeypatch.setattr("torch.hub.load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match="--pretrained none"):
        build_backbone("resnet18", "imagenet")


def test_lite0_weights_checked_and_loaded():
    from skinsim.model.backbones import LITE0_SHA256, WeightsError, build_backbone, lite0_weights_path, load_lite0_state

    net = build_backbone("efficientnet_lite0", "imagenet")
    raw = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(net.stages[0][0].weight, raw["_conv_stem.weight"])
    with pytest.raises(WeightsError, match="sha256"):
        load_lite0_state(lite0_weights_path(), expected_sha256="0" * 64)
    assert len(LITE0_SHA256) == 64


def test_wandb_without_the_extra_says_how_to_get_it(monkeypatch):
    import builtins

    from skinsim.train import setup

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(SystemExit, match=r"skinsim\[wandb\]"):
        setup.start_wandb(TrainConfig(wandb=True), "x")
    assert setup.start_wandb(TrainConfig(wandb=False), "x") is None


# ------------------------------------------------------------------- one seed, one result
# Batches big enough (4 x 7 images, a thousand triplets, 128-d) that torch's CPU kernels take their
# multi-threaded paths: the triplet loss's backward ran parallel atomic adds here before it was fixed.
REPRO_ARGS = [*TINY_ARGS, "--epochs", "3", "--batch_size", "28", "--samples-per-class", "4", "--em", "128"]


def assert_same_run(a: Path, b: Path) -> None:
    """Two run folders hold identical split, embeddings, map, metrics and curves (times aside)."""
    assert pd.read_parquet(a / "split.parquet").equals(pd.read_parquet(b / "split.parquet"))
    (ta, va), (tb, vb) = read_vectors(a / "embeddings.parquet"), read_vectors(b / "embeddings.parquet")
    assert ta.equals(tb) and np.array_equal(va, vb)
    assert pd.read_parquet(a / "umap.parquet").equals(pd.read_parquet(b / "umap.parquet"))
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    ca, cb = (pd.read_csv(p / "curves.csv").drop(columns="time_s") for p in (a, b))
    pd.testing.assert_frame_equal(ca, cb, check_exact=True)
    sa, sb = load_file(a / "checkpoint.safetensors"), load_file(b / "checkpoint.safetensors")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def repro_run(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run left alone, to compare others with."""
    out = tmp_path_factory.mktemp("repro") / "alone"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *REPRO_ARGS]) == 0
    return out


def test_two_runs_of_one_seed_are_identical(repro_run: Path, synthetic_data: Path, tmp_path: Path):
    again = tmp_path / "again"
    assert main(["--data-dir", str(synthetic_data), "--out", str(again), *REPRO_ARGS]) == 0
    assert_same_run(repro_run, again)
    other = tmp_path / "other-seed"
    assert main(["--data-dir", str(synthetic_data), "--out", str(other), *REPRO_ARGS, "--seed", "7",
                 "--split-seed", "42"]) == 0
    assert pd.read_parquet(other / "split.parquet").equals(pd.read_parquet(again / "split.parquet"))
    assert not np.array_equal(read_vectors(other / "embeddings.parquet")[1], read_vectors(again / "embeddings.parquet")[1])


def test_two_runs_of_the_full_preset_are_identical(synthetic_data: Path, tmp_path: Path):
    """The full preset's own 20 epochs and their cosine schedule (two batches an epoch) give one result per seed."""
    pairs = list(zip(REPRO_ARGS[::2], REPRO_ARGS[1::2]))  # REPRO_ARGS and TINY_ARGS both set --epochs
    args = [x for flag, value in pairs if flag != "--epochs" for x in (flag, value)]
    args += ["--max_steps", "2", "--no-audit"]
    runs = [tmp_path / "full-a", tmp_path / "full-b"]
    for out in runs:
        assert main(["--preset", "full", "--data-dir", str(synthetic_data), "--out", str(out), *args]) == 0
    saved = json.loads((runs[0] / "config.json").read_text())
    assert saved["preset"] == "full" and saved["epochs"] == 20 and "epochs" not in saved["preset_changes"]
    assert len(pd.read_csv(runs[0] / "curves.csv")) == 20
    assert_same_run(*runs)


WITHOUT_SPEED_SETTINGS = """
import sys
import torch
import skinsim.train.train as T
real = T.make_deterministic
def filling(seed):
    real(seed)
    torch.utils.deterministic.fill_uninitialized_memory = True  # torch's default: NaN in every new tensor
T.make_deterministic = filling
T.keep_freed_memory = lambda: False  # glibc's own thresholds
sys.exit(T.main(sys.argv[1:]))
"""


def test_the_speed_settings_change_no_result(repro_run: Path, synthetic_data: Path, tmp_path: Path):
    """Neither the skipped NaN fill of new memory nor glibc's thresholds (skinsim.compute.allocator) change a run."""
    import subprocess
    import sys

    plain = tmp_path / "plain"
    done = subprocess.run([sys.executable, "-c", WITHOUT_SPEED_SETTINGS, "--data-dir", str(synthetic_data),
                           "--out", str(plain), *REPRO_ARGS], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.utils.deterministic.fill_uninitialized_memory is False  # this process trained with both settings
    assert_same_run(repro_run, plain)


KILL_MID_EPOCH = """
import os, signal, sys
import skinsim.train.sampler as S
import skinsim.train.train as T
real_iter = S.PKSampler.__iter__
def dying_iter(self):
    for step, batch in enumerate(real_iter(self)):
        if self.epoch == 1 and step == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the second epoch
        yield batch
S.PKSampler.__iter__ = dying_iter
sys.exit(T.main(sys.argv[1:]))
"""


def test_kill_9_mid_epoch_then_resume_ends_equal_to_a_run_left_alone(repro_run: Path, synthetic_data: Path,
                                                                       tmp_path: Path):
    import subprocess
    import sys

    out = tmp_path / "killed"
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", KILL_MID_EPOCH, "--data-dir", str(synthetic_data), "--out", str(out),
                           *REPRO_ARGS], cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    work = out.parent / ".killed.partial"
    assert not out.exists() and torch.load(work / "train_state.pt", weights_only=True)["epoch"] == 1
    assert main(["--resume", str(out)]) == 0
    assert_same_run(repro_run, out)


def test_a_proxy_loss_run_resumed_ends_equal_to_a_run_left_alone(synthetic_data: Path, tmp_path: Path,
                                                                  monkeypatch):
    """The proxies and their optimizer state resume with the model (a fresh init would end elsewhere)."""
    import skinsim.train.sampler as S

    args = ["--data-dir", str(synthetic_data), *TINY_ARGS, "--epochs", "3", "--max_steps", "3",
            "--loss", "triplet+proxy-anchor", "--no-audit"]
    alone, out = tmp_path / "alone", tmp_path / "resumed"
    assert main([*args, "--out", str(alone)]) == 0
    real_set_epoch = S.PKSampler.set_epoch

    def interrupt_at_second_epoch(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        real_set_epoch(self, epoch)

    monkeypatch.setattr(S.PKSampler, "set_epoch", interrupt_at_second_epoch)
    assert main([*args, "--out", str(out)]) == 130
    state = torch.load(tmp_path / ".resumed.partial" / "train_state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["objective"]["other.proxies"].shape == (7, 16)
    assert len(state["optimizer"]["param_groups"]) == 2  # the proxies' own group
    monkeypatch.setattr(S.PKSampler, "set_epoch", real_set_epoch)
    assert main(["--resume", str(out)]) == 0
    assert_same_run(alone, out)


def test_benchmark_spread_over_training_seeds(monkeypatch):
    import skinsim.bench.retrieval as B

    seen = []

    def fake_trained_row(method, protocol, data_dir, overrides, note, force, name=None):
        seen.append((overrides["seed"], overrides["split_seed"], name))
        p1 = {1: 0.70, 2: 0.74, 3: 0.75}[overrides["seed"]]
        return {"method": method, "protocol": protocol, "P@1": p1, "macro P@1": 0.5, "note": note}

    monkeypatch.setattr(B, "trained_row", fake_trained_row)
    rows = B.spread_rows(Path("."), [1, 2, 3], force=False)
    assert seen == [(1, 42, "bench-default-lesion-seed1"), (2, 42, "bench-default-lesion-seed2"),
                    (3, 42, "bench-default-lesion-seed3")]
    by_method = {r["method"]: r for r in rows}
    assert by_method["old default, mean of 3"]["P@1"] == pytest.approx(0.73)
    # sd of 0.70, 0.74, 0.75: deviations -0.03, 0.01, 0.02 -> sqrt(0.0014 / 2)
    assert by_method["old default, sd of 3"]["P@1"] == pytest.approx((0.0014 / 2) ** 0.5)
    assert by_method["old default, max - min of 3"]["P@1"] == pytest.approx(0.05)
    assert by_method["old default, sd of 3"]["macro P@1"] == pytest.approx(0.0)


def test_benchmark_default_beside_the_old_one_over_split_seeds(monkeypatch, tmp_path):
    import skinsim.bench.retrieval as B

    seen = []

    def fake_trained_row(method, protocol, data_dir, overrides, note, force, name=None, start=None):
        seen.append((method, start, overrides.get("lesion_weight"), overrides["split_seed"], name))
        return {"method": method, "protocol": protocol, "P@1": 0.7 + overrides["split_seed"] / 1000, "note": note}

    monkeypatch.setattr(B, "trained_row", fake_trained_row)
    rows = B.split_seed_rows(Path("."), [1, 2], force=False)
    assert seen == [("old default split 1", "default", 0.0, 1, "bench-old-default-split1"),
                    ("old default split 2", "default", 0.0, 2, "bench-old-default-split2"),
                    ("default split 1", "default", None, 1, "bench-default-split1"),
                    ("default split 2", "default", None, 2, "bench-default-split2"),
                    ("lesion weight 0.5 split 1", "default", 0.5, 1, "bench-lw05-split1"),
                    ("lesion weight 0.5 split 2", "default", 0.5, 2, "bench-lw05-split2"),
                    ("full split 1", "full", None, 1, "bench-full-split1"),
                    ("full split 2", "full", None, 2, "bench-full-split2")]
    by_method = {r["method"]: r for r in rows}
    assert by_method["default over split seeds, mean of 2"]["P@1"] == pytest.approx(0.7015)
    assert by_method["old default over split seeds, max - min of 2"]["P@1"] == pytest.approx(0.001)
    assert B.split_seed_rows(Path("."), [42], force=False)[0]["method"] == "old default split 42"
    assert seen[-4][-1] == "bench-default-lesion-seed42"  # the spread table's run
    # --recipes full: only the full preset's runs
    seen.clear()
    B.split_seed_rows(Path("."), [5], force=False, recipes=["full"])
    assert seen == [("full split 5", "full", None, 5, "bench-full-split5")]
    # --trained-only: a missing run is named, not trained
    monkeypatch.setattr(B.runs, "runs_dir", lambda: tmp_path)
    seen.clear()
    assert B.split_seed_rows(Path("."), [7], force=False, trained_only=True) == [] and seen == []


@pytest.mark.parametrize("recipes", ["fast", "", "default,nope"])
def test_benchmark_names_the_recipes_it_knows_when_given_another(recipes: str, capsys):
    import skinsim.bench.retrieval as B

    with pytest.raises(SystemExit) as stop:
        B.main(["--only-splits", "--recipes", recipes, "--data-dir", "/nowhere"])
    assert stop.value.code == 2
    assert "choose from old-default, default, lw05, full" in capsys.readouterr().err


def test_benchmark_per_class_table_puts_melanoma_first_and_averages_the_splits(monkeypatch, tmp_path):
    import skinsim.bench.retrieval as B

    def metrics(mel: float, nv: float, same: float) -> dict:
        return {"per_class": {"nv": {"p_at_1": nv, "n_queries": 10}, "mel": {"p_at_1": mel, "n_queries": 3}},
                "same_lesion": {"r_at_1": same, "n_queries": 4}}

    stored = {"bench-default-split1": metrics(0.2, 0.9, 0.6), "bench-default-split2": metrics(0.4, 0.7, 0.8),
              "bench-lw05-split1": metrics(0.5, 0.8, 0.5)}
    monkeypatch.setattr(B.runs, "is_run", lambda folder: folder.name in stored)
    monkeypatch.setattr(B.runs, "load_run", lambda folder: SimpleNamespace(metrics=stored[folder.name]))
    rows = B.per_class_rows([1, 2])
    # no old-default run here
    assert [r["recipe"] for r in rows] == ["default", "lesion weight 0.5", "queries (same-lesion: val + test)"]
    assert [r["recipe"] for r in B.per_class_rows([1, 2], recipes=["lw05"])] == [
        "lesion weight 0.5", "queries (same-lesion: val + test)"]
    assert list(rows[0])[:4] == ["recipe", "splits", "mel", "nv"]
    assert rows[0]["splits"] == 2 and rows[0]["mel"] == pytest.approx(0.3) and rows[0]["nv"] == pytest.approx(0.8)
    assert rows[0]["same-lesion R@1"] == pytest.approx(0.7) and rows[0]["bcc"] is None
    assert rows[1]["splits"] == 1 and rows[1]["mel"] == pytest.approx(0.5)
    assert rows[2]["mel"] == 6 and rows[2]["nv"] == 20 and rows[2]["same-lesion R@1"] == 8
    assert B.format_table(rows).splitlines()[0].startswith("| recipe | splits | mel | nv | bcc |")


def test_benchmark_retrains_a_stored_run_whose_recipe_is_not_the_one_asked_for(monkeypatch, tmp_path, capsys):
    import hashlib
    import json

    import skinsim.bench.retrieval as B
    import skinsim.train.train as T
    from skinsim.runs.config import preset

    def store(name, cfg):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "embeddings.parquet").write_bytes(b"")
        (folder / "config.json").write_text(json.dumps({**cfg.to_dict(), "meta": {"time_s": {"train": 5.0}}}))
        overall = {"p_at_1": 0.5, "macro_p_at_1": 0.4, "map_at_r": 0.3, "knn_balanced_accuracy": 0.2}
        (folder / "metrics.json").write_text(json.dumps({"overall": overall}))

    trained = []
    monkeypatch.setattr(B.runs, "runs_dir", lambda: tmp_path)
    monkeypatch.setattr(T, "train", lambda cfg, folder: trained.append((folder.name, cfg.lesion_weight, cfg.compile,
                                                                        cfg.precision)))
    # the same recipe read from another folder, device or worker count: reused as it is (a float32 run, as all of
    # docs/results.md's are)
    store("same", preset("default", data_dir="/elsewhere", split="lesion", device="cpu", workers=1, seed=7,
                         precision="fp32"))
    assert B.trained_row("d", "lesion", Path("data"), {"seed": 7}, "", False, name="same")["P@1"] == 0.5
    assert trained == []
    # a run trained before the lesion term (its config has no lesion_weight): not the default any more
    old = preset("default", data_dir="data", split="lesion").to_dict()
    del old["lesion_weight"], old["precision"]
    store("old", preset("default", data_dir="data", split="lesion", lesion_weight=0.0))
    (tmp_path / "old" / "config.json").write_text(json.dumps({**old, "meta": {}}))
    B.trained_row("d", "lesion", Path("data"), {}, "", False, name="old")
    assert trained == [("old", 1.0, "off", "fp32")]  # trained eager and float32, as the stored tables were
    assert "old was trained with another recipe (lesion_weight: 0.0 -> 1.0)" in capsys.readouterr().out
    assert B.recipe_changes(old, preset("default", lesion_weight=0.0, precision="fp32")) == []
    # the full preset's row starts from that preset: a stored full run is reused, a default one is not it
    store("full", preset("full", data_dir="data", split="lesion", precision="fp32", compile="off"))
    trained.clear()
    assert B.trained_row("full", "lesion", Path("data"), {}, "", False, name="full")["P@1"] == 0.5 and trained == []
    assert B.recipe_changes(preset("default").to_dict(), preset("full")) == ["epochs: 10 -> 20"]
    # a run made before config.json recorded its preset has the same recipe as one that records it
    unrecorded = {k: v for k, v in preset("default", seed=42).to_dict().items() if k != "preset"}
    assert B.recipe_changes(unrecorded, preset("default", seed=42)) == []
    # a run without a split seed was split with its training seed: the same split as naming it
    assert B.recipe_changes(preset("default", seed=42).to_dict(), preset("default", seed=42, split_seed=42)) == []
    assert B.recipe_changes(preset("default", seed=42).to_dict(), preset("default", seed=42, split_seed=43)) == [
        "split_seed: 42 -> 43"]
    # reviewed merges given to the dataset since the run was trained: its lesion split is not the default's now
    ham = tmp_path / "ham"
    ham.mkdir()
    (ham / "lesion_merges.csv").write_text("image_a,image_b,verdict\n")
    wanted = preset("default", data_dir=str(ham))
    digest = hashlib.sha256((ham / "lesion_merges.csv").read_bytes()).hexdigest()
    assert B.recipe_changes({**wanted.to_dict(), "meta": {}}, wanted) == [f"lesion merges: none -> {digest[:12]}"]
    applied = {"lesion_merges": {"sha256": digest}}
    assert B.recipe_changes({**wanted.to_dict(), "meta": applied}, wanted) == []
    assert B.recipe_changes({**wanted.to_dict(), "meta": applied}, preset("default", data_dir=str(ham),
                                                                          lesion_merges="none"))[-1].endswith("-> none")


def test_benchmark_frozen_rows_score_each_split_seeds_lesion_split(monkeypatch, tmp_path):
    import skinsim.bench.retrieval as B
    from skinsim.evaluate.report import same_lesion_report
    from skinsim.data.splits import make_split
    from tests.conftest import make_synthetic_dataset

    table = make_synthetic_dataset(tmp_path, lesions_per_class=6, images_per_lesion=2)
    vectors = np.random.default_rng(0).normal(size=(len(table), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    monkeypatch.setattr(B, "frozen_vectors", lambda data_dir, paths: vectors)
    rows = B.frozen_split_rows(tmp_path, [3, 4])
    assert [r["method"] for r in rows] == ["frozen ImageNet Lite0 split 3", "frozen ImageNet Lite0 split 4"]
    loaded = B.load_dataset(tmp_path, check_images=False)
    for seed, r in zip([3, 4], rows):
        expected = same_lesion_report(loaded.assign(split=make_split(loaded, "lesion", seed)), vectors)
        assert r["same-lesion R@1"] == pytest.approx(expected["r_at_1"])
        assert 0 <= r["macro P@1 both ways"] <= 1


def test_the_default_has_the_lesion_term_and_older_runs_read_without_it():
    from skinsim.runs.config import TrainConfig, preset

    assert preset("default").lesion_weight == 1.0 and preset("seed").lesion_weight == 0.0
    assert TrainConfig.from_dict({"mining": "semi-hard"}).lesion_weight == 0.0  # a run made before issue 8
    cfg, _ = parse_args(["--mining", "random", "--lesion-weight", "0"])
    assert cfg.lesion_weight == 0.0 and cfg.mining == "random"


@pytest.mark.parametrize("flag", ["--look-dims", "--look_share=0.5"])
def test_a_removed_experiments_flag_says_where_it_went(flag: str, tmp_path: Path, capsys) -> None:
    """Two-part embeddings were dropped: their flags give one message naming docs/results.md and write nothing."""
    with pytest.raises(SystemExit) as exc:
        parse_args([flag, "64", "--out", str(tmp_path / "x")] if "=" not in flag else [flag])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "removed" in err and "docs/results.md" in err and "two-part" in err
    assert not (tmp_path / "x").exists()


def test_a_two_part_run_is_refused_with_one_message() -> None:
    """A run folder made while two-part embeddings existed is not read as a one-part run."""
    with pytest.raises(ValueError, match="two-part embeddings"):
        TrainConfig.from_dict({**TrainConfig().to_dict(), "look_dims": 64, "look_share": 0.5})
    assert TrainConfig.from_dict({**TrainConfig().to_dict(), "look_dims": 0}).em == 128  # the default then: read


def test_reviewed_merges_group_two_lesion_ids_in_the_split_and_the_run_records_the_file(
        synthetic_data: Path, tmp_path: Path) -> None:
    """Two lesion ids judged one lesion share a side of the split; the run keeps the filed ids and the file's hash."""
    import hashlib

    merges = tmp_path / "lesion_merges.csv"
    # ISIC_9000000 is lesion HAM_0000000, ISIC_9000002 lesion HAM_0000001 (same diagnosis); one unsure pair too
    merges.write_text("image_a,image_b,verdict,note\nISIC_9000000,ISIC_9000002,same,\n"
                      "ISIC_9000004,ISIC_9000006,unsure,\n")
    out = tmp_path / "merged"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--epochs", "1", "--max_steps",
                 "2", "--no-audit", "--lesion-merges", str(merges)]) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["lesion_merges"] == str(merges)
    assert meta["meta"]["lesion_merges"]["sha256"] == hashlib.sha256(merges.read_bytes()).hexdigest()
    assert (meta["meta"]["lesion_merges"]["lesions_before"], meta["meta"]["lesion_merges"]["lesions_after"]) == (42, 41)
    table, _ = read_vectors(out / "embeddings.parquet")
    pair = table[table["filed_lesion_id"].isin(["HAM_0000000", "HAM_0000001"])]
    assert set(pair["lesion_id"]) == {"HAM_0000000"} and pair["split"].nunique() == 1


@pytest.mark.parametrize("text, message", [
    ("image_a,image_b,verdict\nISIC_9000000,ISIC_404,same\n", "does not have: ISIC_404"),
    ("image_a,image_b,verdict\nISIC_9000000,ISIC_9000002,perhaps\n", "verdicts must be"),
])
def test_a_bad_merges_file_stops_training_with_one_message(synthetic_data: Path, tmp_path: Path, capsys, text: str,
                                                           message: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    out = tmp_path / "runs" / "never"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--lesion-merges",
                 str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_a_dataset_folders_own_merges_file_applies_by_default(synthetic_data: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    (data / "lesion_merges.csv").write_text("image_a,image_b,verdict\nISIC_9000000,ISIC_9000002,same\n")
    out = tmp_path / "default-merges"
    assert main(["--data-dir", str(data), "--out", str(out), *TINY_ARGS, "--epochs", "1", "--max_steps", "1",
                 "--no-audit"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["lesion_merges"] is None  # none named: the dataset's own, which meta records
    assert config["meta"]["lesion_merges"]["path"] == str((data / "lesion_merges.csv").resolve())
    assert config["meta"]["lesion_merges"]["lesions_after"] == 41
    # --lesion-merges none: the dataset's own file is not applied either
    out = tmp_path / "no-merges"
    assert main(["--data-dir", str(data), "--out", str(out), *TINY_ARGS, "--epochs", "1", "--max_steps", "1",
                 "--no-audit", "--lesion-merges", "none"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["lesion_merges"] == "none" and "lesion_merges" not in config["meta"]
    assert "filed_lesion_id" not in pd.read_parquet(out / "embeddings.parquet").columns


def test_the_repositorys_merges_file_for_a_read_only_dataset_applies_by_default(
        synthetic_data: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """data/<dataset folder>_lesion_merges.csv (how data/ham10000_lesion_merges.csv reaches ../shared/ham10000);
    rows naming images this copy lacks are left out, and said so."""
    import skinsim.data.merges as merges_module

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    monkeypatch.setattr(merges_module, "REPO_ROOT", repo)
    (repo / "data" / f"{synthetic_data.name}_lesion_merges.csv").write_text(
        "image_a,image_b,verdict\nISIC_9000000,ISIC_9000002,same\nISIC_9000004,ISIC_0000404,same\n")
    out = tmp_path / "repo-merges"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--epochs", "1", "--max_steps",
                 "1", "--no-audit"]) == 0
    applied = json.loads((out / "config.json").read_text())["meta"]["lesion_merges"]
    assert (applied["lesions_after"], applied["rows_left_out"], applied["named"]) == (41, 1, False)
    assert "1 of its rows name images this copy lacks and were left out" in capsys.readouterr().out


def test_the_leak_check_reaches_metrics_json(synthetic_data: Path, tmp_path: Path) -> None:
    merges = tmp_path / "lesion_merges.csv"
    merges.write_text("image_a,image_b,verdict\nISIC_9000000,ISIC_9000002,same\n")
    out = tmp_path / "leak-check"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--epochs", "1", "--max_steps",
                 "1", "--lesion-merges", str(merges)]) == 0
    check = json.loads((out / "metrics.json").read_text())["leak_check"]
    assert check == json.loads((out / "audit.json").read_text())["leak_check"]
    assert check["merges"] == str(merges.resolve()) and check["after_merges"]["by_verdict"]["same"] == 0
    # the candidates are pairs of the dataset's own two ids, merged ones included
    same = pd.read_parquet(out / "audit_same_lesion.parquet")
    assert (same["lesion_a"] != same["lesion_b"]).all()
    merged = same[same["image_a"].isin(["ISIC_9000000", "ISIC_9000002"]) & same["image_b"].isin(
        ["ISIC_9000000", "ISIC_9000002"])]
    assert not merged["crosses_split"].any()
