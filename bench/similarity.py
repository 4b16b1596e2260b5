"""Similarities of encoder embeddings: ``sim(u [B, D]) -> [B, B]`` with values in (0, 1].

The contrastive terms take ``log s_ij``, so a similarity must map into (0, 1]. Built-ins:

* ``cos``: ``(1 + cos(u_i, u_j)) / 2``;
* ``l2``:  ``1 - ||û_i - û_j|| / 2`` on unit vectors (the paper's "l2Sim"); the distance is a
  square root clamped away from 0, so identical embeddings give a zero (not NaN) gradient;

both clamped at ``SIM_FLOOR``. The softmax-based losses (RnC, y-aware, SupCon) read a
similarity's ``logit(u)`` when it has one (built-ins: the cosine, minus the l2 distance)
and ``log sim(u)`` otherwise. Plugins register in the entry-point group
``learner_bench.similarities``; their output is checked at every call (shape, range),
naming the plugin, because a value outside (0, 1] would silently poison the log.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.plugins import SIMILARITIES, PluginError

SIM_FLOOR = 1e-4


def _unit(u: torch.Tensor) -> torch.Tensor:
    return F.normalize(u.float(), dim=1)


def _l2_distance(z: torch.Tensor) -> torch.Tensor:
    return (2.0 - 2.0 * (z @ z.T)).clamp_min(1e-12).sqrt()


@SIMILARITIES.register("cos")
def cos(u: torch.Tensor) -> torch.Tensor:
    z = _unit(u)
    return ((1.0 + z @ z.T) / 2.0).clamp(SIM_FLOOR, 1.0)


def _cos_logit(u: torch.Tensor) -> torch.Tensor:
    z = _unit(u)
    return z @ z.T


cos.label, cos.logit = "cosSim", _cos_logit


@SIMILARITIES.register("l2")
def l2(u: torch.Tensor) -> torch.Tensor:
    return (1.0 - _l2_distance(_unit(u)) / 2.0).clamp(SIM_FLOOR, 1.0)


l2.label, l2.logit = "l2Sim", lambda u: -_l2_distance(_unit(u))


def similarity(u: torch.Tensor, name: str) -> torch.Tensor:
    """``[B, D] -> [B, B]`` in (0, 1] by the registered similarity ``name``."""
    entry = SIMILARITIES.get(name)
    s = entry.obj(u)
    if entry.source == "plugin":
        _check_plugin_output(entry, u, s)
    return s


def logits(u: torch.Tensor, name: str) -> torch.Tensor:
    """The softmax logit of a similarity (before the temperature)."""
    entry = SIMILARITIES.get(name)
    logit = getattr(entry.obj, "logit", None)
    return logit(u) if logit is not None else similarity(u, name).log()


def label(name: str) -> str:
    """The table label of a similarity (``cosSim``; a plugin's ``sim.label`` or its name)."""
    return getattr(SIMILARITIES.get(name).obj, "label", name)


def _check_plugin_output(entry, u: torch.Tensor, s) -> None:
    b = u.shape[0]
    if not isinstance(s, torch.Tensor) or tuple(s.shape) != (b, b):
        shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise PluginError(f"similarity {entry.describe()} returned {shape} for {b} embeddings; "
                          f"it must return a [{b}, {b}] tensor")
    if not bool(((s > 0) & (s <= 1)).all()):  # NaN fails too
        bad = s[~((s > 0) & (s <= 1))].flatten()[0].item()
        raise PluginError(f"similarity {entry.describe()} returned {bad!r}; values must lie in (0, 1] "
                          f"(the contrastive terms take their log)")
