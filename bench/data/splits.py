"""Patient-level splits: no patient in two splits, test patients never seen in pretraining.

A synthetic source can bring a held-out cohort (``LongitudinalDataset.heldout``): further
patients of the same generator whose pairs are the test pairs, so the test set is large while
the training side stays the paper's size. A cell then reads :func:`evaluation_scans` — the
dataset's rows followed by the held-out rows, marked by the :data:`HELDOUT` column — and
:func:`split_patients` makes those rows the test split.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pandas as pd

from bench.data.scans import LongitudinalDataset

# Table 1 of the paper: 413 / 188 / 160 datapoints, i.e. about 54 / 25 / 21 %.
DEFAULT_FRACTIONS = (0.54, 0.25, 0.21)
SPLITS = ("train", "val", "test")
HELDOUT = "heldout"  # scan-table column of evaluation_scans: True on the held-out cohort's rows


def cohorts(ds: LongitudinalDataset) -> list[LongitudinalDataset]:
    """The datasets whose rows a cell reads, in row order: ``ds``, then its held-out cohort if any."""
    return [ds] if ds.heldout is None else [ds, ds.heldout]


def map_cohorts(ds: LongitudinalDataset,
                change: Callable[[LongitudinalDataset], LongitudinalDataset]) -> LongitudinalDataset:
    """``ds`` with ``change`` applied to it and to its held-out cohort (a new value)."""
    out = change(replace(ds, heldout=None))
    return out if ds.heldout is None else replace(out, heldout=change(ds.heldout))


def evaluation_scans(ds: LongitudinalDataset) -> pd.DataFrame:
    """``ds.scans`` (unchanged, without the column, when there is no held-out cohort), else those
    rows and the held-out cohort's with :data:`HELDOUT` marking the latter."""
    if ds.heldout is None:
        return ds.scans
    shared = set(ds.scans["patient_id"]) & set(ds.heldout.scans["patient_id"])
    if shared:
        raise ValueError(f"{ds.name}: held-out patients {sorted(shared, key=str)[:3]} are also training patients")
    return pd.concat([ds.scans.assign(**{HELDOUT: False}), ds.heldout.scans.assign(**{HELDOUT: True})],
                     ignore_index=True)


def split_patients(scans: pd.DataFrame, seed: int,
                   fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Row positions of each split; patients are shuffled with ``seed`` and cut by count.

    With a :data:`HELDOUT` column the other rows are cut exactly as without it, but the test split
    is the held-out rows: the training cohort's own test share is then neither trained on nor scored.
    """
    held = scans[HELDOUT].to_numpy(bool) if HELDOUT in scans.columns else np.zeros(len(scans), bool)
    patients = np.array(sorted(scans.loc[~held, "patient_id"].unique(), key=str), dtype=object)
    if len(patients) < 3:
        raise ValueError(f"need at least 3 patients for train/val/test splits, have {len(patients)}")
    order = np.random.default_rng(seed).permutation(len(patients))
    n_train = max(1, int(round(fractions[0] * len(patients))))
    n_val = max(1, int(round(fractions[1] * len(patients))))
    n_train = min(n_train, len(patients) - 2)
    n_val = min(n_val, len(patients) - n_train - 1)
    groups = np.split(patients[order], [n_train, n_train + n_val])
    pid = scans["patient_id"].to_numpy()
    out = {name: np.flatnonzero(np.isin(pid, g) & ~held) for name, g in zip(SPLITS, groups)}
    if held.any():
        out["test"] = np.flatnonzero(held)
    return out
