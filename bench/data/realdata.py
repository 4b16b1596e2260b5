"""What the real-data sources (``lus-manifest``, ``adni``) share.

Reading the user's CSV so that every row keeps its line number, column-name suggestions,
strict date parsing that copes with mixed formats, the file probes, and turning a
validated scan table into a :class:`LongitudinalDataset` with a content cache key. Each
source exposes ``validate(arg) -> (scans, problems)``; its factory and ``check-data`` both
call it, so training and the data check see exactly the same problems.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.preprocess import to_model_clip
from bench.data.readers import ClipReadError, probe_clip, read_clip
from bench.data.scans import (OPTIONAL_COLUMNS, SCAN_COLUMNS, LongitudinalDataset, Problem,
                              apply_policy, table_problems)

# Bump when a reader changes what it returns for the same file (invalidates cached clips).
READER_VERSION = 1
POLICIES = ("fail", "skip")


def read_csv_table(path: str | Path) -> pd.DataFrame:
    """The CSV as stripped strings, indexed by line number (header = line 1), blank lines dropped.

    Everything stays text so each source parses and reports messy cells itself.
    """
    table = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False,
                        encoding="utf-8-sig")
    table.index = table.index + 2
    table.columns = [str(c).strip() for c in table.columns]
    table = table.apply(lambda col: col.str.strip())
    return table[(table != "").any(axis=1)]


def closest(name: str, candidates) -> str | None:
    """The candidate spelled most like ``name`` (case-insensitive), if any is close."""
    by_lower = {str(c).lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(by_lower), 1, 0.6)
    return by_lower[close[0]] if close else None


def parse_number(text: str) -> float | None:
    """A finite float, or None for blank / non-numeric / NaN text."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


# ----------------------------------------------------------------------------- dates

_TIME = r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$"
_YEAR_FIRST = re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _TIME)
_COMPACT = re.compile(r"^((?:19|20)\d{2})(\d{2})(\d{2})$")
_YEAR_LAST = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d+)" + _TIME)
_NAMED = ("%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%b %d %Y",
          "%d-%B-%Y", "%d %B %Y", "%B %d, %Y", "%B %d %Y")
DATE_FORMATS_HELP = ("2021-03-18 (optionally with a time), 20210318, 3/18/2021, "
                     "18.03.2021, 18-Mar-2021, March 18, 2021")


def _timestamp(y: int, m: int, d: int, time: tuple) -> pd.Timestamp:
    hh, mm, ss = (int(t) if t else 0 for t in time)
    return pd.Timestamp(datetime(y, m, d, hh, mm, ss))


def parse_dates(values: pd.Series, what: str) -> tuple[pd.Series, dict]:
    """Parse a column of dates written in mixed formats; ``(timestamps, {label: message})``.

    Year-first and named-month dates are unambiguous. ``a/b/YYYY`` (or ``a-b-YYYY``) is read
    month-first (US, as ADNI and US spreadsheets write it) unless some value in the column
    can only be day-first (``a`` in 13–31), which makes the column day-first; when a column
    shows both orders, its values that fit either are reported as ambiguous. ``a.b.YYYY`` is
    day-first. Two-digit years are refused (ambiguous century).
    """
    year_last = {}
    for label, text in values.items():
        m = _YEAR_LAST.match(text)
        if m and m.group(2) != ".":
            year_last[label] = (int(m.group(1)), int(m.group(3)))
    day_first_seen = any(12 < a <= 31 and b <= 12 for a, b in year_last.values())
    month_first_seen = any(12 < b <= 31 and a <= 12 for a, b in year_last.values())

    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    errors: dict = {}
    for label, text in values.items():
        if not text:
            errors[label] = f"{what} is blank"
            continue
        try:
            if m := _YEAR_FIRST.match(text):
                out[label] = _timestamp(int(m.group(1)), int(m.group(3)), int(m.group(4)), m.groups()[4:])
            elif m := _COMPACT.match(text):
                out[label] = _timestamp(int(m.group(1)), int(m.group(2)), int(m.group(3)), (None,) * 3)
            elif m := _YEAR_LAST.match(text):
                a, sep, b, year = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
                if len(year) != 4:
                    errors[label] = f"{what} {text!r} has a two-digit year; write the full year"
                    continue
                if sep != "." and day_first_seen and month_first_seen and a <= 12 and b <= 12:
                    errors[label] = (f"{what} {text!r} is ambiguous: this column has both day-first "
                                     f"and month-first dates; use YYYY-MM-DD")
                    continue
                day_first = sep == "." or a > 12 or (day_first_seen and not month_first_seen)
                month, day = (b, a) if day_first else (a, b)
                out[label] = _timestamp(int(year), month, day, m.groups()[4:])
            else:
                out[label] = _named_date(text)
        except ValueError:
            errors[label] = f"{what} {text!r} is not a date (accepted: {DATE_FORMATS_HELP})"
    return out, errors


