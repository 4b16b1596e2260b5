"""``lus-manifest:PATH`` — lung-ultrasound clips listed in a CSV manifest.

One row per clip. Column names are case-insensitive; columns starting with ``_`` are
ignored (keep notes there); any other column is an error that suggests the closest name.

=============  ========  ================================================================
column         needed    meaning
=============  ========  ================================================================
patient_id     yes       patient identifier (text)
visit          yes       visit index (numbers: 1, 2, 3 ...) or date/time of the scan
                         (mixed formats accepted, see below); orders a patient's visits
path           yes       clip file, relative to the manifest's folder or absolute:
                         DICOM cine (.dcm/.dicom/no extension), .mp4/.avi/.mov, .npy/.npz
score          one of    S/F ratio (SpO2 / FiO2), in (0, 600]
sf_ratio       these     same as ``score``
spo2 + fio2    three     S/F is computed: SpO2 in percent (1, 100]; FiO2 as a fraction
                         0.21–1.0 or a percent 21–100 (the ranges do not overlap, so the
                         rule is unambiguous; anything else is reported)
zone           no        lung zone / probe position; pairs only compare the same zone
scan_id        no        unique clip id; default ``row<N>`` (N = line in the manifest)
=============  ========  ================================================================

A visit column holding only numbers is a visit index; otherwise every visit must be a
date: ``2021-03-18`` (optionally with a time), ``20210318``, ``3/18/2021`` (month-first
unless the column shows day-first values), ``18.03.2021``, ``18-Mar-2021``,
``March 18, 2021``. Validation reports, with the manifest line and file: unknown/missing
columns, blank or unparseable cells, scores out of range, duplicate rows, patients with
one visit, one clip under two patients, paths that do not resolve (symlink loops), files
that are missing, unreadable, truncated, empty, lack pixel data or have frames under 16
pixels; and, reading the CSV (:func:`~bench.data.realdata.read_csv_table`), ragged rows,
lines that are not UTF-8, another delimiter or encoding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from bench.data.realdata import (CsvError, build_dataset, closest, empty_scans, file_problems,
                                 is_file, parse_dates, parse_number, read_csv_table, resolve,
                                 sorted_problems, with_table_checks)
from bench.data.scans import LongitudinalDataset, Problem
from bench.data.sources import register_source

REQUIRED = ("patient_id", "visit", "path")
SCORE_FORMS = (("score",), ("sf_ratio",), ("spo2", "fio2"))
OPTIONAL = ("zone", "scan_id")
VALID = REQUIRED + tuple(c for form in SCORE_FORMS for c in form) + OPTIONAL
SF_RANGE = (0.0, 600.0)
KIND, SCORE_NAME = "lus", "S/F"


def _column_problems(columns: list[str]) -> list[Problem]:
    """Unknown columns (with the closest valid name), missing required ones, score form."""
    problems = []
    meant = set()
    for c in columns:
        if c in VALID or c.startswith("_"):
            continue
        guess = closest(c, VALID)
        meant.add(guess)
        hint = f" (did you mean {guess!r}?)" if guess else ""
        problems.append(Problem(f"unknown column {c!r}{hint}; valid columns: {', '.join(VALID)} "
                                f"(prefix a column with '_' to keep it as a note)"))
    for c in REQUIRED:
        if c not in columns and c not in meant:
            problems.append(Problem(f"missing required column {c!r}"))
    forms = [form for form in SCORE_FORMS if any(c in columns or c in meant for c in form)]
    if len(forms) > 1:
        problems.append(Problem(f"give the score one way, not {' and '.join('+'.join(f) for f in forms)}"))
    elif not forms:
        problems.append(Problem("missing the score: give 'score' (S/F), 'sf_ratio', or 'spo2' and 'fio2'"))
    elif missing := [c for c in forms[0] if c not in columns and c not in meant]:
        problems.append(Problem(f"{' and '.join(forms[0])} go together; missing {missing}"))
    return problems


def _fio2_fraction(value: float) -> float | None:
    if 0.21 <= value <= 1.0:
        return value
    if 21.0 <= value <= 100.0:
        return value / 100.0
    return None


def _score(row: pd.Series) -> tuple[float, str | None]:
    """S/F of one row and the reason it is unusable (None when fine)."""
    if "spo2" in row.index:
        spo2, fio2 = parse_number(row["spo2"]), parse_number(row["fio2"])
        if spo2 is None:
            return float("nan"), f"spo2 {row['spo2']!r} is not a number"
        if fio2 is None:
            return float("nan"), f"fio2 {row['fio2']!r} is not a number"
        if not 1.0 < spo2 <= 100.0:
            return float("nan"), f"spo2 {row['spo2']!r} is not a percentage in (1, 100]"
        fraction = _fio2_fraction(fio2)
        if fraction is None:
            return float("nan"), (f"fio2 {row['fio2']!r} is neither a fraction in 0.21–1.0 "
                                  f"nor a percent in 21–100")
        score, text = spo2 / fraction, f"S/F {spo2 / fraction:.1f} (spo2 {row['spo2']}, fio2 {row['fio2']})"
    else:
        column = "score" if "score" in row.index else "sf_ratio"
        score = parse_number(row[column])
        if score is None:
            return float("nan"), f"{column} {row[column]!r} is blank or not a number"
        text = f"{column} {row[column]!r}"
    lo, hi = SF_RANGE
    if not lo < score <= hi:
        return float("nan"), f"{text} is outside the plausible S/F range ({lo:g}, {hi:g}]"
    return score, None


def _visits(raw: pd.Series) -> tuple[pd.Series, dict]:
    """Visit indices when the column is all numbers, else dates (see :func:`parse_dates`)."""
    numbers = raw.map(parse_number).astype(float)
    given = raw.ne("")
    if given.any() and numbers[given].notna().all():
        errors = {label: "visit is blank" for label in raw.index[~given]}
        integral = (numbers.dropna() % 1 == 0).all()
        return (numbers.astype("Int64") if integral else numbers), errors
    return parse_dates(raw, "visit")


def validate(arg: str | None, *, decode: bool = False,
             on_file: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[Problem]]:
    """Parse and check a manifest: the scan table (index = manifest line) and every problem.

    Files are probed (header, first/last frame) or, with ``decode``, decoded in full as
    training will (``on_file(i, n)`` reports progress).
    """
    if not arg:
        return empty_scans(), [Problem("lus-manifest needs a path: lus-manifest:/path/to/manifest.csv")]
    manifest, error = resolve(Path(arg).expanduser())
    if error or not is_file(manifest):
        return empty_scans(), [Problem(error or "manifest file not found", path=str(manifest))]
    try:
        table, csv_problems = read_csv_table(manifest)
    except CsvError as e:
        return empty_scans(), [Problem(str(e), path=str(manifest))]
    table.columns = [c.lower() for c in table.columns]
    problems = _column_problems(list(table.columns))
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
    scored = [_score(row) for _, row in table.iterrows()]
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


@register_source("lus-manifest")
def lus_manifest(arg: str | None, *, on_bad_input: str = "fail", **_size_hints) -> LongitudinalDataset:
    """Validated LUS dataset from a manifest; bad rows fail or are skipped per ``on_bad_input``."""
    scans, problems = validate(arg)
    return build_dataset("lus-manifest", KIND, SCORE_NAME, f"lus-manifest:{arg}", scans, problems,
                         on_bad_input)
