"""TSM: ResNet-18 with the residual temporal shift of Lin et al. (ICCV 2019).

In every BasicBlock the input of the residual branch (``conv1``) is shifted along time:
1/8 of the channels take the next frame's values, 1/8 the previous frame's, zero-padded
at the clip ends; the identity path is untouched ("residual shift"). Frame embeddings are
averaged over time (average consensus).
"""
from __future__ import annotations

import torch
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from backbones.registry import register_backbone
from backbones.weights import load_local_weights

TINY_CHANNELS = (16, 32, 64, 128)


def temporal_shift(x: torch.Tensor, num_frames: int, fold_div: int = 8) -> torch.Tensor:
    """Shift ``x: [B*T, C, H, W]``: channels [0, C/8) from t+1, [C/8, 2C/8) from t-1."""
    bt, c, h, w = x.shape
    x = x.view(bt // num_frames, num_frames, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(bt, c, h, w)


class TemporalShift(nn.Module):
    """Wraps a block's first conv so that it sees the time-shifted input."""

    def __init__(self, conv: nn.Module, num_frames: int, fold_div: int = 8):
        super().__init__()
        self.conv, self.num_frames, self.fold_div = conv, num_frames, fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(temporal_shift(x, self.num_frames, self.fold_div))


class FrameResNet(nn.Module):
    """A 2D ResNet applied to every frame; ``shift=True`` makes it a TSM.

    ``consensus="mean"`` averages frame embeddings (TSM); ``"concat"`` concatenates them
    (the paper's 2D ResNet baseline), so ``embed_dim = T * C``.
    """

    def __init__(self, num_frames: int, channels=(64, 128, 256, 512), layers=(2, 2, 2, 2),
                 shift: bool = True, consensus: str = "mean"):
        super().__init__()
        self.num_frames = num_frames
        self.net = ResNet(BasicBlock, list(layers), num_classes=0, channels=channels)
        if shift:
            for stage in (self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4):
                for block in stage:
                    block.conv1 = TemporalShift(block.conv1, num_frames)
        self.consensus = consensus
        width = self.net.num_features
        self.embed_dim = width * num_frames if consensus == "concat" else width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        if t != self.num_frames:
            raise ValueError(f"{type(self).__name__} was built for {self.num_frames} frames, got {t}")
        feats = self.net(x.flatten(0, 1)).view(b, t, -1)
        return feats.flatten(1) if self.consensus == "concat" else feats.mean(1)


def build_frame_resnet(num_frames: int, pretrained: str | None, variant: str, shift: bool,
                       consensus: str) -> FrameResNet:
    """Paper variant: ResNet-18; tiny: one block per stage, channels 16..128."""
    if variant == "tiny":
        model = FrameResNet(num_frames, TINY_CHANNELS, (1, 1, 1, 1), shift, consensus)
    else:
        model = FrameResNet(num_frames, shift=shift, consensus=consensus)
    if pretrained:
        # A timm / torchvision ResNet-18 checkpoint: keys of ``self.net`` with the shift
        # wrapper's extra ``.conv`` level mapped in by the loader.
        load_local_weights(model.net, pretrained, key_map=_shift_key_map if shift else None)
    return model


def _shift_key_map(key: str) -> str:
    """Plain ResNet key -> key inside the shift wrapper (``layer1.0.conv1.weight`` -> ``...conv1.conv.weight``)."""
    parts = key.split(".")
    if len(parts) == 4 and parts[0].startswith("layer") and parts[2] == "conv1":
        return ".".join(parts[:3] + ["conv", parts[3]])
    return key


@register_backbone("tsm_r18", family="tsm", paper_label="TSM")
def tsm_r18(num_frames: int, img_size: int, pretrained: str | None = None, variant: str = "paper",
            **kw) -> FrameResNet:
    return build_frame_resnet(num_frames, pretrained, variant, shift=True, consensus="mean")
