"""``adni:CSV,DIR[,join=auto|imageuid|date][,tolerance_days=90]`` — ADNI MRI with MMSE.

``CSV`` is an ADNIMERGE-style table (one row per visit; column names as ADNI writes them,
case-insensitive; other columns are ignored): ``PTID`` (``002_S_0295``; ``RID`` is used
as the patient id when there is no PTID), ``VISCODE`` (``bl``, ``m06``, ``m12`` ...),
``EXAMDATE`` (mixed formats such as ``2006-04-18`` and ``4/18/2006`` are fine), ``MMSE``
(0–30; ADNI's missing codes ``-4``/``-1`` and blanks are reported), optional ``IMAGEUID``.
``DIR`` is searched recursively for ``*.nii`` / ``*.nii.gz`` volumes (ADNI's download
layout ``ADNI/<PTID>/<sequence>/<date>/I<IMAGEUID>/ADNI_<PTID>_..._I<IMAGEUID>.nii`` works
as is). Each volume becomes one scan; table rows without a volume are simply not scans.

Join modes (``join=``):

* ``imageuid``: the volume's path holds ``I<IMAGEUID>`` and a table row has that IMAGEUID.
* ``date``: the path holds the subject (``002_S_0295``) and an acquisition date (the
  8-digit ``YYYYMMDD`` of ADNI names, or ``YYYY-MM-DD`` of its folders; a BIDS JSON sidecar's
  ``AcquisitionDateTime``/``AcquisitionDate`` wins when present); the subject's row with
  the nearest EXAMDATE is used if within ``tolerance_days`` (default 90; ties: earlier row).
* ``auto`` (default): IMAGEUID when the table has the volume's IMAGEUID, else date — needed
  because ADNIMERGE's IMAGEUID names one image per visit (often a processed one), not the
  raw series a user downloaded.

Visits are ordered by EXAMDATE (by VISCODE month when the table has no EXAMDATE). Problems
(volume with no matching row, MMSE missing or outside 0–30, unreadable dates, duplicate
visit rows, one-visit patients, unreadable volumes) name the table line and the file.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from bench.data.realdata import (CsvError, build_dataset, closest, empty_scans, file_problems,
                                 is_file, parse_dates, parse_number, read_csv_table, resolve,
                                 sorted_problems, with_table_checks)
from bench.data.pairs import MMSE_RULE
from bench.data.scans import LongitudinalDataset, Problem
from bench.data.sources import parse_kv, register_source

JOIN_MODES = ("auto", "imageuid", "date")
DEFAULT_TOLERANCE_DAYS = 90
MMSE_RANGE = (0.0, 30.0)
ADNI_MISSING_CODES = {-1.0, -4.0}
KIND, SCORE_NAME, RULE = "mri", "MMSE", MMSE_RULE

_UID = re.compile(r"(?<![0-9A-Za-z])I(\d+)(?![0-9A-Za-z])")
_PTID = re.compile(r"(?<!\d)(\d{3}_S_\d{4})(?!\d)")
_DATE = re.compile(r"(?<![0-9A-Za-z])((?:19|20)\d{2})(-?)(0[1-9]|1[0-2])\2(0[1-9]|[12]\d|3[01])(?![A-Za-z])")
_VISCODE = re.compile(r"^(?:(bl|init)|(sc|scmri)|m(\d+)|y(\d+))$")


@dataclass(frozen=True)
class Options:
    csv: Path
    folder: Path
    join: str = "auto"
    tolerance_days: int = DEFAULT_TOLERANCE_DAYS


@dataclass(frozen=True)
class Volume:
    """A NIfTI file and what its path (or sidecar) says about it."""

    path: Path
    rel: str
    uid: int | None
    ptid: str | None
    date: pd.Timestamp | None
    date_error: str | None


def _options(arg: str | None) -> Options:
    parts = [p.strip() for p in (arg or "").split(",")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError("adni needs a table and a folder: adni:/path/ADNIMERGE.csv,/path/nifti"
                         "[,join=auto|imageuid|date][,tolerance_days=90]")
    extra = parse_kv(",".join(parts[2:]))
    for key in extra:
        if key not in ("join", "tolerance_days"):
            guess = closest(key, ("join", "tolerance_days"))
            raise ValueError(f"unknown adni option {key!r}" + (f" (did you mean {guess!r}?)" if guess else ""))
    join = extra.get("join", "auto")
    if join not in JOIN_MODES:
        raise ValueError(f"adni join={join!r}; valid: {', '.join(JOIN_MODES)}")
    try:
        tolerance = int(extra.get("tolerance_days", DEFAULT_TOLERANCE_DAYS))
    except ValueError:
        raise ValueError(f"adni tolerance_days must be a whole number of days, got "
                         f"{extra['tolerance_days']!r}") from None
    (csv, csv_error), (folder, folder_error) = (resolve(Path(p).expanduser()) for p in parts[:2])
    if csv_error or folder_error:
        raise ValueError(f"{csv if csv_error else folder}: {csv_error or folder_error}")
    return Options(csv, folder, join, tolerance)


def _search(pattern: re.Pattern, rel: Path):
    """First match in the file name, else in the enclosing folders (innermost first)."""
    for part in reversed(rel.parts):
        if m := pattern.search(part):
            return m
    return None


def _volume(path: Path, folder: Path) -> Volume:
    rel = path.relative_to(folder)
    uid = _search(_UID, rel)
    ptid = _search(_PTID, rel)
    date, error = _sidecar_date(path)
    if date is None and error is None and (m := _search(_DATE, rel)):
        date = pd.Timestamp(int(m.group(1)), int(m.group(3)), int(m.group(4)))
    return Volume(path, rel.as_posix(), int(uid.group(1)) if uid else None,
                  ptid.group(1) if ptid else None, date, error)


def _sidecar_date(path: Path) -> tuple[pd.Timestamp | None, str | None]:
    """Acquisition date from a BIDS JSON sidecar (``<name>.json`` beside the volume), or why not."""
    name = path.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem
    sidecar = path.with_name(stem + ".json")
    if not sidecar.is_file():
        return None, None
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as e:
        return None, f"unreadable JSON sidecar {sidecar.name} ({e})"
    value = str(meta.get("AcquisitionDateTime") or meta.get("AcquisitionDate") or "")
    if not value:
        return None, None
    dates, errors = parse_dates(pd.Series([value]), f"sidecar {sidecar.name} acquisition date")
    return (None, errors[0]) if errors else (dates[0].normalize(), None)


def _columns(table: pd.DataFrame, opts: Options) -> tuple[dict[str, str], list[Problem]]:
    """ADNI column name -> the table's spelling; missing ones reported with a suggestion."""
    have = {c.upper(): c for c in table.columns}
    names = {k: have[k] for k in ("RID", "PTID", "VISCODE", "EXAMDATE", "MMSE", "IMAGEUID") if k in have}
    needs = [("MMSE",), ("PTID", "RID"), ("EXAMDATE", "VISCODE")]
    if opts.join == "date":
        needs += [("PTID",), ("EXAMDATE",)]
    if opts.join == "imageuid":
        needs += [("IMAGEUID",)]
    problems = []
    for group in needs:
        if not any(c in names for c in group):
            guess = closest(group[0], table.columns)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            problems.append(Problem(f"missing column {' or '.join(group)}{hint}", path=str(opts.csv)))
    return names, problems


