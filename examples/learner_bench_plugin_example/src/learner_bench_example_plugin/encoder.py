"""A small 3D CNN video encoder, the smallest complete learner-bench backbone plugin.

learner-bench calls ``build(num_frames=, img_size=, pretrained=, variant=)`` and expects
an ``nn.Module`` mapping ``float[B, T, C, H, W]`` to ``float[B, embed_dim]`` with an
integer ``embed_dim`` attribute. This package needs torch only, not learner-bench.
"""
from __future__ import annotations

import torch
from torch import nn


class C3DEncoder(nn.Module):
    """Two strided 3x3x3 conv blocks and a global average over time and space."""

    def __init__(self, width: int):
        super().__init__()
        self.embed_dim = width
        self.net = nn.Sequential(
            nn.Conv3d(3, width // 2, 3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(width // 2), nn.ReLU(),
            nn.Conv3d(width // 2, width, 3, stride=2, padding=1), nn.BatchNorm3d(width), nn.ReLU(),
            nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2))  # Conv3d wants [B, C, T, H, W]


def build(num_frames: int, img_size: int, pretrained: str | None = None, variant: str = "paper",
          **kw) -> C3DEncoder:
    """Any frame count and size work (global pooling); ``tiny`` is 4x narrower."""
    model = C3DEncoder(16 if variant == "tiny" else 64)
    if pretrained:
        model.load_state_dict(torch.load(pretrained, map_location="cpu", weights_only=True))
    return model


# Optional: what `--list-backbones` shows for this entry point.
build.backbone_info = {"family": "c3d", "default_frames": 16, "default_size": 112}
