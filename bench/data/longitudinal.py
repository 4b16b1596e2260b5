"""``longitudinal:CSV[,bins=E1|E2|…][,delta=X][,higher_is_better=true|false]`` — any cohort.

A CSV manifest with one row per clip or volume: ``patient_id``, ``visit``, ``path``,
``score`` (any finite number on the cohort's own scale), optional ``zone`` (pairs compare
only the same zone) and ``scan_id``. Clips are anything the readers decode: DICOM (cine
and multi-frame), ``.mp4/.avi/.mov``, ``.npy/.npz``, NIfTI volumes (as evenly spaced
slices). The pair-label rule is the spec's: ``bins=`` labels a pair by a move between score
bins (right-closed edges), ``delta=`` by a change of at least X; ``higher_is_better`` says
which way is "improved" (default true). Exactly one of ``bins`` / ``delta`` is required.

The manifest machinery here — column checks with suggestions, visit indices or dates,
path resolution, file probes, the table checks of :mod:`bench.data.realdata` — is shared
with ``lus-manifest``, which is this source with the S/F score forms and the paper's S/F
bins (:mod:`bench.data.lus_manifest`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bench.data.realdata import (CsvError, build_dataset, closest, empty_scans, file_problems,
                                 is_file, parse_dates, parse_number, read_csv_table, resolve,
                                 sorted_problems, with_table_checks)
from bench.data.scans import LongitudinalDataset, Problem
from bench.data.sources import register_source

REQUIRED = ("patient_id", "visit", "path")
OPTIONAL = ("zone", "scan_id")


@dataclass(frozen=True)
class ManifestFormat:
    """What differs between manifests: the source's name, its kind and score, and how a
    row's score is read (``score_of(row) -> (score, problem or None)``)."""

    source: str
    kind: str
    score_name: str
    score_forms: tuple[tuple[str, ...], ...]
    score_hint: str
    score_of: Callable[[pd.Series], tuple[float, str | None]]

    @property
    def valid(self) -> tuple[str, ...]:
        return REQUIRED + tuple(c for form in self.score_forms for c in form) + OPTIONAL


def _any_score(row: pd.Series) -> tuple[float, str | None]:
    score = parse_number(row["score"])
    if score is None or not np.isfinite(score):
        return float("nan"), f"score {row['score']!r} is blank or not a finite number"
    return score, None


GENERIC = ManifestFormat("longitudinal", "longitudinal", "score", (("score",),), "'score'", _any_score)
KIND, SCORE_NAME, RULE = GENERIC.kind, GENERIC.score_name, None


def _column_problems(fmt: ManifestFormat, columns: list[str]) -> list[Problem]:
    """Unknown columns (with the closest valid name), missing required ones, score form."""
    problems = []
    meant = set()
    for c in columns:
        if c in fmt.valid or c.startswith("_"):
            continue
        guess = closest(c, fmt.valid)
        meant.add(guess)
        hint = f" (did you mean {guess!r}?)" if guess else ""
        problems.append(Problem(f"unknown column {c!r}{hint}; valid columns: {', '.join(fmt.valid)} "
                                f"(prefix a column with '_' to keep it as a note)"))
    for c in REQUIRED:
        if c not in columns and c not in meant:
            problems.append(Problem(f"missing required column {c!r}"))
    forms = [form for form in fmt.score_forms if any(c in columns or c in meant for c in form)]
    if len(forms) > 1:
        problems.append(Problem(f"give the score one way, not {' and '.join('+'.join(f) for f in forms)}"))
    elif not forms:
        problems.append(Problem(f"missing the score: give {fmt.score_hint}"))
    elif missing := [c for c in forms[0] if c not in columns and c not in meant]:
        problems.append(Problem(f"{' and '.join(forms[0])} go together; missing {missing}"))
    return problems


