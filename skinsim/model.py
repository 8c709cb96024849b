"""The embedder: backbone stages -> Linear(em) -> L2-normalise (as one part, or as two: skinsim.two_part)."""
from __future__ import annotations

import torch
from torch import nn

from skinsim import two_part
from skinsim.backbones import build_backbone


class Embedder(nn.Module):
    """Maps normalised images (or the outputs of the first `start` stages) to unit-length vectors."""

    def __init__(self, backbone: str = "efficientnet_lite0", em: int = 128, pretrained: str = "imagenet",
                 look_dims: int = 0, look_share: float = 0.5):
        super().__init__()
        two_part.check(look_dims, look_share, em)
        self.look_dims, self.look_share = look_dims, look_share
        net = build_backbone(backbone, pretrained)
        self.stages, self.mean, self.std = net.stages, net.mean, net.std
        self.fc = nn.Linear(net.feature_dim, em)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # 1.5-3x faster convolutions on CPU
        for stage in self.stages[start:]:
            x = stage(x)
        with torch.autocast(x.device.type, enabled=False):  # a bfloat16 pass (skinsim.precision) rounds the stages only
            return two_part.join(self.fc(x.float()), self.look_dims, self.look_share)

    def trunk(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """The activations after the first `stop` stages."""
        x = x.contiguous(memory_format=torch.channels_last)
        for stage in self.stages[:stop]:
            x = stage(x)
        return x
