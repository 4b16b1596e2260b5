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

from typing import Callable

import pandas as pd

from bench.data.longitudinal import ManifestFormat, validate_manifest
from bench.data.pairs import SF_RULE
from bench.data.realdata import build_dataset, parse_number
from bench.data.scans import LongitudinalDataset, Problem
from bench.data.sources import register_source

SF_RANGE = (0.0, 600.0)
KIND, SCORE_NAME, RULE = "lus", "S/F", SF_RULE


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


LUS = ManifestFormat("lus-manifest", KIND, SCORE_NAME, (("score",), ("sf_ratio",), ("spo2", "fio2")),
                     "'score' (S/F), 'sf_ratio', or 'spo2' and 'fio2'", _score)


def validate(arg: str | None, *, decode: bool = False,
             on_file: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[Problem]]:
    return validate_manifest(LUS, arg, decode=decode, on_file=on_file)


@register_source("lus-manifest")
def lus_manifest(arg: str | None, *, on_bad_input: str = "fail", **_size_hints) -> LongitudinalDataset:
    """Validated LUS dataset from a manifest; bad rows fail or are skipped per ``on_bad_input``."""
    scans, problems = validate(arg)
    return build_dataset("lus-manifest", KIND, SCORE_NAME, f"lus-manifest:{arg}", scans, problems,
                         on_bad_input, RULE)
