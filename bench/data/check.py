"""``python run_all.py check-data SPEC``: what a data source would give training, and every
problem in it — without training and without stopping at the first problem.

Real-data sources expose ``validate(arg, decode=..., on_file=...) -> (scans, problems)``
(plus ``KIND`` and ``SCORE_NAME``), the same function their factory uses, so this report
lists exactly what training would fail on (or skip). By default every clip is decoded in
full with the checks training applies (a corrupt middle of a video, NaN in an array, a
blank clip, fewer frames than declared), with a progress bar; ``quick`` only probes each
file (header, first and last frame), as training does before its clip-cache warm-up.
Other sources (synthetic, third-party) are loaded and summarised; a ``DataError`` they
raise is reported as their problems. Statistics cover
the usable scans: the rows left after dropping the problem rows, i.e. what
``--on-bad-input skip`` would train on.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from bench.data.pairs import (LABELS, PairRule, label_counts, make_pairs, pairs_by_split, rule_from_options,
                              split_problem)
from bench.data.readers import ClipWarning
from bench.data.scans import DataError, Problem, apply_policy
from bench.data.sources import check_spec, load_dataset, parse_spec, source_module, split_rule_options
from bench.data.splits import cell_splits, evaluation_scans

THIN_TEST_PAIRS = 5   # fewer test pairs of a label than this: its F1 rests on a handful of pairs


@dataclass
class DataReport:
    """Counts, score range and pair labels of the usable scans, plus every problem found."""

    spec: str
    on_bad_input: str
    kind: str | None = None
    score_name: str | None = None
    n_scans_found: int = 0
    n_patients: int = 0
    n_scans: int = 0
    visits_per_patient: tuple[int, float, int] | None = None
    score_range: tuple[float, float] | None = None
    pairs: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    decoded: bool | None = None  # real data: every clip decoded in full (False: quick probe)
    split_problem: str | None = None  # why a sweep would refuse the usable scans' patient splits

    @property
    def ok(self) -> bool:
        return not self.problems and not self.split_problem


def _summarise(report: DataReport, scans: pd.DataFrame, rule: PairRule) -> None:
    report.n_patients = int(scans["patient_id"].nunique())
    report.n_scans = len(scans)
    if scans.empty:
        return
    visits = scans.groupby("patient_id")["visit"].nunique()
    report.visits_per_patient = (int(visits.min()), float(visits.mean()), int(visits.max()))
    score = scans["score"].astype(float)
    report.score_range = (float(score.min()), float(score.max()))
    report.pairs = label_counts(make_pairs(scans, rule))


def split_findings(scans: pd.DataFrame, rule: PairRule, seeds,
                   folds: int | None = None) -> tuple[str | None, str | None]:
    """(why some seed's patient split — or with ``folds``, some fold of some repeat — cannot
    train and test the 3-way classifier, or None; a warning when a label of the data has fewer
    than ``THIN_TEST_PAIRS`` test pairs in some split, or None). Every sweep runs this before
    training, and check-data runs it too, so both accept and refuse the same data. A label
    without test pairs is a warning, not an error: the smoke preset's own 24-patient split
    (seed 0) has one."""
    pairs = make_pairs(scans, rule)
    present, thin = set(pairs["label"]), {}
    designs = [(seed, fold) for seed in seeds for fold in (range(folds) if folds else [None])]
    for seed, fold in designs:
        where = f"seed {seed}" if fold is None else f"repeat {seed}, fold {fold} of {folds}"
        try:
            by_split = pairs_by_split(pairs, cell_splits(scans, pairs, seed, fold, folds), len(scans))
        except ValueError as exc:
            return f"{where}: {exc}", None
        if problem := split_problem(by_split):
            return f"{where}: {problem}", None
        counts = np.bincount(by_split["test"]["label"], minlength=3)
        low = [f"{counts[i]} {LABELS[i]}" for i in sorted(present) if counts[i] < THIN_TEST_PAIRS]
        if low:
            thin[where] = ", ".join(low)
    if not thin:
        return None, None
    where, low = next(iter(thin.items()))
    return None, (f"thin test split: {len(thin)} of {len(designs)} {'fold(s)' if folds else 'seed(s)'} have fewer than {THIN_TEST_PAIRS} test "
                  f"pairs of a label ({where}: {low}); their F1 rests on a handful of pairs (a label without test "
                  "pairs counts as F1 0)")


def _check_splits(report: DataReport, scans: pd.DataFrame, rule: PairRule, seeds: int) -> None:
    if scans.empty:
        return
    report.split_problem, warning = split_findings(scans, rule, range(seeds))
    if warning:
        report.warnings.append(warning)


@contextmanager
def _progress_bar(what: str):
    """A transient rich progress bar on stderr (drawn only on a terminal) as ``on_file(i, n)``."""
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(what, total=None)

        def on_file(i: int, n: int) -> None:
            progress.update(task, completed=i + 1, total=n)
        yield on_file


def check_data(spec: str, on_bad_input: str = "fail", *, quick: bool = False,
               progress: bool | Callable[[int, int], None] = True, seeds: int = 5) -> DataReport:
    """Validate a source spec and summarise it; problems are collected, never raised.

    ``quick``: probe files instead of decoding every clip. ``progress``: a progress bar on
    stderr (True), none (False), or a callable ``on_file(i, n)``. ``seeds``: the patient
    splits of seeds 0..seeds-1 are checked as a sweep checks them (default: the paper
    preset's 5 seeds).
    """
    report = DataReport(spec, on_bad_input)
    check_spec(spec)
    name, arg = parse_spec(spec)
    arg, rule_options = split_rule_options(arg)
    module = source_module(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ClipWarning)
        if hasattr(module, "validate"):
            report.kind, report.score_name, report.decoded = module.KIND, module.SCORE_NAME, not quick
            what = "probing files" if quick else "decoding every clip"
            with (_progress_bar(what) if progress is True else nullcontext(progress or None)) as on_file:
                scans, report.problems = module.validate(arg, decode=not quick, on_file=on_file)
            # Rows of the table plus files that joined no row (ADNI volumes without a visit).
            unjoined = {p.scan_id for p in report.problems if p.scan_id and p.row is None} - set(scans["scan_id"])
            report.n_scans_found = len(scans) + len(unjoined)
            try:
                usable, _ = apply_policy(spec, scans, report.problems, "skip")
            except DataError:  # table-wide problems: nothing is usable
                usable = scans.iloc[:0]
            rule = rule_from_options(rule_options, module.RULE, spec)
            _summarise(report, usable, rule)
        else:
            usable = None
            try:
                dataset = load_dataset(spec, on_bad_input=on_bad_input)
            except DataError as e:
                report.problems = e.problems
            else:
                report.kind, report.score_name = dataset.kind, dataset.score_name
                report.problems = list(dataset.skipped)
                report.n_scans_found = len(dataset.scans) + len({p.scan_id for p in dataset.skipped})
                usable, rule = evaluation_scans(dataset), dataset.rule  # the test pairs a sweep scores
                _summarise(report, dataset.scans, rule)
    report.warnings = list(dict.fromkeys(str(w.message) for w in caught
                                         if issubclass(w.category, ClipWarning)))
    if usable is not None:
        _check_splits(report, usable, rule, seeds)
    return report


def format_report(report: DataReport) -> str:
    """Plain-text report: the numbers, then every problem with its row and file."""
    lines = [f"data check: {report.spec}"]
    if report.kind:
        lines.append(f"  kind: {report.kind}, score: {report.score_name}")
    lines.append(f"  scans: {report.n_scans} usable of {report.n_scans_found} found, "
                 f"patients: {report.n_patients}")
    if report.decoded is not None and report.n_scans_found:
        lines.append("  files: every clip decoded in full" if report.decoded else
                     "  files: quick probe only (header, first and last frame); decode errors show at training")
    if report.visits_per_patient:
        lo, mean, hi = report.visits_per_patient
        lines.append(f"  visits per patient: min {lo}, mean {mean:.2f}, max {hi}")
    if report.score_range:
        lines.append(f"  {report.score_name} range: {report.score_range[0]:.4g} – {report.score_range[1]:.4g}")
    if report.pairs:
        total = sum(report.pairs.values())
        lines.append(f"  pairs: {total} (" + ", ".join(f"{k} {v}" for k, v in report.pairs.items()) + ")")
    for w in report.warnings:
        lines.append(f"  warning: {w}")
    if report.split_problem:
        lines.append(f"  patient split, {report.split_problem}; a sweep refuses these data: use more patients")
    if not report.problems:
        lines.append("  problems: none" if report.ok else "  problems in rows: none")
        return "\n".join(lines)
    if report.on_bad_input == "skip":
        verdict = "the rows they name are skipped (--on-bad-input skip)"
    else:
        verdict = "training would stop; fix them or rerun with --on-bad-input skip to drop these rows"
    if any(p.scan_id is None for p in report.problems):
        verdict = "table-wide problems: nothing can be loaded until they are fixed"
    lines.append(f"  problems: {len(report.problems)} — {verdict}")
    lines.extend(f"    - {p}" for p in report.problems)
    return "\n".join(lines)

