"""A cell's identity, in one place: what it runs and everything its numbers depend on.

A :class:`Cell` is a frozen value: the table row and seed, the preset's settings, the data
(source spec and content key), the weights, the skip policy and the :class:`Numerics`; under
cross-validation also its fold of ``folds`` (the seed is then the repeat). A cell without a
fold has the same settings, fingerprint and ``run_id`` as before folds existed.
Its ``run_id`` names the record file, its :meth:`Cell.fingerprint` hashes the settings
(other settings, other cells), its :meth:`Cell.code_version` names the result-affecting
code that runs it now (this package's plus any plugin it uses), and a record made by
other code is stale (:meth:`Cell.is_stale`). The sweep builds cells, executors and the
runner run them, records store their settings and :meth:`Cell.from_record` reads them back
— nothing else computes identity.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import backbones
from bench.code_version import code_version, source_digest
from bench.data.sources import parse_spec
from bench.grid import ANY, Row, is_reference
from bench.plugins import LOSSES, SIMILARITIES, SOURCES
from bench.presets import Preset

# The result-affecting code this process imported (hashed once, at import).
CODE_VERSION = code_version()


def _module_digest(obj) -> str:
    """8 hex digits of the code (syntax tree) of the module defining a plugin's object."""
    return source_digest(Path(inspect.getsourcefile(obj)).read_text())[:8]


@dataclass(frozen=True)
class Numerics:
    """What decides the floating-point results besides code and settings: bf16 autocast
    (CUDA only), torch.compile, and on a CPU the thread count (reductions split by thread
    sum in another order). The device itself is not part of it."""

    device_type: str
    precision: str
    compile: bool
    cpu_threads: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Cell:
    grid: str
    row: Row
    seed: int
    preset: Preset
    data_spec: str
    data_key: str | None
    numerics: Numerics
    weights: str | None = None
    weights_file: tuple[int, int] | None = None  # size and mtime of the weights, when a file
    on_bad_input: str = "fail"
    fold: int | None = None   # cross-validation: the fold tested, of ``folds``; None: the seed's split
    folds: int | None = None

    def settings(self) -> dict:
        """What the result depends on besides row, seed and code: the fingerprint's input,
        stored in the record."""
        out = {"preset": self.preset.to_dict(), "data": self.data_spec, "data_key": self.data_key,
               "pretrained": self.weights, "on_bad_input": self.on_bad_input, "numerics": self.numerics.to_dict()}
        if self.weights_file:
            out["pretrained_file"] = list(self.weights_file)
        if self.fold is not None:
            out["cv"] = {"fold": self.fold, "folds": self.folds}
        return out

    def fingerprint(self) -> str:
        """8 hex digits of :meth:`settings`, less the preset's default number of seeds: it says
        which cells a sweep runs, not what one computes (a preset that changes it keeps its cells)."""
        identity = self.settings()
        identity["preset"] = {k: v for k, v in identity["preset"].items() if k != "seeds"}
        return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]

    @property
    def run_id(self) -> str:
        r = self.row
        fold = "" if self.fold is None else f"-f{self.fold}"
        return f"{self.preset.name}-{r.dataset}-{r.backbone}-{r.loss}-{r.sim}-s{self.seed}{fold}-{self.fingerprint()}"

    def code_version(self) -> str:
        """This package's code version, plus the module digest of each plugin the cell uses
        (backbone, loss, similarity, data source): editing a plugin makes its cells stale and
        nothing else's. ``KeyError`` when a plugin it names is not installed."""
        row, plugins = self.row, []
        if row.backbone != ANY and backbones.backbone_info(row.backbone).source == "plugin":
            plugins.append(backbones.backbone_info(row.backbone).factory)
        entries = [] if is_reference(row.loss) else [LOSSES.get(row.loss), SIMILARITIES.get(row.sim)]
        entries.append(SOURCES.get(parse_spec(self.data_spec)[0]))
        plugins += [e.obj for e in entries if e.source == "plugin"]
        return "+".join([CODE_VERSION, *(_module_digest(p) for p in plugins)])

    def is_stale(self, record) -> bool:
        """The record was made by other result-affecting code than this cell runs now (or by a
        plugin no longer installed)."""
        try:
            return record.code_version != self.code_version()
        except (KeyError, ValueError):
            return True

    @classmethod
    def from_record(cls, record) -> "Cell":
        """The cell a record was made by, read back from what it stored."""
        s, cv = record.settings, record.settings.get("cv", {})
        return cls(grid=record.grid, row=record.row, seed=record.seed, preset=Preset(**s["preset"]),
                   data_spec=s["data"], data_key=s["data_key"], numerics=Numerics(**s["numerics"]),
                   weights=s["pretrained"], weights_file=tuple(s["pretrained_file"]) if "pretrained_file" in s else None,
                   on_bad_input=s["on_bad_input"], fold=cv.get("fold"), folds=cv.get("folds"))


def record_is_stale(record) -> bool:
    """Whether a record was made by other code than its cell runs now; a record whose settings
    this code cannot read back (an older schema's preset) is stale."""
    try:
        cell = Cell.from_record(record)
    except (TypeError, KeyError):
        return True
    return cell.is_stale(record)
