"""Data-source registry and source specs.

A source spec is ``NAME`` or ``NAME:ARG``: ``synthetic-lus``, ``synthetic-lus:n_patients=40,seed=1``,
``lus-manifest:/data/lus/manifest.csv``, ``adni:/data/ADNIMERGE.csv,/data/nifti``,
``longitudinal:/data/knee.csv,delta=1``.

The factory contract (built-ins and plugins of the entry-point group
``learner_bench.sources`` alike): ``factory(arg, on_bad_input="fail"|"skip", **defaults)``
returns a validated :class:`~bench.data.scans.LongitudinalDataset` whose ``rule`` is the
cohort's pair-label rule; ``defaults`` are preset-level size hints (``n_patients``, …) that
a source may use or ignore. A factory whose cohort has no natural rule sets
``factory.needs_rule = True``: the spec must then give one. Every source takes the rule
options ``bins=E1|E2|…``, ``delta=X`` and ``higher_is_better=true|false`` among the comma-
separated items of its ARG; the suite strips them before calling the factory and applies
them to the dataset (:func:`bench.data.pairs.rule_from_options`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from bench.data.pairs import RULE_OPTIONS, DeltaRule, rule_from_options
from bench.data.scans import LongitudinalDataset
from bench.plugins import SOURCES

SourceFactory = Callable[..., LongitudinalDataset]
# The paper's two datasets: the source used when the user names none, and the kind of data
# the paper's published numbers are about.
DEFAULT_SOURCES = {"lus": "synthetic-lus", "adni": "synthetic-mri"}
PAPER_KINDS = {"lus": "lus", "adni": "mri"}


def register_source(name: str):
    return SOURCES.register(name)


def list_sources() -> list[str]:
    return SOURCES.names()


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


def split_rule_options(arg: str | None) -> tuple[str | None, dict[str, str]]:
    """The source's own ARG and the pair-rule options among its comma-separated items."""
    own, rule = [], {}
    for item in (arg or "").split(","):
        key, eq, value = item.partition("=")
        if eq and key.strip() in RULE_OPTIONS:
            rule[key.strip()] = value.strip()
        elif item:
            own.append(item)
    return (",".join(own) or None), rule


def source_module(name: str):
    """The module implementing a source (real sources also expose ``validate``)."""
    import sys
    return sys.modules.get(SOURCES.get(name).obj.__module__)


def check_spec(spec: str) -> None:
    """What a spec says without loading data: a known source, well-formed rule options, and a
    rule where the source needs one (``ValueError``, one line)."""
    name, arg = parse_spec(spec)
    _, options = split_rule_options(arg)
    needs_rule = getattr(SOURCES.get(name).obj, "needs_rule", False)
    # a source with a rule of its own: only the options themselves are checked here
    rule_from_options(options, None if needs_rule else DeltaRule(1.0), spec)


def load_dataset(spec: str, *, on_bad_input: str = "fail", **defaults) -> LongitudinalDataset:
    check_spec(spec)
    name, arg = parse_spec(spec)
    own, options = split_rule_options(arg)
    dataset = SOURCES.get(name).obj(own, on_bad_input=on_bad_input, **defaults)
    rule = rule_from_options(options, dataset.rule, spec)
    if isinstance(rule, DeltaRule) and not rule.coarse:  # SupCon's classes: the score's quartiles
        quartiles = np.unique(np.quantile(dataset.scans["score"].to_numpy(float), [0.25, 0.5, 0.75]))
        rule = replace(rule, coarse=tuple(float(q) for q in quartiles))
    dataset.rule = rule
    return dataset