def _mmse(text: str) -> tuple[float, str | None]:
    value = parse_number(text)
    if not text:
        return float("nan"), "MMSE is blank"
    if value is None:
        return float("nan"), f"MMSE {text!r} is not a number"
    if value in ADNI_MISSING_CODES:
        return float("nan"), f"MMSE {text!r} is ADNI's missing-value code"
    lo, hi = MMSE_RANGE
    if not lo <= value <= hi:
        return float("nan"), f"MMSE {text!r} is outside {lo:g}–{hi:g}"
    return value, None


def _viscode_months(code: str) -> int | None:
    m = _VISCODE.match(code.lower())
    if not m:
        return None
    baseline, screening, months, years = m.groups()
    return 0 if baseline else -1 if screening else int(months) if months else 12 * int(years)


def _rows(table: pd.DataFrame, cols: dict[str, str]) -> pd.DataFrame:
    """Per table row: patient, date, visit, MMSE and the reasons each is unusable."""
    rows = pd.DataFrame(index=table.index)
    rows["patient"] = table[cols["PTID"]] if "PTID" in cols else table[cols["RID"]]
    rows["viscode"] = table[cols["VISCODE"]].str.lower() if "VISCODE" in cols else ""
    rows["uid"] = table[cols["IMAGEUID"]].map(parse_number) if "IMAGEUID" in cols else None
    if "EXAMDATE" in cols:
        rows["date"], date_errors = parse_dates(table[cols["EXAMDATE"]], "EXAMDATE")
        rows["visit"], rows["visit_error"] = rows["date"], pd.Series(date_errors, dtype=object)
    else:
        rows["date"] = pd.NaT
        rows["visit"] = rows["viscode"].map(_viscode_months)
        rows["visit_error"] = [None if pd.notna(v) else f"VISCODE {c!r} is not bl, sc, mNN or yN"
                               for v, c in zip(rows["visit"], table[cols["VISCODE"]])]
    mmse = table[cols["MMSE"]].map(_mmse)
    rows["mmse"], rows["mmse_error"] = mmse.str[0], mmse.str[1]
    return rows


