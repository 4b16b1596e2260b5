"""Optional extra backbones from pytorchvideo's model-zoo builders: X3D-S and Slow-R50.

Registered only when ``pytorchvideo`` is installed (``pip install 'learner-bench[pytorchvideo]'``);
without it this module registers nothing. pytorchvideo itself is imported only when a
model is built. The builders' classifier (dropout, projection, softmax) is removed; the
embedding is the head's pooled features (X3D: the 2048-d ``lin5`` output, Slow-R50: the
averaged 2048-d ``res5`` map). ``pretrained`` is a local state dict of the builder's model
(a zoo ``.pyth`` file's ``model_state``, re-saved).
"""
from __future__ import annotations

import importlib
import importlib.util

import torch
from torch import nn

from backbones.registry import register_backbone
from backbones.weights import HEAD_PREFIXES, load_local_weights


class ZooEncoder(nn.Module):
    """A pytorchvideo ``Net`` without its classifier; takes our ``[B, T, C, H, W]`` layout."""

    def __init__(self, net: nn.Module):
        super().__init__()
        head = net.blocks[-1]
        self.embed_dim = int(head.proj.in_features)
        head.dropout = head.proj = head.activation = None
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2))  # pytorchvideo wants [B, C, T, H, W]


def _x3d_s(num_frames: int, img_size: int, variant: str) -> dict:
    """X3D-S (= X3D-XS widths and depths, 13 x 160 px clips); tiny: half width, depth x1."""
    tiny = dict(width_factor=1.0, depth_factor=1.0, bottleneck_factor=1.5, head_dim_out=256)
    return dict(input_clip_length=num_frames, input_crop_size=img_size, **(tiny if variant == "tiny" else {}))


def _slow_r50(num_frames: int, img_size: int, variant: str) -> dict:
    """Slow-R50 (8 x 224 px clips, spatial stride 32); tiny: stem width 8 instead of 64."""
    final = -(-img_size // 32)
    return dict(model_depth=50, stem_conv_kernel_size=(1, 7, 7), head_pool_kernel_size=(num_frames, final, final),
                **(dict(stem_dim_out=8) if variant == "tiny" else {}))


# name: (pytorchvideo.models module, builder, kwargs(num_frames, img_size, variant), default frames, size)
_ZOO = {
    "x3d_s": ("x3d", "create_x3d", _x3d_s, 13, 160),
    "slow_r50": ("resnet", "create_resnet", _slow_r50, 8, 224),
}


def _register(name: str, module: str, builder: str, kwargs, frames: int, size: int) -> None:
    @register_backbone(name, family=name.split("_")[0], source="pytorchvideo", default_frames=frames,
                       default_size=size)
    def factory(num_frames: int, img_size: int, pretrained: str | None = None, variant: str = "paper",
                **kw) -> ZooEncoder:
        build = getattr(importlib.import_module(f"pytorchvideo.models.{module}"), builder)
        model = ZooEncoder(build(**kwargs(num_frames, img_size, variant)))
        if pretrained:
            load_local_weights(model.net, pretrained,
                               ignore_prefixes=HEAD_PREFIXES + (f"blocks.{len(model.net.blocks) - 1}.proj.",))
        return model


if importlib.util.find_spec("pytorchvideo") is not None:
    for _name, _spec in _ZOO.items():
        _register(_name, *_spec)