def _visits(raw: pd.Series) -> tuple[pd.Series, dict]:
    """Visit indices when the column is all numbers, else dates (see :func:`parse_dates`)."""
    numbers = raw.map(parse_number).astype(float)
    given = raw.ne("")
    if given.any() and numbers[given].notna().all():
        errors = {label: "visit is blank" for label in raw.index[~given]}
        integral = (numbers.dropna() % 1 == 0).all()
        return (numbers.astype("Int64") if integral else numbers), errors
    return parse_dates(raw, "visit")


def validate_manifest(fmt: ManifestFormat, arg: str | None, *, decode: bool = False,
                      on_file: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[Problem]]:
    """Parse and check a manifest: the scan table (index = manifest line) and every problem.

    Files are probed (header, first/last frame) or, with ``decode``, decoded in full as
    training will (``on_file(i, n)`` reports progress).
    """
    if not arg:
        return empty_scans(), [Problem(f"{fmt.source} needs a path: {fmt.source}:/path/to/manifest.csv")]
    manifest, error = resolve(Path(arg).expanduser())
    if error or not is_file(manifest):
        return empty_scans(), [Problem(error or "manifest file not found", path=str(manifest))]
    try:
        table, csv_problems = read_csv_table(manifest)
    except CsvError as e:
        return empty_scans(), [Problem(str(e), path=str(manifest))]
    table.columns = [c.lower() for c in table.columns]
    problems = _column_problems(fmt, list(table.columns))
    if not problems and table.empty:
        problems = [Problem("manifest has no rows")]
    if problems:
        return empty_scans(), [Problem(p.message, path=str(manifest)) for p in problems]

    ids = table["scan_id"] if "scan_id" in table.columns else pd.Series("", index=table.index)
    ids = ids.where(ids != "", "row" + table.index.astype(str))
    ids.loc[list(csv_problems)] = ["row" + str(label) for label in csv_problems]  # cells may be shifted
    resolved = {label: resolve(manifest.parent / Path(p).expanduser()) if p else (None, None)
                for label, p in table["path"].items()}
    sources = pd.Series({label: str(path) if path else "" for label, (path, _) in resolved.items()},
                        index=table.index, dtype=object)
    visits, visit_errors = _visits(table["visit"].drop(index=list(csv_problems)))
    visits = visits.reindex(table.index)
    scored = [fmt.score_of(row) for _, row in table.iterrows()]
    scans = pd.DataFrame({"patient_id": table["patient_id"], "visit": visits, "scan_id": ids,
                          "score": [s for s, _ in scored], "source": sources}, index=table.index)
    if "zone" in table.columns:
        scans["zone"] = table["zone"]

    problems, unreadable = [], set()
    for (label, row), (_, score_error) in zip(table.iterrows(), scored):
        if label in csv_problems:  # cells cannot be trusted: this is its one problem
            problems.append(Problem(csv_problems[label], int(label), str(manifest), ids[label]))
            unreadable.add(label)
            continue
        where = dict(row=int(label), path=sources[label] or None, scan_id=ids[label])
        if not row["patient_id"]:
            problems.append(Problem("patient_id is blank", **where))
        if label in visit_errors:
            problems.append(Problem(visit_errors[label], **where))
        if not row["path"]:
            problems.append(Problem("path is blank", **where))
        elif resolved[label][1]:
            problems.append(Problem(f"path {row['path']!r}: {resolved[label][1]}", **where))
            unreadable.add(label)
        if score_error:
            problems.append(Problem(score_error, **where))
    files = file_problems(scans[~scans.index.isin(unreadable)], decode=decode, on_file=on_file)
    return scans, sorted_problems(with_table_checks(scans, problems + files))


def validate(arg: str | None, *, decode: bool = False,
             on_file: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[Problem]]:
    return validate_manifest(GENERIC, arg, decode=decode, on_file=on_file)


@register_source("longitudinal")
def longitudinal(arg: str | None, *, on_bad_input: str = "fail", **_size_hints) -> LongitudinalDataset:
    """A cohort from its manifest; its pair rule comes from the spec (``needs_rule``)."""
    scans, problems = validate(arg)
    return build_dataset("longitudinal", KIND, SCORE_NAME, f"longitudinal:{arg}", scans, problems,
                         on_bad_input, None)


longitudinal.needs_rule = True
