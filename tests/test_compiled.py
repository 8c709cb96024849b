"""torch.compile for the frozen trunk: when it is used, that it matches eager, and that a failure falls back to
eager with one warning."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from skinsim.compute.compiled import CompiledForward, use_compile
from skinsim.compute.distributed import World
from skinsim.runs.folder import read_json, read_vectors
from skinsim.train.cli import parse_args
from skinsim.train.inputs import Inputs, load_data
from skinsim.train.setup import build_model, make_deterministic
from skinsim.train.train import main
from tests.conftest import TINY_ARGS


def test_auto_compiles_on_the_cpu_for_large_datasets_only():
    assert use_compile("auto", torch.device("cpu"), 2000)
    assert not use_compile("auto", torch.device("cpu"), 1999)
    assert not use_compile("auto", torch.device("cuda"), 10_000)  # not measured there: eager
    assert use_compile("on", torch.device("cpu"), 10) and use_compile("on", torch.device("cuda"), 10)
    assert not use_compile("off", torch.device("cpu"), 10_000)
    with pytest.raises(ValueError, match="--compile must be one of auto, on, off, not 'yes'"):
        use_compile("yes", torch.device("cpu"), 10)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten())
    net[1].running_mean.uniform_(-1, 1)  # eval-mode batch norm with statistics of its own
    return net.eval()


@torch.no_grad()
def test_compiled_forward_matches_eager_on_short_and_flipped_batches():
    net = small_net()
    fast = CompiledForward(net, batch_size=4)
    x = torch.randn(4, 3, 6, 5)
    for batch in (x, x[:3], x[:1], x.flip(3), torch.randn(6, 3, 6, 5)):  # full, padded, strided, larger
        out = fast(batch)
        assert out.shape == (len(batch), 4)
        assert torch.allclose(out, net(batch), atol=1e-5)
    assert fast.compiled is not None


@torch.no_grad()
def test_a_failed_compile_warns_once_and_runs_eager(capsys: pytest.CaptureFixture):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler here")

    net = small_net()
    fast = CompiledForward(net, batch_size=4, backend=broken_backend)
    x = torch.randn(3, 3, 6, 5)
    assert torch.equal(fast(x), net(x)) and torch.equal(fast(x), net(x))  # eager on the very input
    err = capsys.readouterr().err
    assert err.count("torch.compile failed") == 1 and "no C++ compiler here" in err and "--compile off" in err
    assert fast.compiled is None


def inputs_of(data_dir: Path, work: Path, setting: str, precision: str = "fp32") -> Inputs:
    cfg, _ = parse_args(["--data-dir", str(data_dir), *TINY_ARGS, "--compile", setting, "--precision", precision])
    make_deterministic(cfg.seed)
    work.mkdir()
    data = load_data(cfg, work, resume=False)
    model, _ = build_model(cfg, torch.device("cpu"), World())
    return Inputs(cfg, model, data, torch.device("cpu"), torch.Generator().manual_seed(cfg.seed))


def test_compiled_inputs_agree_with_eager_ones(synthetic_data: Path, tmp_path: Path):
    eager, fast = inputs_of(synthetic_data, tmp_path / "eager", "off"), inputs_of(synthetic_data, tmp_path / "on", "on")
    # the cache is float16: a 1e-6 difference can round to the neighbouring half, 2**-6 apart at 8-16
    for a, b in zip([eager.plain, *eager.views], [fast.plain, *fast.views]):
        assert a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=2e-3, atol=2e-3)
    rows = np.arange(len(eager.data.table))
    assert np.abs(eager.embed(rows, tta=True) - fast.embed(rows, tta=True)).max() < 1e-3


def test_compiled_runs_repeat_exactly(synthetic_data: Path, tmp_path: Path):
    # a compiled run is not the eager run's twin (training amplifies float16 rounding of the cache, as another
    # seed would), but one setting and one seed still give one result
    vectors = []
    for name in ("first", "second"):
        out = tmp_path / name
        assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--compile", "on",
                     "--no-audit"]) == 0
        assert read_json(out / "config.json")["compile"] == "on"
        vectors.append(read_vectors(out / "embeddings.parquet")[1])
    assert np.array_equal(vectors[0], vectors[1])
    assert np.allclose(np.linalg.norm(vectors[0], axis=1), 1.0, atol=1e-5)


def test_small_datasets_stay_eager_under_auto(synthetic_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    inputs_of(synthetic_data, tmp_path / "on", "on")
    assert "the frozen trunk goes through torch.compile (--compile on)" in capsys.readouterr().out
    inputs_of(synthetic_data, tmp_path / "auto", "auto")  # 84 images < AUTO_MIN_IMAGES
    assert "torch.compile" not in capsys.readouterr().out


def test_a_bad_compile_setting_is_refused_before_any_work(synthetic_data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture):
    out = tmp_path / "bad"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--compile", "yes"]) == 2
    assert "--compile must be one of auto, on, off, not 'yes'" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / ".bad.partial").exists()