def _by_date(volume: Volume, rows: pd.DataFrame, tolerance: int) -> tuple[int | None, str]:
    """The subject's row with the nearest EXAMDATE, or why there is none."""
    if volume.ptid is None:
        return None, "no subject id (like 002_S_0295) in its path"
    if volume.date_error:
        return None, volume.date_error
    if volume.date is None:
        return None, "no acquisition date (YYYYMMDD) in its path and no JSON sidecar"
    subject = rows[rows["patient"] == volume.ptid]
    if subject.empty:
        return None, f"subject {volume.ptid} is not in the table"
    dated = subject[subject["date"].notna()]
    unreadable = [f"row {r}" for r in subject.index.difference(dated.index)]
    note = f" (rows without a readable EXAMDATE: {', '.join(unreadable)})" if unreadable else ""
    if dated.empty:
        return None, f"subject {volume.ptid} has no row with a readable EXAMDATE{note}"
    days = (dated["date"] - volume.date).abs().dt.days
    best = int(days.idxmin())  # first (earliest row) among ties
    if days[best] > tolerance:
        return None, (f"subject {volume.ptid}'s nearest EXAMDATE (row {best}, "
                      f"{dated.at[best, 'date'].date()}) is {days[best]} days from the scan date "
                      f"{volume.date.date()}; tolerance is {tolerance} days{note}")
    return best, ""


def _join(volume: Volume, rows: pd.DataFrame, opts: Options) -> tuple[int | None, str]:
    """``(row, "imageuid" | "date")`` for a volume (by the configured mode), or ``(None, why)``."""
    if opts.join != "date":
        hits = rows.index[rows["uid"] == volume.uid] if volume.uid is not None else []
        if len(hits):
            return int(hits[0]), "imageuid"
        why = (f"IMAGEUID {volume.uid} is not in the table" if volume.uid is not None
               else "no I<IMAGEUID> in its path")
        if opts.join == "imageuid":
            return None, why
        row, why_date = _by_date(volume, rows, opts.tolerance_days)
        return row, ("date" if row is not None else f"{why}, and by subject+date: {why_date}")
    row, why_date = _by_date(volume, rows, opts.tolerance_days)
    return row, ("date" if row is not None else why_date)


