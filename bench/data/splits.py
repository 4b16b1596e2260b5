"""Patient-level splits: no patient in two splits, test patients never seen in pretraining.

A synthetic source can bring a held-out cohort (``LongitudinalDataset.heldout``): further
patients of the same generator whose pairs are the test pairs, so the test set is large while
the training side stays the paper's size. A cell then reads :func:`evaluation_scans` — the
dataset's rows followed by the held-out rows, marked by the :data:`HELDOUT` column — and
:func:`split_patients` makes those rows the test split.
"""
from __future__ import annotations

import warnings
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


def fold_patients(scans: pd.DataFrame, pairs: pd.DataFrame, seed: int, fold: int, folds: int,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Row positions of each split of cross-validation fold ``fold`` of ``folds``, repeat ``seed``.

    The patients are cut into ``folds`` disjoint test sets by scikit-learn's
    ``StratifiedGroupKFold(shuffle=True, random_state=seed)``, grouped by patient and
    stratified by each patient's label mix: its samples are its pairs (``pairs``, from
    :func:`bench.data.pairs.make_pairs`) labelled with their pair label, plus one marker sample
    per patient in a class of its own, so the folds balance both the pair labels and the patient
    counts. Fold ``fold``'s patients are the test split; the others are shuffled with
    ``(seed, fold)`` and cut into train and validation by the ratio of ``fractions``' first two
    parts, at least one patient each. ValueError if a fold cannot be cut so, or with a
    held-out cohort (that design scores its own test patients).
    """
    from sklearn.model_selection import StratifiedGroupKFold
    if HELDOUT in scans.columns and scans[HELDOUT].any():
        raise ValueError("cross-validation tests every patient of the dataset; its source brings a held-out "
                         "cohort too: set test_patients=0")
    patients = np.array(sorted(scans["patient_id"].unique(), key=str), dtype=object)
    if not 2 <= folds <= len(patients):
        raise ValueError(f"{folds} folds of {len(patients)} patients: each fold tests at least one patient")
    groups = np.concatenate([patients, pairs["patient_id"].to_numpy(dtype=object)])
    strata = np.concatenate([np.full(len(patients), -1), pairs["label"].to_numpy(int)])
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a label rarer than K folds is spread as far as it goes: no news
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        test_idx = list(cv.split(np.zeros(len(groups)), strata, groups))[fold][1]
    test = np.unique(groups[test_idx].astype(str))
    rest = patients[~np.isin(patients.astype(str), test)]
    if len(test) == 0 or len(rest) < 2:
        raise ValueError(f"fold {fold} of {folds} tests {len(test)} of {len(patients)} patients: each fold needs "
                         "at least one test patient and two others (train and validation)")
    rest = rest[np.random.default_rng([seed, fold]).permutation(len(rest))]
    n_val = min(max(1, int(round(fractions[1] / (fractions[0] + fractions[1]) * len(rest)))), len(rest) - 1)
    pid = scans["patient_id"].astype(str).to_numpy()
    groups_of = {"train": rest[n_val:], "val": rest[:n_val], "test": test}
    return {name: np.flatnonzero(np.isin(pid, np.asarray(g, dtype=str))) for name, g in groups_of.items()}


def cell_splits(scans: pd.DataFrame, pairs: pd.DataFrame, seed: int, fold: int | None = None,
                folds: int | None = None) -> dict[str, np.ndarray]:
    """A cell's splits: :func:`split_patients` by ``seed``, or with a ``fold`` the cross-validation
    fold of repeat ``seed`` (:func:`fold_patients`)."""
    if fold is None:
        return split_patients(scans, seed)
    return fold_patients(scans, pairs, seed, fold, folds)
