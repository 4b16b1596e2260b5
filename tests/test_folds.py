"""Patient-level cross-validation (``--folds K``, ``--repeats R``): the fold splits, the fold in a
cell's identity and record, the options' checks, and the tables' per-repeat mean."""
import numpy as np
import pandas as pd
import pytest

from bench.data.pairs import make_pairs
from bench.data.sources import load_dataset
from bench.data.splits import HELDOUT, cell_splits, evaluation_scans, fold_patients, split_patients


@pytest.fixture(scope="module")
def lus():
    ds = load_dataset("synthetic-lus", n_patients=30, test_patients=0)
    return ds.scans, make_pairs(ds.scans, ds.rule)


def _patients(scans, rows) -> set:
    return set(scans["patient_id"].iloc[rows].astype(str))


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_every_patient_is_tested_exactly_once_per_repeat(lus, folds):
    scans, pairs = lus
    everyone = set(scans["patient_id"].astype(str))
    for repeat in range(3):
        tested = [_patients(scans, fold_patients(scans, pairs, repeat, k, folds)["test"]) for k in range(folds)]
        assert sum(len(t) for t in tested) == len(everyone) and set().union(*tested) == everyone  # disjoint, complete
        for k in range(folds):
            s = {name: _patients(scans, rows) for name, rows in fold_patients(scans, pairs, repeat, k, folds).items()}
            assert s["train"] and s["val"] and not (s["train"] & s["val"] or s["train"] & s["test"]
                                                    or s["val"] & s["test"])
            assert s["train"] | s["val"] | s["test"] == everyone
            rows = np.concatenate(list(fold_patients(scans, pairs, repeat, k, folds).values()))
            assert sorted(rows) == list(range(len(scans)))  # every scan in one split


def test_repeats_reshuffle_and_a_repeat_is_deterministic(lus):
    scans, pairs = lus
    test = {r: [tuple(fold_patients(scans, pairs, r, k, 3)["test"]) for k in range(3)] for r in (0, 1)}
    assert test[0] == [tuple(fold_patients(scans, pairs, 0, k, 3)["test"]) for k in range(3)]
    assert set(test[0]) != set(test[1])


def test_folds_are_stratified_by_the_patients_label_mix(lus):
    scans, pairs = lus
    share = pd.Series(pairs["label"]).value_counts(normalize=True)
    for k in range(3):
        test = set(fold_patients(scans, pairs, 0, k, 3)["test"])
        in_fold = pairs[pairs["a"].isin(test)]["label"].value_counts(normalize=True)
        assert (in_fold.reindex(share.index, fill_value=0) - share).abs().max() < 0.15
        assert len(_patients(scans, list(test))) in (9, 10, 11)  # the marker class balances patient counts


def test_cell_splits_is_the_seed_split_without_a_fold(lus):
    scans, pairs = lus
    assert all((a == b).all() for a, b in zip(cell_splits(scans, pairs, 4).values(),
                                               split_patients(scans, 4).values()))
    assert all((a == b).all() for a, b in zip(cell_splits(scans, pairs, 1, 2, 3).values(),
                                               fold_patients(scans, pairs, 1, 2, 3).values()))


def test_too_many_folds_and_a_heldout_cohort_are_refused(lus):
    scans, pairs = lus
    with pytest.raises(ValueError, match="31 folds of 30 patients"):
        fold_patients(scans, pairs, 0, 0, 31)
    ds = load_dataset("synthetic-lus", n_patients=12, test_patients=4)
    both = evaluation_scans(ds)
    assert both[HELDOUT].any()
    with pytest.raises(ValueError, match="test_patients=0"):
        fold_patients(both, make_pairs(both, ds.rule), 0, 0, 3)
