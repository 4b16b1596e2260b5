"""The encoder registry: built-in families, third-party entry points, optional zoos.

An encoder maps ``float[B, T, C, H, W]`` to ``float[B, D]`` and exposes ``embed_dim``.
Factories are registered under a name and called as
``factory(num_frames=..., img_size=..., pretrained=None | path, variant="paper" | "tiny")``:
``paper`` is the full-size model of the paper, ``tiny`` a few-layer, narrow model of the
same family that trains on a CPU in seconds (the preset chooses). A plugin without a tiny
variant simply ignores ``variant`` through ``**kw``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable, Protocol

import torch
from torch import nn

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


_REGISTRY: dict[str, BackboneInfo] = {}
_discovered = False

# Modules of this package that register built-in families when imported.
_BUILTIN_MODULES = ("backbones.tsm", "backbones.resnet2d", "backbones.timm_frame", "backbones.hf_video",
                    "backbones.pytorchvideo_zoo")


def register_backbone(name: str, *, family: str | None = None, source: str = "built-in",
                      default_frames: int = 16, default_size: int = 224,
                      paper_label: str | None = None):
    """Decorator registering ``factory`` under ``name`` (a name can be taken only once)."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"backbone {name!r} is already registered by {_REGISTRY[name].factory.__module__}")
        _REGISTRY[name] = BackboneInfo(name, factory, family or name, source, default_frames,
                                       default_size, paper_label)
        return factory

    return wrap


def _discover() -> None:
    """Import built-ins, then third-party entry points (a broken plugin fails loudly, naming it)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY and _REGISTRY[ep.name].source != "plugin":
            raise RuntimeError(f"backbone plugin {ep.name!r} ({ep.value}) clashes with the built-in "
                               f"backbone of that name; rename it in the plugin's entry point")
        if ep.name in _REGISTRY:  # the same distribution seen twice on sys.path
            continue
        try:
            factory = ep.load()
        except Exception as exc:  # a plugin's import error must name the plugin
            raise RuntimeError(f"backbone plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        info = getattr(factory, "backbone_info", {})
        _REGISTRY[ep.name] = BackboneInfo(ep.name, factory, info.get("family", ep.name), "plugin",
                                          info.get("default_frames", 16), info.get("default_size", 224),
                                          info.get("paper_label"))


def refresh() -> None:
    """Forget discovered plugins so the next lookup scans entry points again.

    Discovery runs once per process; call this after installing (or removing) a plugin
    in a running interpreter — e.g. a test that pip-installs one onto ``sys.path``.
    """
    global _discovered
    for name in [name for name, info in _REGISTRY.items() if info.source == "plugin"]:
        del _REGISTRY[name]
    _discovered = False


def list_backbones() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def backbone_info(name: str) -> BackboneInfo:
    _discover()
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; valid: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


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
