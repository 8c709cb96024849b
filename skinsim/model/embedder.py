"""The embedder: backbone stages -> Linear(em) -> L2-normalise."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from skinsim.model.backbones import build_backbone


class Embedder(nn.Module):
    """Maps normalised images (or the outputs of the first `start` stages) to unit-length vectors."""

    def __init__(self, backbone: str = "efficientnet_lite0", em: int = 128, pretrained: str = "imagenet"):
        super().__init__()
        net = build_backbone(backbone, pretrained)
        self.stages, self.mean, self.std = net.stages, net.mean, net.std
        self.fc = nn.Linear(net.feature_dim, em)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # 1.5-3x faster convolutions on CPU
        for stage in self.stages[start:]:
            x = stage(x)
        with torch.autocast(x.device.type, enabled=False):  # a bfloat16 pass rounds the stages only
            return F.normalize(self.fc(x.float()), dim=1)

    def trunk(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """The activations after the first `stop` stages."""
        x = x.contiguous(memory_format=torch.channels_last)
        for stage in self.stages[:stop]:
            x = stage(x)
        return x
