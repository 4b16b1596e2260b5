"""Rows of ``--list-backbones``: what each registered encoder is and how big it is.

Sizes come from building each model on the ``meta`` device — shapes without storage, so
the 121M-parameter TimeSformer costs no memory and no init time — at the backbone's
default frames and size.
"""
from __future__ import annotations

import torch

from backbones.registry import VARIANTS, backbone_info, create, list_backbones


def model_size(name: str, variant: str = "paper", num_frames: int | None = None,
               img_size: int | None = None) -> tuple[int, int]:
    """``(parameter count, embed_dim)`` of a randomly initialised model (defaults: the backbone's geometry).

    A third-party model that cannot be built on the meta device is built on the CPU instead.
    """
    info = backbone_info(name)
    kw = dict(num_frames=num_frames or info.default_frames, img_size=img_size or info.default_size, variant=variant)
    try:
        with torch.device("meta"):
            model = create(name, **kw)
    except (NotImplementedError, RuntimeError):
        model = create(name, **kw)
    return sum(p.numel() for p in model.parameters()), model.embed_dim


def backbone_rows() -> list[dict]:
    """One dict per registered backbone, sorted by name (plugins included)."""
    rows = []
    for name in list_backbones():
        info = backbone_info(name)
        row = dict(name=name, family=info.family, source=info.source, paper_label=info.paper_label or "",
                   default_frames=info.default_frames, default_size=info.default_size)
        for variant in VARIANTS:
            row[f"params_{variant}"], row[f"embed_dim_{variant}"] = model_size(name, variant)
        rows.append(row)
    return rows
