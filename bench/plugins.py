"""One registry shape for every open axis of the ablation: built-ins and pip-installed plugins.

A registry maps a name to an object (a loss term, a similarity, a data-source factory).
Built-ins register with :meth:`Registry.register` when their module is imported (lazily:
optional dependencies stay optional); third-party packages declare an entry point in the
registry's group (``name = "pkg.module:object"``) and are found without any change to this
repository. A name can be taken once (a plugin cannot shadow a built-in), a plugin that
fails to import is reported naming it, and a plugin's module is part of its cells' code
version (:meth:`bench.cell.Cell.code_version`), as for backbones.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable


class PluginError(RuntimeError):
    """A plugin broke its contract; the message names the plugin and what it did."""


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    source: str   # "built-in" | "plugin"
    origin: str   # where it comes from: a module, or the entry point's "pkg.module:object"

    def describe(self) -> str:
        """``name (plugin pkg.mod:obj)`` — how errors name the thing that failed."""
        return f"{self.name} ({self.source} {self.origin})"


class Registry:
    """Names of one axis (``kind``: "loss", "similarity", "data source").

    ``homes`` are the modules whose import registers the built-ins (imported at the first
    lookup); ``lazy`` instead maps each built-in name to its own module, so a name is known
    (listed, validated) before its optional dependencies load. ``adapt(name, obj)`` turns what
    a plugin's entry point loads into what the registry holds (default: the object itself).
    """

    def __init__(self, kind: str, group: str, lazy: dict[str, str] | None = None, homes: tuple[str, ...] = (),
                 adapt: Callable[[str, Any], Any] | None = None):
        self.kind, self.group, self.lazy, self.homes, self.adapt = kind, group, dict(lazy or {}), homes, adapt
        self._entries: dict[str, Entry] = {}
        self._discovered = False

    def register(self, name: str, obj: Any = None, origin: str | None = None):
        """Register a built-in (usable as a decorator): ``@REGISTRY.register("cl")``; ``origin``
        (default: the object's module) says where it comes from."""
        def wrap(value):
            known = self._entries.get(name)
            if known is not None and known.obj is not value and known.obj != value:
                raise ValueError(f"{self.kind} {name!r} is already registered by {known.origin}")
            self._entries[name] = Entry(name, value, "built-in", origin or getattr(value, "__module__", "?"))
            return value
        return wrap if obj is None else wrap(obj)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for module in self.homes:
            importlib.import_module(module)  # registers its built-ins
        for ep in entry_points(group=self.group):
            if ep.name in self._entries and self._entries[ep.name].source == "plugin":
                continue  # the same distribution seen twice on sys.path
            if ep.name in self._entries or ep.name in self.lazy:
                raise PluginError(f"{self.kind} plugin {ep.name!r} ({ep.value}) clashes with the built-in "
                                  f"{self.kind} of that name; rename it in the plugin's entry point")
            try:
                obj = ep.load()
            except Exception as exc:  # a plugin's import error must name the plugin
                raise PluginError(f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            obj = self.adapt(ep.name, obj) if self.adapt else obj
            self._entries[ep.name] = Entry(ep.name, obj, "plugin", ep.value)

    def names(self) -> list[str]:
        """Built-ins in the order they are declared, then plugins by name."""
        self._discover()
        builtin = [n for n, e in self._entries.items() if e.source == "built-in"]
        plugins = sorted(n for n, e in self._entries.items() if e.source == "plugin")
        return list(dict.fromkeys([*self.lazy, *builtin, *plugins]))

    def get(self, name: str) -> Entry:
        """The entry of ``name``; an unknown name is a ``KeyError`` listing the valid ones."""
        self._discover()
        if name not in self._entries and name in self.lazy:
            importlib.import_module(self.lazy[name])
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def entries(self) -> list[Entry]:
        return [self.get(name) for name in self.names()]

    def refresh(self) -> None:
        """Forget plugins so the next lookup reads the entry points again (after a pip install
        into a running interpreter, as the tests do)."""
        self._entries = {k: e for k, e in self._entries.items() if e.source != "plugin"}
        self._discovered = False


# The open axes (the backbones' registry, with what it knows of each encoder, is
# backbones.registry.BACKBONES). Declared here, apart from the code they name, so that a cell
# can name its plugins without importing the losses themselves.
LOSSES = Registry("loss", "learner_bench.losses", homes=("bench.losses",))
SIMILARITIES = Registry("similarity", "learner_bench.similarities", homes=("bench.similarity",))
SOURCES = Registry("data source", "learner_bench.sources", lazy={
    "synthetic-lus": "bench.data.synthetic_lus",
    "synthetic-mri": "bench.data.synthetic_mri",
    "lus-manifest": "bench.data.lus_manifest",
    "adni": "bench.data.adni",
    "longitudinal": "bench.data.longitudinal",
})  # one module per source, so that optional dependencies stay optional