def _named_date(text: str) -> pd.Timestamp:
    for fmt in _NAMED:
        try:
            return pd.Timestamp(datetime.strptime(text, fmt))
        except ValueError:
            pass
    raise ValueError(text)


# ----------------------------------------------------------------------------- checks

def with_table_checks(scans: pd.DataFrame, problems: list[Problem]) -> list[Problem]:
    """``problems`` plus :func:`table_problems` over the rows they do not already name.

    A row with an unreadable cell or file is dropped anyway; leaving it out here keeps it
    from cascading into misleading reports (two blank visits as 'duplicates'), and makes
    the fail-policy list exactly the rows that the skip policy drops.
    """
    named = {p.scan_id for p in problems}
    return problems + table_problems(scans[~scans["scan_id"].isin(named)])


def probe_files(scans: pd.DataFrame) -> list[Problem]:
    """One problem per row whose file fails :func:`probe_clip` (each file probed once)."""
    verdict: dict[str, str | None] = {}
    problems = []
    for row, source, scan_id in zip(scans.index, scans["source"], scans["scan_id"]):
        if not source:
            continue
        if source not in verdict:
            try:
                probe_clip(source)
                verdict[source] = None
            except ClipReadError as e:
                verdict[source] = e.reason
        if verdict[source]:
            problems.append(Problem(verdict[source], int(row), source, str(scan_id)))
    return problems


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Table-wide first, then by row, then files without a row (in path order)."""
    def key(p: Problem):
        return (p.scan_id is not None, p.row is None, p.row or 0, p.path or "")
    return sorted(problems, key=key)


def empty_scans() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in SCAN_COLUMNS})


# ----------------------------------------------------------------------------- dataset

def load_clip(row: pd.Series, frames: int, size: int) -> np.ndarray:
    return to_model_clip(read_clip(row["source"]), frames, size)


def cache_key(name: str, scans: pd.DataFrame) -> str:
    """Hash of the validated table and every file's resolved path, size and mtime."""
    h = hashlib.sha256(f"{name}|readers-v{READER_VERSION}\n".encode())
    columns = [c for c in SCAN_COLUMNS + OPTIONAL_COLUMNS if c in scans.columns]
    h.update(scans[columns].to_csv().encode())
    for source in sorted(set(scans["source"])):
        st = Path(source).stat()
        h.update(f"{source}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"{name}-{h.hexdigest()[:16]}"


def build_dataset(name: str, kind: str, score_name: str, origin: str, scans: pd.DataFrame,
                  problems: list[Problem], on_bad_input: str) -> LongitudinalDataset:
    """Apply the bad-input policy and wrap the surviving rows as a dataset."""
    if on_bad_input not in POLICIES:
        raise ValueError(f"on_bad_input must be one of {POLICIES}, got {on_bad_input!r}")
    kept, skipped = apply_policy(origin, scans, sorted_problems(problems), on_bad_input)
    kept = kept.copy()
    kept["score"] = kept["score"].astype(float)
    return LongitudinalDataset(name=name, kind=kind, scans=kept, load_clip=load_clip,
                               cache_key=cache_key(name, kept), score_name=score_name,
                               skipped=skipped)
