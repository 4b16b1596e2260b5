"""The Python API for sweeps: what the CLI, the tests and notebooks call.

    from bench import sweep
    result = sweep.run(sweep.SweepOptions(grid="table3", preset="smoke", out="results"))

:func:`plan` validates every setting (a bad one raises :class:`UsageError`, one line) and
the data, checks the output and cache folders, decodes the clips and computes each cell's
fingerprint, so every caller names a cell the same way; :func:`run` runs the cells that
are not finished and collects the records. A finished cell made by other result-affecting
code is *stale*: it is named, and recomputed with ``rerun_stale`` or kept (the tables mark
its row). A failed cell is retried with ``retry_failed`` or when the code changed.
The options, their flags and their checks are declared in :mod:`bench.options`.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from bench.data.scans import DataError, LongitudinalDataset
from bench.data.store import DataStore
from bench.cell import Cell
from bench.grid import GRIDS, Row, grid_rows, select, validate_axis
from bench.limits import cpu_cores, setting_problems
from bench.options import SweepOptions, UsageError, check_options
from bench.presets import Preset, resolve
from bench.records import RecordError, RunRecord, read_record
from bench.grid import ANY, with_references
from bench.runner import RunContext


@dataclass
class SweepPlan:
    options: SweepOptions
    ctx: RunContext
    rows: list[Row]
    seeds: list[int]
    specs: list[Cell]   # seed by seed, each seed in table order: a sweep stopped early fills every row
    store: DataStore
    datasets: dict[str, LongitudinalDataset]
    jobs_per_gpu: int = 1  # resolved (``auto`` measured)
    notes: list[str] = field(default_factory=list)  # warnings for the console: clamped sizes, thin splits


@dataclass
class CellStates:
    """What the results folder holds for a plan's cells before anything runs."""

    finished: dict[str, RunRecord] = field(default_factory=dict)  # by this code
    stale: dict[str, RunRecord] = field(default_factory=dict)     # finished by other code
    failed: dict[str, RunRecord] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)      # run_id -> one-line reason


@dataclass
class SweepResult:
    records: list[RunRecord]   # every record of the plan's cells after the sweep, in grid order
    ran: int
    skipped: int               # finished before this call (stale ones kept included)
    failed: list[tuple[str, str]]            # (run_id, error) of cells that failed now
    stale: list[str]                         # run_ids made by other result-affecting code
    stale_rerun: bool
    claimed_elsewhere: list[tuple[str, str]]  # (run_id, by whom) left to another sweep
    unreadable: dict[str, str]


