"""The encoder registry: built-in families, third-party entry points, optional zoos.

An encoder maps ``float[B, T, C, H, W]`` to ``float[B, D]`` and exposes ``embed_dim``.
Factories are registered under a name and called as
``factory(num_frames=..., img_size=..., pretrained=None | path, variant="paper" | "tiny")``:
``paper`` is the full-size model of the paper, ``tiny`` a few-layer, narrow model of the
same family that trains on a CPU in seconds (the preset chooses). A plugin without a tiny
variant simply ignores ``variant`` through ``**kw``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from bench.plugins import Registry

ENTRY_POINT_GROUP = "learner_bench.backbones"


class Encoder(Protocol):
    embed_dim: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class BackboneInfo:
    """What ``--list-backbones`` shows and grids need to know about a name."""

    name: str
    factory: Callable[..., nn.Module]
    family: str
    source: str  # "built-in" | "plugin" | "pytorchvideo"
    default_frames: int = 16
    default_size: int = 224
    paper_label: str | None = None  # the row label the paper uses (Table 4)


# Modules of this package that register built-in families when imported.
_BUILTIN_MODULES = ("backbones.tsm", "backbones.resnet2d", "backbones.timm_frame", "backbones.hf_video",
                    "backbones.pytorchvideo_zoo")


def _plugin_info(name: str, factory: Callable[..., nn.Module]) -> BackboneInfo:
    """A plugin's factory with what it says of itself (``factory.backbone_info``, a dict)."""
    info = getattr(factory, "backbone_info", {})
    return BackboneInfo(name, factory, info.get("family", name), "plugin", info.get("default_frames", 16),
                        info.get("default_size", 224), info.get("paper_label"))


BACKBONES = Registry("backbone", ENTRY_POINT_GROUP, homes=_BUILTIN_MODULES, adapt=_plugin_info)


def register_backbone(name: str, *, family: str | None = None, source: str = "built-in",
                      default_frames: int = 16, default_size: int = 224,
                      paper_label: str | None = None):
    """Decorator registering ``factory`` under ``name`` (a name can be taken only once)."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        BACKBONES.register(name, BackboneInfo(name, factory, family or name, source, default_frames,
                                              default_size, paper_label), origin=factory.__module__)
        return factory

    return wrap


def refresh() -> None:
    """Forget discovered plugins so the next lookup scans entry points again (after installing
    or removing a plugin in a running interpreter — e.g. a test that pip-installs one)."""
    BACKBONES.refresh()


def list_backbones() -> list[str]:
    return sorted(BACKBONES.names())


def backbone_info(name: str) -> BackboneInfo:
    return BACKBONES.get(name).obj


VARIANTS = ("paper", "tiny")


def create(name: str, *, num_frames: int, img_size: int, pretrained: str | None = None,
           **kw) -> nn.Module:
    """Build a registered encoder; checks the interface so a plugin's mistake shows here."""
    if kw.get("variant", "paper") not in VARIANTS:
        raise ValueError(f"unknown variant {kw['variant']!r}; valid: {', '.join(VARIANTS)}")
    model = backbone_info(name).factory(num_frames=num_frames, img_size=img_size,
                                        pretrained=pretrained, **kw)
    if not isinstance(getattr(model, "embed_dim", None), int):
        raise TypeError(f"backbone {name!r} must expose an integer `embed_dim` attribute")
    return model
