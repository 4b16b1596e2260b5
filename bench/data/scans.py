"""The scan table every source produces, its validation, and the dataset object.

A scan table has one row per clip/volume with the columns of ``SCAN_COLUMNS`` (plus an
optional ``zone``: pairs then only compare scans of the same zone). Validation collects
*every* problem with its row and path before anything trains, so a user fixes their data
in one pass; an explicit skip policy drops the offending rows and keeps the report.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Literal

import numpy as np
import pandas as pd

from bench.data.pairs import PairRule

SCAN_COLUMNS = ("patient_id", "visit", "scan_id", "score", "source")
OPTIONAL_COLUMNS = ("zone",)
SkipPolicy = Literal["fail", "skip"]


@dataclass(frozen=True)
class Problem:
    """One bad input: where it is (row of the user's table, file) and what is wrong."""

    message: str
    row: int | None = None
    path: str | None = None
    scan_id: str | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.path:
            where.append(str(self.path))
        return f"{', '.join(where)}: {self.message}" if where else self.message


class DataError(ValueError):
    """Raised before training when the input data has problems; lists all of them."""

    def __init__(self, origin: str, problems: list[Problem]):
        self.origin = origin
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{origin}: {len(self.problems)} problem(s) in the input data "
            f"(rerun with --on-bad-input skip to drop these rows and report them):\n{lines}"
        )

    def __reduce__(self):  # crosses process boundaries (workers, Ray) intact
        return type(self), (self.origin, self.problems)


@dataclass
class LongitudinalDataset:
    """A validated scan table plus the function that turns a row into a model-ready clip.

    ``load_clip(row, frames, size)`` returns ``uint8[frames, size, size]`` (grayscale,
    temporally resampled, resized); ``cache_key`` identifies the content so cached clips
    are never reused for different data.
    """

    name: str
    kind: str  # the modality / cohort ("lus", "mri", or a cohort's own); the paper's tables need theirs
    scans: pd.DataFrame
    load_clip: Callable[[pd.Series, int, int], np.ndarray]
    cache_key: str
    score_name: str
    skipped: list[Problem] = field(default_factory=list)
    latent_severity: Callable[[pd.Series], float] | None = None
    """The oracle hook: row -> the latent severity the generator rendered that scan with, in the
    image model's units — the most any encoder can extract from the pixels; None for real data."""
    heldout: LongitudinalDataset | None = None
    """Synthetic sources: further patients of the same generator and knobs whose pairs are the test
    pairs (:func:`bench.data.splits.evaluation_scans`); None: the test split is this cohort's own."""
    latent_cohort: Callable[[int], tuple[pd.DataFrame, np.ndarray]] | None = None
    """Synthetic sources: ``n ->`` (scan table, latent severity per scan) of ``n`` further patients,
    without pixels — what the oracle's classifier learns from (:mod:`bench.references`)."""
    on_bad_input: str = "fail"  # what decode-time problems do: fail, or drop the row (skip)
    origin: str = ""  # the source spec, named in errors
    rule: PairRule | None = None
    """How a consecutive pair is labelled and the score's coarse bins (:mod:`bench.data.pairs`):
    the cohort's own rule, set by its source (or by the spec's ``bins=``/``delta=``)."""

    def __post_init__(self) -> None:
        self.scans = self.scans.reset_index(drop=True)

    @property
    def n_patients(self) -> int:
        return int(self.scans["patient_id"].nunique())

    def __len__(self) -> int:
        return len(self.scans)


