"""The 2D ResNet baseline of Table 4: a ResNet-18 on every frame, no temporal modelling.

The paper: "the per-frame embeddings are concatenated before classification", so the
embedding is ``T x 512`` wide (tiny: ``T x 128``) and tied to the clip length it was built
for. Same network, weights layout and tiny variant as TSM, minus the shift.
"""
from __future__ import annotations

from backbones.registry import register_backbone
from backbones.tsm import FrameResNet, build_frame_resnet


@register_backbone("resnet2d_r18", family="resnet2d", paper_label="2D ResNet")
def resnet2d_r18(num_frames: int, img_size: int, pretrained: str | None = None, variant: str = "paper",
                 **kw) -> FrameResNet:
    return build_frame_resnet(num_frames, pretrained, variant, shift=False, consensus="concat")
