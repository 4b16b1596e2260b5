"""Encoder registry: ``create(name, num_frames=, img_size=)`` and ``list_backbones()``."""
from backbones.registry import (ENTRY_POINT_GROUP, BackboneInfo, Encoder, backbone_info, create,
                                list_backbones, refresh, register_backbone)

__all__ = ["ENTRY_POINT_GROUP", "BackboneInfo", "Encoder", "backbone_info", "create", "list_backbones",
           "refresh", "register_backbone"]