def folder_path(flag: str, path: Path) -> None:
    """``path`` is a folder or can become one: no part of it is a file."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, not a folder")


def writable_dir(flag: str, path: Path, need_bytes: int) -> None:
    """``path`` is (or can be made) a folder we can write, with ``need_bytes`` free."""
    folder_path(flag, path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    free = shutil.disk_usage(path).free
    if free < need_bytes:
        raise UsageError(f"{flag} {path}: {free / 2**20:.0f} MiB free, a cell needs about "
                         f"{need_bytes / 2**20:.0f} MiB")


def cell_bytes(backbone: str, preset: Preset) -> int:
    """Disk a running cell needs: its checkpoint (weights, Adam's two moments, the best
    weights: 4 copies in fp32) plus 16 MiB for the record and embeddings."""
    import backbones
    with torch.device("meta"):
        model = backbones.create(backbone, num_frames=preset.frames, img_size=preset.img_size,
                                 variant=preset.variant)
    return 16 * sum(p.numel() for p in model.parameters()) + 16 * 2**20


def check_datasets(datasets: list[str] | None, data: dict[str, str]) -> None:
    """Dataset names are open: the paper's two (``lus``, ``adni``) have default sources, any
    other name needs ``--data NAME=SOURCE``; a name goes into file names, so it is
    lowercase letters, digits and underscores."""
    from bench.data.sources import DEFAULT_SOURCES
    for name in [*(datasets or []), *data]:
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise UsageError(f"dataset name {name!r}: use lowercase letters, digits and _ (it names files)")
        if name not in DEFAULT_SOURCES and name not in data:
            raise UsageError(f"dataset {name!r} has no default source (the paper's are "
                             f"{', '.join(DEFAULT_SOURCES)}); give one: --data {name}=SOURCE:ARG")


def _data(o: SweepOptions, rows: list[Row], ctx: RunContext, store: DataStore) -> dict[str, LongitudinalDataset]:
    from bench.data.sources import PAPER_KINDS
    out = {}
    for name in dict.fromkeys(r.dataset for r in rows):
        spec = ctx.data_spec(name)
        try:
            out[name] = store.dataset(spec, ctx.on_bad_input, ctx.preset.data_defaults, ctx.cache_dir)
        except DataError:
            raise
        except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
            raise UsageError(f"data source {spec!r} for {name}: {exc.args[0] if exc.args else exc}") from None
        if PAPER_KINDS.get(name, out[name].kind) != out[name].kind:
            raise UsageError(f"--data {name}={spec}: {name!r} is the paper's {PAPER_KINDS[name]} dataset, printed "
                             f"beside its published numbers, but this source gives {out[name].kind} data; give it "
                             f"another name: --datasets NAME --data NAME={spec}")
    return out


def _check_splits(datasets: dict[str, LongitudinalDataset], seeds: list[int], folds: int | None = None) -> list[str]:
    """Every seed's patient split (or every fold of every repeat) can train and score the
    classifier (else UsageError); returns a warning line per dataset whose test splits are thin."""
    from bench.data.check import split_findings
    from bench.data.splits import evaluation_scans
    notes = []
    for name, ds in datasets.items():  # the test pairs of a held-out cohort, if the source has one
        if folds and ds.heldout is not None:
            raise UsageError(f"--folds {folds}: {name} ({ds.name}) brings a held-out cohort of "
                             f"{ds.heldout.n_patients} test patients, which cross-validation would not use; "
                             f"set test_patients=0 (--data {name}=SOURCE:test_patients=0)")
        if folds and folds > ds.n_patients:
            raise UsageError(f"--folds {folds}: {name} ({ds.name}) has {ds.n_patients} patients, and each fold "
                             f"tests at least one: at most --folds {ds.n_patients}")
        problem, warning = split_findings(evaluation_scans(ds), ds.rule, seeds, folds)
        if problem:
            raise UsageError(f"{name} ({ds.name}, {ds.n_patients} patients), {problem}; use more patients")
        if warning:
            notes.append(f"{name} ({ds.name}, {ds.n_patients} patients): {warning}")
    return notes


def _check_relevant(o: SweepOptions, rows: list[Row]) -> None:
    """Weights and data sources must name a backbone / dataset the grid runs."""
    for flag, given, axis in (("--pretrained", o.pretrained, "backbone"), ("--data", o.data, "dataset")):
        have = list(dict.fromkeys(getattr(r, axis) for r in rows))
        for name, value in given.items():
            if name not in have:
                raise UsageError(f"{flag} {name}={value}: the grid has no {name} row ({axis}s: {', '.join(have)})")


def _cpu_jobs(o: SweepOptions) -> tuple[SweepOptions, list[str]]:
    """``--jobs`` clamped to the cells this machine's cores can run at once (the numbers do
    not depend on it), with the line that says so."""
    most = max(1, cpu_cores() // o.threads_per_cell)
    if o.executor != "local" or o.gpus or o.jobs <= most:
        return o, []
    return replace(o, jobs=most), [f"--jobs {o.jobs}: {cpu_cores()} CPU cores run at most {most} cell(s) of "
                                   f"{o.threads_per_cell} thread(s) at once; running {most}"]


def _preset(o: SweepOptions) -> Preset:
    """The named preset with ``--set`` / ``[set]`` / ``--epochs``, no size past :mod:`bench.limits`."""
    preset = resolve(o.preset, {**o.overrides, **({"epochs": o.epochs} if o.epochs is not None else {})})
    if too_big := setting_problems(preset.to_dict()):
        raise UsageError(too_big[0])
    return preset


def plan(o: SweepOptions, *, decode: bool = True,
         on_clip: Callable[[str, int, int], None] | None = None) -> SweepPlan:
    """Validate everything, load the data, decode the clips (unless ``decode`` is False:
    ``--tables-only``) and list the cells with their fingerprints. Raises
    :class:`UsageError` for a bad setting and :class:`DataError` for bad data."""
    import backbones
    from bench.data.sources import check_spec
    from bench.plugins import LOSSES, SIMILARITIES, PluginError

    check_options(o)
    try:
        rows = grid_rows(o.grid)
        preset = _preset(o)
        validate_axis("backbone", o.backbones, backbones.list_backbones())
        validate_axis("loss", o.losses, LOSSES.names())
        validate_axis("similarity", o.sims, SIMILARITIES.names())
        validate_axis("backbone", list(o.pretrained), backbones.list_backbones())
        for spec in o.data.values():
            check_spec(spec)
    except (KeyError, ValueError, PluginError) as exc:
        raise UsageError(str(exc.args[0]) if exc.args else str(exc)) from None
    check_datasets(o.datasets, o.data)
    for name, path in o.pretrained.items():
        if not Path(path).exists():
            raise UsageError(f"--pretrained {name}={path}: no such file or folder")
    for axis, values in (("dataset", o.datasets), ("backbone", o.backbones), ("loss", o.losses), ("sim", o.sims)):
        rows = select(rows, axis, values)
    if not rows:
        raise UsageError("the filters leave no cell to run")
    _check_relevant(o, rows)
    o, notes = _cpu_jobs(o)
    seeds = list(range(o.repeats or 1)) if o.folds else o.seed_list or list(range(o.seeds or preset.seeds))
    ctx = RunContext(out_dir=Path(o.out) / (o.folder or o.grid), preset=preset, data_specs=dict(o.data),
                     pretrained=dict(o.pretrained), device=o.device, amp=o.amp, cache_dir=Path(o.cache_dir),
                     on_bad_input=o.on_bad_input, compile=o.compile, threads=o.threads_per_cell, folds=o.folds)
    if decode:
        need = max(cell_bytes(b, preset) for b in dict.fromkeys(r.backbone for r in rows) if b != ANY)
        writable_dir("--out", ctx.out_dir, need)
        folder_path("--cache-dir", ctx.cache_dir)  # before any data is read (its size is checked below)
    else:  # --tables-only writes tables only: the folder must not be a file
        folder_path("--out", ctx.out_dir)
    store = DataStore()
    datasets = _data(o, rows, ctx, store)
    split_notes = _check_splits(datasets, seeds, o.folds)
    if o.references:
        rows = with_references(rows, lambda d: datasets[d].latent_severity is not None)
    if decode:
        from bench.data.splits import cohorts
        clip_bytes = sum(len(c) * preset.cache_frames * preset.img_size ** 2
                         for ds in datasets.values() for c in cohorts(ds))
        writable_dir("--cache-dir", ctx.cache_dir, clip_bytes)
        warmed = store.warm(list(datasets.values()), preset.cache_frames, preset.img_size, ctx.cache_dir, on_clip)
        if any(a is not b for a, b in zip(datasets.values(), warmed)):  # decoding dropped rows
            datasets = dict(zip(datasets, warmed))
            split_notes = _check_splits(datasets, seeds, o.folds)
    ctx.data_keys = {name: ds.cache_key for name, ds in datasets.items()}
    specs = [ctx.cell(o.grid, row, seed, fold) for seed in seeds for fold in (range(o.folds) if o.folds else [None])
             for row in rows]
    jobs_per_gpu = pack_cells(rows, preset, o) if o.jobs_per_gpu == "auto" and decode else o.jobs_per_gpu
    return SweepPlan(o, ctx, rows, seeds, specs, store, datasets, jobs_per_gpu, notes + split_notes)


def pack_cells(rows: list[Row], preset: Preset, o: SweepOptions) -> int:
    """``--jobs-per-gpu auto``: the packing rule of :mod:`bench.packing` for the largest
    measured cell of the grid's backbones and the least free GPU."""
    from bench.benchmark import measure_cell_peak_bytes
    from bench.packing import auto_jobs_per_gpu, free_device_bytes
    peak = max(measure_cell_peak_bytes(b, preset, "cuda:0", o.compile)
               for b in dict.fromkeys(r.backbone for r in rows) if b != ANY)
    free = min(free_device_bytes(f"cuda:{g}") for g in range(o.gpus))
    return auto_jobs_per_gpu(peak, free)


