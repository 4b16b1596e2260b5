"""Data-source registry and source specs.

A source spec is ``NAME`` or ``NAME:ARG``: ``synthetic-lus``, ``synthetic-lus:n_patients=40,seed=1``,
``lus-manifest:/data/lus/manifest.csv``, ``adni:/data/ADNIMERGE.csv,/data/nifti``. A
source factory is called as ``factory(arg, on_bad_input=..., **defaults)`` where
``defaults`` are preset-level size hints (only synthetic sources use them) and returns a
validated :class:`~bench.data.scans.LongitudinalDataset`.
"""
from __future__ import annotations

import importlib
from typing import Callable

from bench.data.scans import LongitudinalDataset

SourceFactory = Callable[..., LongitudinalDataset]
_SOURCES: dict[str, SourceFactory] = {}
# Modules that register sources; imported lazily so optional dependencies stay optional.
_SOURCE_MODULES = {
    "synthetic-lus": "bench.data.synthetic_lus",
    "synthetic-mri": "bench.data.synthetic_mri",
    "lus-manifest": "bench.data.lus_manifest",
    "adni": "bench.data.adni",
}
# The paper's two datasets and the source used when the user names none.
DEFAULT_SOURCES = {"lus": "synthetic-lus", "adni": "synthetic-mri"}


def register_source(name: str):
    def wrap(factory: SourceFactory) -> SourceFactory:
        _SOURCES[name] = factory
        return factory
    return wrap


def list_sources() -> list[str]:
    return sorted(set(_SOURCES) | set(_SOURCE_MODULES))


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, _, arg = spec.partition(":")
    if name not in list_sources():
        raise ValueError(f"unknown data source {name!r}; valid: {', '.join(list_sources())}")
    return name, (arg or None)


def parse_kv(arg: str | None) -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}`` with a clear error on a malformed item."""
    out: dict[str, str] = {}
    for item in filter(None, (arg or "").split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"expected key=value in source options, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def source_module(name: str):
    """The module implementing a built-in source (real sources also expose ``validate``)."""
    return importlib.import_module(_SOURCE_MODULES[name]) if name in _SOURCE_MODULES else None


def load_dataset(spec: str, *, on_bad_input: str = "fail", **defaults) -> LongitudinalDataset:
    name, arg = parse_spec(spec)
    if name not in _SOURCES:
        importlib.import_module(_SOURCE_MODULES[name])
    return _SOURCES[name](arg, on_bad_input=on_bad_input, **defaults)
