"""skinsim.compute.precision: bfloat16 no-gradient passes, float32 head, and what a run records."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import skinsim.model.embed
from skinsim.compute import precision
from skinsim.runs.config import PRESETS, TrainConfig
from skinsim.model.embed import embed_batches
from skinsim.model.embedder import Embedder
from skinsim.search.search_index import SearchIndex
from skinsim.train.train import main
from skinsim.model.transforms import normalise
from skinsim.train.trunk_cache import trunk_activations
from tests.conftest import TINY_ARGS


def test_resolve_auto_follows_native_support(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.resolve("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert precision.resolve("auto", "cpu") == "fp32"
    assert precision.resolve("bf16", "cpu") == "bf16" and precision.resolve("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="--precision must be one of auto, bf16, fp32, not 'fp16'"):
        precision.resolve("fp16", "cpu")


def test_autocast_is_on_for_bf16_only():
    with precision.autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with precision.autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")


@pytest.fixture(scope="module")
def model() -> Embedder:
    torch.manual_seed(0)
    return Embedder("efficientnet_lite0", 16, "none").eval()


def test_bf16_pass_rounds_the_stages_but_not_the_head(model: Embedder):
    x = torch.randn(3, 3, 32, 40)
    with torch.no_grad():
        exact = model(x)
        with precision.autocast("bf16", "cpu"):
            rounded = model(x)
            features = x
            for stage in model.stages:
                features = stage(features)
    assert features.dtype == torch.bfloat16  # the stages did run in bfloat16
    assert rounded.dtype == torch.float32 and torch.allclose(rounded.norm(dim=1), torch.ones(3), atol=1e-6)
    # the head is float32: the output is exactly the head of the (rounded) stage output
    head = torch.nn.functional.normalize(model.fc(features.float()), dim=1)
    assert torch.equal(rounded, head)
    assert not torch.equal(rounded, exact) and torch.allclose(rounded, exact, atol=0.05)


def test_embeddings_follow_the_precision_and_the_cache_stays_float32(model: Embedder):
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 40, 3), dtype=np.uint8)
    cache = trunk_activations(model, images, 4, batch_size=2)
    get = lambda s: cache[s]  # noqa: E731
    fp32 = embed_batches(model, 5, get, start=4, tta=True, batch_size=2, precision="fp32")
    bf16 = embed_batches(model, 5, get, start=4, tta=True, batch_size=2, precision="bf16")
    assert fp32.dtype == bf16.dtype == np.float32 and not np.array_equal(fp32, bf16)
    assert np.abs(fp32 - bf16).max() < 0.05
    assert np.array_equal(bf16, embed_batches(model, 5, get, start=4, tta=True, batch_size=2, precision="bf16"))

    def trunk_in_get(s: slice) -> torch.Tensor:  # as SearchIndex embeds a query: the trunk inside get_batch
        x = normalise(images[s], model.mean, model.std)
        dtypes.append(model.trunk(x, 4).dtype)
        return model.trunk(x, 4)

    dtypes = []
    embed_batches(model, 5, trunk_in_get, start=4, batch_size=2, precision="bf16")
    assert set(dtypes) == {torch.float32}  # the trunk runs as the cache did, outside the bfloat16 pass


def test_a_run_records_the_resolved_precision(tiny_run: Path):
    saved = json.loads((tiny_run / "config.json").read_text())["precision"]
    assert saved == precision.resolve("auto", "cpu")
    assert TrainConfig.from_dict({"epochs": 3}).precision == "fp32"  # runs made before the setting
    assert PRESETS["seed"].precision == "fp32" and PRESETS["default"].precision == "auto"


def test_queries_embed_in_the_runs_precision(tiny_run: Path, synthetic_data: Path, monkeypatch):
    seen = []
    real = skinsim.model.embed.autocast
    monkeypatch.setattr(skinsim.model.embed, "autocast", lambda setting, device: seen.append(setting) or real(setting, device))
    index = SearchIndex.from_run(tiny_run)
    index.query_image(synthetic_data / index.search_table["path"].iloc[0])
    assert seen and set(seen) == {index.config.precision}
    index.config.precision = "fp32" if index.config.precision == "bf16" else "bf16"
    seen.clear()
    index.query_image(synthetic_data / index.search_table["path"].iloc[0])
    assert set(seen) == {index.config.precision}


def test_bad_precision_gives_one_message_and_no_folder(synthetic_data: Path, tmp_path: Path, capsys):
    out = tmp_path / "bad"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, "--precision", "half"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--precision must be one of auto, bf16, fp32, not 'half'" in err
    assert not out.exists() and not (tmp_path / ".bad.partial").exists()