def _read_records(p: SweepPlan):
    """``(spec, record | None | RecordError)`` for each of the plan's cells, in grid order."""
    for spec in p.specs:
        try:
            yield spec, read_record(p.ctx.run_path(spec))
        except RecordError as exc:
            yield spec, exc


def cell_states(p: SweepPlan) -> CellStates:
    states = CellStates()
    for spec, rec in _read_records(p):
        if isinstance(rec, RecordError):
            states.unreadable[spec.run_id] = str(rec)
        elif rec is None:
            continue
        elif not rec.finished:
            states.failed[spec.run_id] = rec
        elif not spec.is_stale(rec):
            states.finished[spec.run_id] = rec
        else:
            states.stale[spec.run_id] = rec
    return states


def make_executor(p: SweepPlan):
    """The ``cells(todo, ctx, reporter)`` callable chosen by the options."""
    from bench.executors import local_cells, process_cells, ray_cells, submitit_cells, worker_devices
    o = p.options
    if o.executor == "ray":
        return partial(ray_cells, address=o.address)
    if o.executor == "submitit":
        slurm = {f.name.removeprefix("slurm_"): getattr(o, f.name) for f in fields(o)
                 if f.metadata.get("executor") == "submitit"}
        return partial(submitit_cells, slurm=slurm)
    devices = worker_devices(o.gpus, p.jobs_per_gpu, o.jobs)
    if len(devices) > 1 or o.gpus:
        return partial(process_cells, devices=devices)
    return partial(local_cells, store=p.store)


