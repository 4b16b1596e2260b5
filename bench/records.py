"""Run records: the typed result of one cell, written and read only here.

A record is strict JSON (no NaN/Infinity: non-finite numbers are written as ``null``)
with a schema version; the test-scan embeddings of a finished cell sit beside it as
``.npz``. Both are written atomically with the folder's permissions (:mod:`bench.files`).

Anything that cannot be read as a record of this schema raises :class:`RecordError` with
one line naming the file and what to do, never a bare ``KeyError``. A record carries the
sha256 of its own content (``checksum``), so one edited by hand after it was written is
refused like a corrupt one instead of feeding a table; records written before checksums
existed have none and are read as they are (the committed reference results among them).
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

import numpy as np

from bench.files import atomic_write, strict_json, write_json_atomic
from bench.grid import Row

SCHEMA_VERSION = 4
# 2: the same parts, without data.pair_rule / data.heldout_patients; 3: without fold / folds (no
# cross-validation), which code reading schema 3 would drop, mistaking a fold for a seed's cell
READABLE_SCHEMAS = (2, 3, 4)
REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("torch", "torchvision", "timm", "transformers", "numpy", "scikit-learn", "learner-bench")


class RecordError(ValueError):
    """A record or sidecar that cannot be used; the message is one line naming the file."""

    def __init__(self, path: Path, reason: str, remedy: str = "the cell is rerun"):
        super().__init__(f"{path}: {reason}; {remedy}")
        self.path, self.reason, self.remedy = path, reason, remedy

    def __reduce__(self):  # crosses process boundaries intact
        return type(self), (self.path, self.reason, self.remedy)


@dataclass
class Pretraining:
    """The pretraining part: the kept epoch (lowest validation MSE) and every epoch's losses
    (``loss``, ``mse``, ``contrastive``, ``val_mse``, ``seconds``, ``train_seconds``)."""

    best_epoch: int
    best_val_mse: float | None
    history: list[dict] = field(default_factory=list)
    resumed_at_epoch: int | None = None


@dataclass
class Downstream:
    """The pair classifier's kept epoch (best validation macro-F1); for the oracle row, the
    cohort its classifier learned from."""

    best_epoch: int
    best_val_macro_f1: float | None
    oracle_trained_on: dict | None = None


@dataclass
class ScoredPairs:
    """Every test pair's true label, prediction and patient (patients resample in bootstraps)."""

    true: list[int]
    pred: list[int]
    patient: list[str]


@dataclass
class Timing:
    wall_seconds: float
    data_seconds: float
    peak_memory_mb: float
    peak_memory_scope: str
    pretrain_seconds: float | None = None
    train_clips_per_second: float | None = None


@dataclass
class DataPart:
    """What the cell's data were: source, kind and score, pair rule, sizes, the held-out
    cohort, per-split patients, scans and pair labels, what a skip policy dropped, and the
    train-split score standardisation."""

    source: str
    kind: str
    score: str
    patients: int
    scans: int
    split_patients: dict[str, int]
    split_scans: dict[str, int]
    pairs: dict[str, dict[str, int]]
    score_standardisation: dict[str, float]
    skipped: list[str] = field(default_factory=list)
    pair_rule: str | None = None
    heldout_patients: int = 0


PARTS = {"pretrain": Pretraining, "downstream": Downstream, "test_pairs": ScoredPairs, "timing": Timing,
         "data": DataPart}


