"""Presets: one object holding every setting a run depends on.

``paper`` follows Table 2 of the paper (batch 8, Adam, lr 1e-3, 100 epochs, cosine
annealing) with full-size backbones at 16 x 224²; ``quick`` keeps the protocol but uses the
tiny backbone variants at 8 x 64² and few epochs so a CPU finishes a table in tens of
minutes; ``smoke`` is tiny everything (seconds per cell) for tests and CI.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from bench.limits import range_problem


@dataclass(frozen=True)
class Preset:
    name: str
    variant: str                 # backbone variant: "paper" | "tiny"
    img_size: int
    frames: int                  # frames the model sees
    cache_frames: int            # frames kept per clip; training samples one per stride
    epochs: int
    seeds: int                   # default number of seeds
    batch_size: int = 8
    lr: float = 1e-3
    head_hidden: int = 256       # MLP regression head
    lam: float = 1.0             # weight of the contrastive term
    eps: float = 0.1             # wCL epsilon, on standardised scores
    ds_epochs: int = 200         # downstream classifier epochs
    ds_lr: float = 1e-3
    ds_hidden: int = 128
    ds_batch_size: int = 32
    # The oracle reference's generated classifier cohort (bench.references): its test macro-F1 plateaus by
    # 5,000 patients (20,000, or twice the epochs, move it < 0.01 on LUS label_noise 0.2 and MRI default).
    oracle_patients: int = 5000
    data_defaults: dict = field(default_factory=dict)  # size hints for synthetic sources

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **kw) -> "Preset":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


PRESETS = {
    "paper": Preset("paper", "paper", img_size=224, frames=16, cache_frames=32, epochs=100, seeds=5),
    "quick": Preset("quick", "tiny", img_size=64, frames=8, cache_frames=16, epochs=15, seeds=5,
                    ds_epochs=150),
    "smoke": Preset("smoke", "tiny", img_size=32, frames=4, cache_frames=8, epochs=2, seeds=1,
                    ds_epochs=30, oracle_patients=300, data_defaults={"n_patients": 24, "test_patients": 8}),
}


# What ``--set KEY=VALUE`` may change, with the type it takes (the preset's name and the
# synthetic data's size hints are not settings of a run).
SETTABLE = {f.name: {"int": int, "float": float, "str": str}[f.type] for f in fields(Preset)
            if f.name not in ("name", "data_defaults")}
_POSITIVE = {"lr", "ds_lr", "eps"}
# Integer settings with other bounds than ">= 1": a contrastive batch needs a positive and a
# negative; below 16 pixels a frame is less than one ViT patch, above 1024 no cache fits.
_INT_RANGES = {"batch_size": (2, None), "img_size": (16, 1024)}
_CHOICES = {"variant": ("paper", "tiny")}


def parse_overrides(items: dict[str, object]) -> dict[str, object]:
    """Typed, validated preset overrides from ``KEY -> value`` (strings from the command line
    or typed values from a config file); a bad key or value raises ``ValueError`` with one
    line naming it and what is valid."""
    out = {}
    for key, raw in items.items():
        if key not in SETTABLE:
            raise ValueError(f"unknown setting {key!r}; valid: {', '.join(SETTABLE)}")
        kind = SETTABLE[key]
        try:
            if isinstance(raw, bool) or (kind is int and isinstance(raw, float)):
                raise ValueError
            value = kind(raw)
        except (TypeError, ValueError):
            expected = {int: "an integer", float: "a number", str: "text"}[kind]
            raise ValueError(f"setting {key}={raw!r}: expected {expected}") from None
        if kind is int and (problem := range_problem(value, *_INT_RANGES.get(key, (1, None)))):
            raise ValueError(f"setting {key}={value}: {problem}")
        if kind is float and not math.isfinite(value):
            raise ValueError(f"setting {key}={value}: must be a finite number")
        if kind is float and (value <= 0 if key in _POSITIVE else value < 0):
            raise ValueError(f"setting {key}={value}: must be {'> 0' if key in _POSITIVE else '>= 0'}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ValueError(f"setting {key}={value!r}; valid: {', '.join(_CHOICES[key])}")
        out[key] = value
    return out


def resolve(name: str, overrides: dict[str, object]) -> Preset:
    """The preset ``name`` with validated overrides (frames must divide cache_frames)."""
    preset = get_preset(name).with_overrides(**parse_overrides(overrides))
    if preset.cache_frames % preset.frames:
        raise ValueError(f"settings frames={preset.frames}, cache_frames={preset.cache_frames}: cache_frames "
                         "must be a multiple of frames")
    return preset


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]