def read_cells(p: SweepPlan) -> tuple[list[RunRecord], list[RecordError]]:
    """The readable records of the plan's cells, in grid order (``--tables-only``), and the
    error of each unreadable one (corrupt, foreign, or edited since it was written)."""
    records, unreadable = [], []
    for _, rec in _read_records(p):
        if isinstance(rec, RecordError):
            unreadable.append(rec)
        elif rec is not None:
            records.append(rec)
    return records, unreadable


def records_of(p: SweepPlan) -> list[RunRecord]:
    """The readable records of the plan's cells, in grid order."""
    return read_cells(p)[0]


def run(p: SweepPlan | SweepOptions, reporter=None, cells=None) -> SweepResult:
    """Run the plan's unfinished cells (``cells``: an executor, default from the options)."""
    from bench.claims import ClaimedElsewhere
    p = p if isinstance(p, SweepPlan) else plan(p)
    o = p.options
    states = cell_states(p)
    cell = {c.run_id: c for c in p.specs}
    redo_failed = {k for k, r in states.failed.items() if o.retry_failed or cell[k].is_stale(r)}
    keep = set(states.finished) | (set() if o.rerun_stale else set(states.stale)) | (set(states.failed) - redo_failed)
    todo = [s for s in p.specs if s.run_id not in keep]
    if reporter:
        reporter.start(len(p.specs), len(p.specs) - len(todo), p.ctx.preset.epochs)
    ran, failed, claimed = 0, [], []
    for spec, outcome in (cells or make_executor(p))(todo, p.ctx, reporter):
        if isinstance(outcome, ClaimedElsewhere):
            claimed.append((spec.run_id, outcome.by))
            if reporter:
                reporter.cell_claimed(spec, outcome)
        elif isinstance(outcome, BaseException):
            failed.append((spec.run_id, f"{type(outcome).__name__}: {outcome}"))
            if reporter:
                reporter.cell_failed(spec, outcome)
        else:
            ran += 1
            if reporter:
                reporter.cell_done(spec, outcome)
    if reporter:
        reporter.stop()
    return SweepResult(records_of(p), ran, len(p.specs) - len(todo), failed, list(states.stale),
                       o.rerun_stale, claimed, states.unreadable)