@dataclass
class RunRecord:
    """What one cell produced. ``status`` is ``finished`` (metrics present) or ``failed``
    (``error`` says why; no metrics). ``code_version`` names the result-affecting code that
    made it (:mod:`bench.code_version`), ``git_commit`` the checkout it ran from."""

    run_id: str
    grid: str
    dataset: str
    backbone: str
    loss: str
    sim: str
    seed: int
    preset: str
    fingerprint: str
    code_version: str
    status: Literal["finished", "failed"]
    settings: dict
    numerics: dict
    device: str
    git_commit: str
    finished_at: str
    metrics: dict | None = None
    error: str | None = None
    test_pairs: ScoredPairs | None = None
    downstream: Downstream | None = None
    pretrain: Pretraining | None = None
    data: DataPart | None = None
    pretrained: str = "none"
    timing: Timing | None = None
    versions: dict = field(default_factory=dict)
    embeddings_file: str | None = None
    worker: str = ""                    # host:pid of the process that ran the cell
    fold: int | None = None             # cross-validation: the fold tested (seed = repeat), of ``folds``
    folds: int | None = None
    schema: int = SCHEMA_VERSION

    @property
    def row(self) -> Row:
        return Row(self.dataset, self.backbone, self.loss, self.sim)

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def metric(self, name: str) -> float:
        """A metric as a float (``nan`` where the record has none)."""
        v = (self.metrics or {}).get(name)
        return float("nan") if v is None else float(v)


def content_checksum(obj: dict) -> str:
    """sha256 of a record's strict JSON without its ``checksum`` field (keys sorted, so it
    does not depend on the layout of the file)."""
    body = {k: v for k, v in strict_json(obj).items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


def save_record(path: Path, rec: RunRecord, embeddings: dict[str, np.ndarray] | None = None) -> None:
    """Write the embedding sidecar (``.npz``) first, then the JSON that marks the cell done."""
    path = Path(path)
    if embeddings is not None:
        npz = path.with_suffix(".npz")
        atomic_write(npz, lambda f: np.savez_compressed(f, **embeddings))
        rec.embeddings_file = npz.name
    obj = asdict(rec)
    write_json_atomic(path, {**obj, "checksum": content_checksum(obj)})


def read_record(path: Path) -> RunRecord | None:
    """The record at ``path``; None if there is none; :class:`RecordError` if unusable."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(path, f"cannot be read ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise RecordError(path, "is not a run record (not a JSON object)")
    if "checksum" in raw and raw["checksum"] != content_checksum(raw):
        raise RecordError(path, "does not match its checksum (edited by hand since it was written?)")
    if raw.get("schema") not in READABLE_SCHEMAS:
        raise RecordError(path, f"has record schema {raw.get('schema', 1)!r}, this code reads schema(s) "
                                f"{', '.join(map(str, READABLE_SCHEMAS))}")
    values = _typed(RunRecord, raw, path, "")
    for name, part in PARTS.items():
        if isinstance(values.get(name), dict):
            values[name] = part(**_typed(part, values[name], path, f"{name}."))
    rec = RunRecord(**values)
    if rec.status not in ("finished", "failed") or (rec.finished and not isinstance(rec.metrics, dict)):
        raise RecordError(path, f"has status {rec.status!r} without metrics")
    return rec


def _typed(cls, raw: dict, path: Path, where: str) -> dict:
    """The keys of ``raw`` that ``cls`` has; a missing required one is a :class:`RecordError`."""
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    if missing := sorted(required - set(raw)):
        raise RecordError(path, f"lacks field(s) {', '.join(where + m for m in missing)}")
    return {k: v for k, v in raw.items() if k in names}


def read_records(runs: Path, skip=None) -> list[RunRecord]:
    """Every record in a ``runs/`` folder, by file name. A file that is not a usable record
    raises :class:`RecordError`, or with ``skip(error)`` given is passed to it and left out."""
    records = []
    for path in sorted(Path(runs).glob("*.json")):
        try:
            rec = read_record(path)
        except RecordError as exc:
            if skip is None:
                raise
            skip(exc)
            continue
        if rec is not None:
            records.append(rec)
    return records


def load_embeddings(json_path: Path) -> dict[str, np.ndarray] | None:
    """The test-scan embeddings beside a record; None if absent; RecordError if corrupt."""
    npz = Path(json_path).with_suffix(".npz")
    if not npz.exists():
        return None
    try:
        with np.load(npz, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, pickle and format errors all mean: unusable file
        raise RecordError(npz, f"is not a readable embedding file ({type(exc).__name__})",
                          "it is left out of Figure 1; delete it and rerun the cell to rebuild it") from None


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str:
    """HEAD of the checkout this code runs from, with ``-dirty`` for uncommitted changes to
    it (outputs under ``results/``, which a sweep itself rewrites, do not count)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
