"""What the real-data sources (``lus-manifest``, ``adni``) share.

Reading the user's CSV so that every row keeps its line number (and a malformed row or
file is one clear problem, never an exception), column-name suggestions, strict date
parsing that copes with mixed formats, path resolution that survives symlink loops, the
file checks (probe or full decode), the one-clip-two-patients check, and turning a
validated scan table into a :class:`LongitudinalDataset` with a content cache key. Each
source exposes ``validate(arg, decode=False, on_file=None) -> (scans, problems)``; its
factory and ``check-data`` both call it, so training and the data check see exactly the
same problems.
"""
from __future__ import annotations

import difflib
import hashlib
import os
import re
import stat
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bench.data.pairs import PairRule
from bench.data.readers import ClipReadError, decode_clip, probe_clip, verify_clip
from bench.data.scans import (OPTIONAL_COLUMNS, SCAN_COLUMNS, LongitudinalDataset, Problem,
                              apply_policy, table_problems)

# Bump when a reader changes what it returns for the same file (invalidates cached clips).
READER_VERSION = 2
POLICIES = ("fail", "skip")


class CsvError(ValueError):
    """A CSV that cannot be read as a table at all; the message says why and what to do."""


_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _decode_lines(data: bytes) -> tuple[str, dict[int, str]]:
    """UTF-8 text of the file and ``{line: why}`` for lines that are not UTF-8 (decoded
    with replacement characters so every other line still reads)."""
    try:
        return data.decode("utf-8"), {}
    except UnicodeDecodeError:
        pass
    lines, bad = [], {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            byte = raw[e.start:e.start + 1]
            guess = byte.decode("cp1252", errors="replace")
            bad[number] = (f"line {number} is not UTF-8 text (byte 0x{byte.hex().upper()} at column "
                           f"{e.start + 1}, {guess!r} in Windows-1252/Latin-1): save the file as UTF-8 "
                           f"(Excel: 'CSV UTF-8')")
            lines.append(raw.decode("utf-8", errors="replace"))
    return "\n".join(lines), bad


def read_csv_table(path: str | Path) -> tuple[pd.DataFrame, dict[int, str]]:
    """The CSV as stripped strings, indexed by line number (header = line 1), blank lines
    dropped, and ``{line: problem}`` for rows that cannot be trusted: ragged rows (more or
    fewer cells than the header) and lines that are not UTF-8. Their cells are kept as read.

    Raises :class:`CsvError` (one line) when there is no table to read: an unreadable or
    empty file, UTF-16/32 or binary data, another delimiter ("looks semicolon-separated"),
    a header that is not UTF-8, repeated or unnamed columns. Everything stays text so each
    source parses and reports messy cells itself.
    """
    records, bad_lines = _csv_records(Path(path))
    header, width = _checked_header(records, bad_lines)
    rows, index, problems = [], [], {}
    for first, last, cells in records[1:]:
        extra = [c for c in cells[width:] if c]
        if extra or len(cells) < width:
            detail = (f"extra {extra[:3]!r}" if extra else
                      f"nothing for {', '.join(repr(h) for h in header[len(cells):width])}")
            problems[first] = (f"row has {len(cells)} cells, the header has {width} ({detail}); " + (
                f"its quote opened on line {first} closes on line {last}: an unbalanced quote?" if last > first
                else "a stray or missing delimiter? (quote cells that contain commas)"))
        if bad := [bad_lines[line] for line in range(first, last + 1) if line in bad_lines]:
            problems[first] = bad[0] if first not in problems else f"{problems[first]}; {bad[0]}"
        rows.append((cells + [""] * width)[:width])
        index.append(first)
    table = pd.DataFrame(rows, columns=header[:width], index=index, dtype=object)
    return table, problems


Records = list[tuple[int, int, list[str]]]  # (first line, last line, stripped cells) of each non-blank row


def _csv_records(path: Path) -> tuple[Records, dict[int, str]]:
    """The file's non-blank CSV rows and its non-UTF-8 lines; a file that is no text CSV at
    all is a :class:`CsvError`."""
    import codecs
    import csv
    import io

    try:
        data = path.read_bytes()
    except OSError as e:
        raise CsvError(f"cannot read the file ({e.strerror or e})") from None
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvError("the file is UTF-16/UTF-32 encoded (e.g. Excel's 'Unicode Text'); save it as "
                       "CSV UTF-8, comma-separated")
    if b"\0" in data:
        raise CsvError("the file holds NUL bytes: not a text CSV (binary, or UTF-16 without a byte-order "
                       "mark); save it as CSV UTF-8, comma-separated")
    text, bad_lines = _decode_lines(data.removeprefix(codecs.BOM_UTF8))
    reader = csv.reader(io.StringIO(text, newline=""))
    records, first = [], 1
    try:
        for cells in reader:
            records.append((first, reader.line_num, [c.strip() for c in cells]))
            first = reader.line_num + 1
    except csv.Error as e:
        raise CsvError(f"line {reader.line_num}: not valid CSV ({e})") from None
    records = [r for r in records if any(r[2])]
    if not records:
        raise CsvError("the file is empty: no header and no rows")
    return records, bad_lines


def _checked_header(records: Records, bad_lines: dict[int, str]) -> tuple[list[str], int]:
    """The header (unnamed empty columns named ``_columnN``) and its width without trailing
    delimiters; a header no table can be read under is a :class:`CsvError`."""
    header_line, header_end, header = records[0]
    if any(header_line <= line <= header_end for line in bad_lines):
        raise CsvError(f"the header is not UTF-8 text ({bad_lines[min(bad_lines)]})")
    for sep, name in _DELIMITERS.items():  # more of them in the header than commas
        if ",".join(header).count(sep) >= len(header):
            raise CsvError(f"looks {name}-separated (header {','.join(header)!r} has {len(header)} "
                           f"comma-separated column(s)); save it comma-separated")
    seen: dict[str, int] = {}
    for i, name in enumerate(header, 1):
        if name and name.lower() in seen:
            raise CsvError(f"column {name!r} appears twice (columns {seen[name.lower()]} and {i}; names "
                           f"are case-insensitive)")
        seen[name.lower()] = i
    width = len(header)
    while width and not header[width - 1]:
        width -= 1  # trailing delimiters; values under them make a row ragged
    for i in (i for i in range(width) if not header[i]):
        if any(len(c) > i and c[i] for _, _, c in records[1:]):
            raise CsvError(f"column {i + 1} has no name but holds values; name it (prefix '_' to keep "
                           f"it as a note)")
        header[i] = f"_column{i + 1}"  # empty throughout: ignored like a note
    long = {len(c) for _, _, c in records[1:] if any(c[width:])}
    if len(long) == 1 and all(any(c[width:]) for _, _, c in records[1:]):
        raise CsvError(f"every row has {long.pop()} cells but the header names {width} columns: "
                       f"name the missing column(s)")
    return header, width


def resolve(path: str | Path) -> tuple[Path, str | None]:
    """``path`` made absolute with symlinks resolved, or (absolute path, why not): a symlink
    loop, an embedded NUL, a name too long — never an exception."""
    path = Path(path)
    try:
        return path.resolve(), None
    except RuntimeError:
        return path.absolute(), "symlink loop: the path's links point at each other"
    except (OSError, ValueError) as e:
        return path.absolute(), f"path cannot be resolved ({getattr(e, 'strerror', None) or e})"


def is_file(path: Path, folder: bool = False) -> bool:
    """``path.is_file()`` (``is_dir()`` with ``folder``), False where the path cannot be checked."""
    try:
        return path.is_dir() if folder else path.is_file()
    except (OSError, ValueError):
        return False


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
    fine = scans[~scans["scan_id"].isin(named)]
    return problems + table_problems(fine) + shared_file_problems(fine)


def file_problems(scans: pd.DataFrame, *, decode: bool = False,
                  on_file: Callable[[int, int], None] | None = None) -> list[Problem]:
    """One problem per row whose file fails :func:`probe_clip` — or, with ``decode``,
    :func:`verify_clip` (every frame decoded, as training will). Each file is read once;
    ``on_file(i, n)`` reports progress over the rows."""
    checks = verify_clip if decode else probe_clip
    verdict: dict[str, str | None] = {}
    problems = []
    for i, (row, source, scan_id) in enumerate(zip(scans.index, scans["source"], scans["scan_id"])):
        if source and source not in verdict:
            try:
                checks(source)
                verdict[source] = None
            except ClipReadError as e:
                verdict[source] = e.reason
        if source and verdict[source]:
            problems.append(Problem(verdict[source], int(row), source, str(scan_id)))
        if on_file:
            on_file(i, len(scans))
    return problems


def _content_digest(path: str, head: bool) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if head:
            h.update(f.read(1 << 20))
        else:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def shared_file_problems(scans: pd.DataFrame) -> list[Problem]:
    """Rows of different patients that name the same file — the same resolved path, or
    files with identical content — a clip cannot belong to two patients (it would leak
    between train and test). Every such row is named, with the rows it shares the file with.
    Only files of equal size are hashed (the first MiB, then all of it on a match)."""
    identity: dict[str, str] = {}
    by_size: dict[int, list[str]] = {}
    for source in dict.fromkeys(s for s in scans["source"] if s):
        identity[source] = source
        try:
            st = os.stat(source)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(st.st_mode):
            by_size.setdefault(st.st_size, []).append(source)
    for candidates in by_size.values():
        for head in (True, False):  # the first MiB sorts most apart; only matches are read whole
            digests: dict[str, list[str]] = {}
            for source in candidates if len(candidates) > 1 else ():
                try:
                    digests.setdefault(_content_digest(source, head), []).append(source)
                except OSError:
                    continue
            candidates = [s for same in digests.values() if len(same) > 1 for s in same]
        for digest, same in digests.items():
            identity.update({source: f"sha256:{digest}" for source in same if len(same) > 1})
    keys = scans["source"].map(lambda s: identity.get(s) if s else None)
    problems = []
    for key, rows in scans.groupby(keys, sort=False):
        if rows["patient_id"].nunique() < 2:
            continue
        for label, row in rows.iterrows():
            others = rows[rows["patient_id"] != row["patient_id"]]
            same = "; ".join(f"row {int(o)} (patient {p!r}" + (f", {s})" if s != row["source"] else ")")
                             for o, p, s in zip(others.index, others["patient_id"], others["source"]))
            what = "the same file" if (others["source"] == row["source"]).all() else "a file with identical content"
            problems.append(Problem(f"{what} is listed for another patient: {same}; one clip cannot belong "
                                    f"to two patients (a train/test leak)", int(label), row["source"],
                                    str(row["scan_id"])))
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
    return decode_clip(row["source"], frames, size)


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
                  problems: list[Problem], on_bad_input: str, rule: PairRule | None) -> LongitudinalDataset:
    """Apply the bad-input policy and wrap the surviving rows as a dataset."""
    if on_bad_input not in POLICIES:
        raise ValueError(f"on_bad_input must be one of {POLICIES}, got {on_bad_input!r}")
    kept, skipped = apply_policy(origin, scans, sorted_problems(problems), on_bad_input)
    kept = kept.copy()
    kept["score"] = kept["score"].astype(float)
    kept["row"] = kept.index.astype(int)  # the user's row numbers, for problems found later
    return LongitudinalDataset(name=name, kind=kind, scans=kept, load_clip=load_clip,
                               cache_key=cache_key(name, kept), score_name=score_name,
                               skipped=skipped, on_bad_input=on_bad_input, origin=origin, rule=rule)
