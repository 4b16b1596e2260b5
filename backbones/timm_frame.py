"""Per-frame 2D transformers from timm (Table 4's "Swin" and "ViT"), temporal mean.

Every frame goes through the image model (its pooled pre-logits features, no classifier)
and the frame embeddings are averaged over time — the transformer counterpart of TSM's
average consensus, with no temporal modelling at all. ``img_size`` is timm's own
argument, so ViT's position embeddings and Swin's windows are built for the clip size
(timm then requires inputs of exactly that size).

``pretrained`` is a local timm-format checkpoint of the image model (classifier head
ignored), loaded strictly: it must have been saved at the same ``img_size`` (ViT) / window
size (Swin) as the model being built.
"""
from __future__ import annotations

import sys

import timm
import torch
from torch import nn

from backbones.registry import register_backbone
from backbones.weights import load_local_weights

# Tiny transformers (CPU tests, smoke runs): two blocks, width 96, 32-dim heads. Shared
# with the video transformers so that Table 4's tiny rows differ in architecture only.
TINY_WIDTH, TINY_DEPTH, TINY_HEADS = 96, 2, 3


def tiny_patch_size(img_size: int) -> int:
    """Patch 8 below 128 px (a 4x4 token grid at 32 px), the paper models' 16 above."""
    return 8 if img_size < 128 else 16


def swin_window_size(img_size: int, patch_size: int = 4, num_stages: int = 4, preferred: int = 7) -> int:
    """Largest window <= ``preferred`` that tiles every Swin stage without padding.

    timm shrinks the window of a stage smaller than it to the stage, but pads a stage the
    window does not divide, and attends over the zero padding. So: a window dividing every
    stage larger than itself (224 px -> 7, 112 -> 7, 96 -> 6, 64 -> 4, 32 -> 4).
    """
    grid = img_size // patch_size
    stages = [-(-grid // 2 ** i) for i in range(num_stages)]  # timm's patch merging rounds up
    return next(w for w in range(preferred, 0, -1) if all(r <= w or r % w == 0 for r in stages))


class FrameEncoder(nn.Module):
    """Applies an image model (``[N, C, H, W] -> [N, D]``) to every frame, then averages over time."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.embed_dim = int(net.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        return self.net(x.flatten(0, 1)).view(b, t, -1).mean(1)


def build_frame_transformer(arch: str, img_size: int, pretrained: str | None, **cfg) -> FrameEncoder:
    """timm ``arch`` without its classifier, at ``img_size``; ``cfg`` overrides the architecture."""
    net = timm.create_model(arch, pretrained=False, num_classes=0, img_size=img_size, **cfg)
    if pretrained:
        # timm's own checkpoint filter of the family resizes position embeddings / relative
        # position tables when the checkpoint was trained at another size.
        family_filter = getattr(sys.modules[type(net).__module__], "checkpoint_filter_fn", None)
        load_local_weights(net, pretrained,
                           state_filter=(lambda state: family_filter(state, net)) if family_filter else None)
    return FrameEncoder(net)


@register_backbone("swin", family="swin", paper_label="Swin")
def swin(num_frames: int, img_size: int, pretrained: str | None = None, variant: str = "paper",
         **kw) -> FrameEncoder:
    """Paper: Swin-T (patch 4, window 7 at 224 px); tiny: two stages of widths 48 and 96, each
    one window + shifted-window block pair (Swin's unit; one block per stage would never shift)."""
    cfg = {} if variant != "tiny" else dict(embed_dim=TINY_WIDTH // 2, depths=(2, 2), num_heads=(2, 3))
    num_stages = len(cfg.get("depths", (2, 2, 6, 2)))
    return build_frame_transformer("swin_tiny_patch4_window7_224", img_size, pretrained,
                                   window_size=swin_window_size(img_size, num_stages=num_stages), **cfg)


@register_backbone("vit", family="vit", paper_label="ViT")
def vit(num_frames: int, img_size: int, pretrained: str | None = None, variant: str = "paper",
        **kw) -> FrameEncoder:
    """Paper: ViT-B/16 (CLS token features); tiny: two blocks of width 96."""
    cfg = {} if variant != "tiny" else dict(patch_size=tiny_patch_size(img_size), embed_dim=TINY_WIDTH,
                                            depth=TINY_DEPTH, num_heads=TINY_HEADS)
    return build_frame_transformer("vit_base_patch16_224", img_size, pretrained, **cfg)