def table_problems(scans: pd.DataFrame) -> list[Problem]:
    """Problems visible from the table alone (no file access).

    Checks: required columns, NaN / non-numeric scores, duplicate scan ids, duplicate
    (patient, visit, zone, source) rows, and patients with fewer than two visits (they
    yield no longitudinal pair). Rows are reported by the table's index, which sources set
    to the row number in the user's file.
    """
    missing = [c for c in SCAN_COLUMNS if c not in scans.columns]
    if missing:
        return [Problem(f"missing column(s) {missing}; have {list(scans.columns)}")]
    problems: list[Problem] = []

    def rowno(i: int) -> int:
        return int(scans.index[i])

    score = pd.to_numeric(scans["score"], errors="coerce")
    for i in np.flatnonzero(~np.isfinite(score.to_numpy(dtype=float))):
        problems.append(Problem(f"score {scans['score'].iloc[i]!r} is not a finite number",
                                rowno(i), str(scans["source"].iloc[i]), str(scans["scan_id"].iloc[i])))
    dup_id = scans["scan_id"].duplicated(keep="first")
    for i in np.flatnonzero(dup_id.to_numpy()):
        problems.append(Problem(f"duplicate scan_id {scans['scan_id'].iloc[i]!r}",
                                rowno(i), str(scans["source"].iloc[i]), str(scans["scan_id"].iloc[i])))
    key = ["patient_id", "visit", "source"] + (["zone"] if "zone" in scans.columns else [])
    dup_row = scans.duplicated(subset=key, keep="first") & ~dup_id
    for i in np.flatnonzero(dup_row.to_numpy()):
        problems.append(Problem("duplicate scan row (same patient, visit, zone and file as an earlier row)",
                                rowno(i), str(scans["source"].iloc[i]), str(scans["scan_id"].iloc[i])))
    visits = scans.groupby("patient_id")["visit"].nunique()
    for pid in visits.index[visits < 2]:
        for i in np.flatnonzero((scans["patient_id"] == pid).to_numpy()):
            problems.append(Problem(f"patient {pid!r} has only one visit: no longitudinal pair",
                                    rowno(i), str(scans["source"].iloc[i]), str(scans["scan_id"].iloc[i])))
    return problems


def apply_policy(origin: str, scans: pd.DataFrame, problems: list[Problem],
                 policy: SkipPolicy) -> tuple[pd.DataFrame, list[Problem]]:
    """Fail with every problem listed, or drop the rows they name and return the report.

    Dropping rows can leave a patient with one visit; that is re-checked so the report
    stays complete.
    """
    if not problems:
        return scans, []
    if policy == "fail":
        raise DataError(origin, problems)
    table_wide = [p for p in problems if p.scan_id is None]
    if table_wide:
        raise DataError(origin, table_wide)
    bad = {p.scan_id for p in problems}
    kept = scans[~scans["scan_id"].astype(str).isin(bad)]
    more = [p for p in table_problems(kept) if p.scan_id not in bad]
    if more:
        kept, extra = apply_policy(origin, kept, more, policy)
        return kept, problems + extra
    return kept, problems


def without_bad_rows(dataset: LongitudinalDataset, problems: list[Problem]) -> LongitudinalDataset:
    """The dataset less the rows of problems found after validation (a clip that fails to
    decode), by the dataset's policy; ``dataset`` itself is not changed.

    ``fail``: a :class:`DataError` listing every one of them. ``skip``: a new dataset whose
    ``scans`` lack them (and the patients left with one visit, reported too), whose
    ``skipped`` lists them after the earlier ones, and whose ``cache_key`` derives from the
    old key and the dropped scan ids, so every process that drops the same rows gets the
    same key.
    """
    import hashlib

    if not problems:
        return dataset
    origin = dataset.origin or dataset.name
    if dataset.on_bad_input != "skip":
        raise DataError(origin, problems)
    table = dataset.scans.copy()
    if "row" in table.columns:  # report by the user's row numbers, as validation does
        table.index = [int(r) if r == r else -1 for r in table["row"]]
    kept, reported = apply_policy(origin, table, problems, "skip")
    dropped = sorted(set(map(str, dataset.scans["scan_id"])) - set(map(str, kept["scan_id"])))
    digest = hashlib.sha256("\n".join([dataset.cache_key, *dropped]).encode()).hexdigest()[:16]
    return replace(dataset, scans=kept.reset_index(drop=True), skipped=[*dataset.skipped, *reported],
                   cache_key=f"{dataset.name}-{digest}")