def _duplicates(rows: pd.DataFrame, label: int, uid_joined: bool) -> list[int]:
    """Other rows describing the same visit (same patient and VISCODE/date, or same IMAGEUID)."""
    key = "viscode" if rows["viscode"].ne("").any() else "date"
    value = rows.at[label, key]
    same = pd.Series(False, index=rows.index)
    if pd.notna(value) and value != "":
        same |= (rows["patient"] == rows.at[label, "patient"]) & (rows[key] == value)
    if uid_joined:
        same |= rows["uid"] == rows.at[label, "uid"]
    return [int(r) for r in rows.index[same] if r != label]


def validate(arg: str | None, *, decode: bool = False,
             on_file: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[Problem]]:
    """Join table and volumes: the scan table (index = table line) and every problem.

    Volumes are probed (header, data length) or, with ``decode``, read in full as training
    will (``on_file(i, n)`` reports progress). A ragged table row joins nothing (its cells
    may be shifted) and is reported with its line.
    """
    try:
        opts = _options(arg)
    except ValueError as e:
        return empty_scans(), [Problem(str(e))]
    if not is_file(opts.csv):
        return empty_scans(), [Problem("ADNI table not found", path=str(opts.csv))]
    if not is_file(opts.folder, folder=True):
        return empty_scans(), [Problem("NIfTI folder not found", path=str(opts.folder))]
    try:
        table, csv_problems = read_csv_table(opts.csv)
    except CsvError as e:
        return empty_scans(), [Problem(str(e), path=str(opts.csv))]
    cols, problems = _columns(table, opts)
    entries = [p for p in opts.folder.rglob("*") if p.name.lower().endswith((".nii", ".nii.gz"))]
    files = sorted(p for p in entries if is_file(p))
    if not entries:
        problems.append(Problem("no .nii / .nii.gz volumes found", path=str(opts.folder)))
    if problems:
        return empty_scans(), problems

    rows = _rows(table.drop(index=list(csv_problems)), cols)
    records = []
    problems = [Problem(message, int(label), str(opts.csv), f"table row {label}")
                for label, message in csv_problems.items()]
    for path in sorted(p for p in entries if not is_file(p) and p.is_symlink()):
        problems.append(Problem("volume is a broken symlink or a symlink loop", path=str(path),
                                scan_id=path.relative_to(opts.folder).as_posix()))
    for path in files:
        volume = _volume(path, opts.folder)
        label, how = _join(volume, rows, opts)
        if label is None:
            problems.append(Problem(f"volume has no matching table row: {how}",
                                    path=str(volume.path), scan_id=volume.rel))
            continue
        row = rows.loc[label]
        where = dict(row=label, path=str(volume.path), scan_id=volume.rel)
        records.append(dict(label=label, patient_id=row["patient"], visit=row["visit"],
                            scan_id=volume.rel, score=row["mmse"], source=str(volume.path)))
        if not row["patient"]:
            problems.append(Problem("patient id (PTID/RID) is blank", **where))
        if isinstance(row["visit_error"], str):
            problems.append(Problem(row["visit_error"], **where))
        if row["mmse_error"]:
            problems.append(Problem(row["mmse_error"], **where))
        if dups := _duplicates(rows, label, uid_joined=how == "imageuid"):
            problems.append(Problem(f"duplicate table rows: rows {', '.join(map(str, [label] + dups))} "
                                    f"describe the same visit of {row['patient']}", **where))
    scans = (pd.DataFrame(records).set_index("label").rename_axis(None) if records
             else empty_scans())
    files_checked = file_problems(scans, decode=decode, on_file=on_file)
    return scans, sorted_problems(with_table_checks(scans, problems + files_checked))


@register_source("adni")
def adni(arg: str | None, *, on_bad_input: str = "fail", **_size_hints) -> LongitudinalDataset:
    """Validated ADNI dataset; bad volumes/rows fail or are skipped per ``on_bad_input``."""
    scans, problems = validate(arg)
    return build_dataset("adni", KIND, SCORE_NAME, f"adni:{arg}", scans, problems, on_bad_input, RULE)