def describe_stale(result: SweepResult, total: int, limit: int = 4) -> str | None:
    """One line naming the cells made by other result-affecting code, and what happened."""
    if not result.stale:
        return None
    names = ", ".join(result.stale[:limit]) + (", …" if len(result.stale) > limit else "")
    action = ("recomputed (--rerun-stale)" if result.stale_rerun else
              "kept; their rows are marked † in the tables; --rerun-stale recomputes them")
    return f"{len(result.stale)} of {total} cells were made by other result-affecting code: {names}; {action}"


# --- sensitivity studies: one sweep per value of a synthetic generator's knob -----------------
# (their tables and figure: bench.sensitivity)

KNOBS = {"signal": float, "nuisance": float, "label_noise": float, "shortcut": float, "n_patients": int}
SYNTHETIC = {"synthetic-lus", "synthetic-mri"}


def parse_values(knob: str, text: str) -> list:
    if knob not in KNOBS:
        raise UsageError(f"unknown knob {knob!r}; valid: {', '.join(KNOBS)}")
    items = text.split(",")
    if not all(v.strip() for v in items):
        raise UsageError(f"--values {text!r}: an empty value; give {knob} values comma separated, e.g. 0,0.5,1")
    try:
        values = [KNOBS[knob](v) for v in items]
    except ValueError:
        raise UsageError(f"--values {text!r}: {knob} takes {KNOBS[knob].__name__} values, "
                         "comma separated, e.g. 0,0.5,1") from None
    if len(values) < 2 or len(set(values)) < len(values):
        raise UsageError(f"--values {text!r}: give at least two distinct values")
    return values


def value_options(template: SweepOptions, knob: str, value) -> SweepOptions:
    """The sweep of one knob value: each dataset's synthetic source with ``knob=value``."""
    from bench.data.sources import DEFAULT_SOURCES
    data = {}
    check_datasets(template.datasets, template.data)
    grid = GRIDS.get(template.grid, lambda: [])()  # an unknown grid is named by plan
    for d in template.datasets or list(dict.fromkeys(r.dataset for r in grid)):
        spec = template.data[d] if d in template.data else DEFAULT_SOURCES[d]
        name, _, arg = spec.partition(":")
        if name not in SYNTHETIC:
            raise UsageError(f"--data {d}={spec}: a sensitivity study varies a synthetic generator's "
                             f"knob; valid sources: {', '.join(sorted(SYNTHETIC))}")
        if f"{knob}=" in arg:
            raise UsageError(f"--data {d}={spec} sets {knob} itself; --values sets it")
        data[d] = f"{name}:{','.join(filter(None, [arg, f'{knob}={value}']))}"
    return replace(template, data=data, folder=f"sensitivity/{knob}")


def plan_study(template: SweepOptions, knob: str, values: list, on_clip=None,
               decode: bool = True) -> list[tuple[object, SweepPlan]]:
    """One validated plan per value (all before anything runs, so a bad value is found first)."""
    return [(v, plan(value_options(template, knob, v), decode=decode, on_clip=on_clip)) for v in values]
