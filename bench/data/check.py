"""``python run_all.py check-data SPEC``: what a data source would give training, and every
problem in it — without training and without stopping at the first problem.

Real-data sources expose ``validate(arg) -> (scans, problems)`` (plus ``KIND`` and
``SCORE_NAME``), the same function their factory uses, so this report lists exactly what
training would fail on (or skip). Other sources (synthetic, third-party) are loaded and
summarised; a ``DataError`` they raise is reported as their problems. Statistics cover
the usable scans: the rows left after dropping the problem rows, i.e. what
``--on-bad-input skip`` would train on.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd

from bench.data.pairs import label_counts, label_rule, make_pairs
from bench.data.readers import ClipWarning
from bench.data.scans import DataError, Problem, apply_policy
from bench.data.sources import load_dataset, parse_spec, source_module


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

    @property
    def ok(self) -> bool:
        return not self.problems


def _summarise(report: DataReport, scans: pd.DataFrame) -> None:
    report.n_patients = int(scans["patient_id"].nunique())
    report.n_scans = len(scans)
    if scans.empty:
        return
    visits = scans.groupby("patient_id")["visit"].nunique()
    report.visits_per_patient = (int(visits.min()), float(visits.mean()), int(visits.max()))
    score = scans["score"].astype(float)
    report.score_range = (float(score.min()), float(score.max()))
    report.pairs = label_counts(make_pairs(scans, label_rule(report.kind)))


def check_data(spec: str, on_bad_input: str = "fail") -> DataReport:
    """Validate a source spec and summarise it; problems are collected, never raised."""
    report = DataReport(spec, on_bad_input)
    name, arg = parse_spec(spec)
    module = source_module(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ClipWarning)
        if hasattr(module, "validate"):
            report.kind, report.score_name = module.KIND, module.SCORE_NAME
            scans, report.problems = module.validate(arg)
            # Rows of the table plus files that joined no row (ADNI volumes without a visit).
            unjoined = {p.scan_id for p in report.problems if p.scan_id} - set(scans["scan_id"])
            report.n_scans_found = len(scans) + len(unjoined)
            try:
                usable, _ = apply_policy(spec, scans, report.problems, "skip")
            except DataError:  # table-wide problems: nothing is usable
                usable = scans.iloc[:0]
            _summarise(report, usable)
        else:
            try:
                dataset = load_dataset(spec, on_bad_input=on_bad_input)
            except DataError as e:
                report.problems = e.problems
            else:
                report.kind, report.score_name = dataset.kind, dataset.score_name
                report.problems = list(dataset.skipped)
                report.n_scans_found = len(dataset.scans) + len({p.scan_id for p in dataset.skipped})
                _summarise(report, dataset.scans)
    report.warnings = list(dict.fromkeys(str(w.message) for w in caught
                                         if issubclass(w.category, ClipWarning)))
    return report


def format_report(report: DataReport) -> str:
    """Plain-text report: the numbers, then every problem with its row and file."""
    lines = [f"data check: {report.spec}"]
    if report.kind:
        lines.append(f"  kind: {report.kind}, score: {report.score_name}")
    lines.append(f"  scans: {report.n_scans} usable of {report.n_scans_found} found, "
                 f"patients: {report.n_patients}")
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
    if not report.problems:
        lines.append("  problems: none")
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

