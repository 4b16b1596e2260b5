"""The held-out evaluation cohort of the synthetic sources and the oracle's generated cohort (issue #19)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from bench.data.pairs import make_pairs, pairs_by_split
from bench.data.sources import load_dataset
from bench.data.splits import HELDOUT, evaluation_scans, split_patients
from bench.presets import get_preset
from bench.references import oracle_classifier, oracle_severity

SOURCES = ("synthetic-lus", "synthetic-mri")
# The default data's cache keys before the held-out cohort existed (tests/test_synthetic_knobs.py).
PRE_COHORT_KEYS = {"synthetic-lus": "synthetic-lus-v1-4ff84799b7", "synthetic-mri": "synthetic-mri-v1-bce296379b"}


def _clip(ds, i, frames=2, size=16):
    return ds.load_clip(ds.scans.iloc[i], frames, size)


@pytest.mark.parametrize("source", SOURCES)
def test_the_training_cohort_is_the_same_whatever_test_patients_is(source):
    none = load_dataset(f"{source}:n_patients=12,test_patients=0")
    some = load_dataset(f"{source}:n_patients=12,test_patients=5")
    assert none.heldout is None and some.heldout.n_patients == 5
    assert none.scans.equals(some.scans) and none.cache_key == some.cache_key
    for i in (0, len(none) - 1):
        assert np.array_equal(_clip(none, i), _clip(some, i))
    assert evaluation_scans(none) is none.scans  # test_patients=0: today's table and splits
    for seed in (0, 3):
        old, new = split_patients(none.scans, seed), split_patients(evaluation_scans(some), seed)
        assert all(np.array_equal(old[k], new[k]) for k in ("train", "val"))
    assert load_dataset(f"{source}:test_patients=0").cache_key == PRE_COHORT_KEYS[source]
    assert load_dataset(source).cache_key == PRE_COHORT_KEYS[source]  # the default's training cohort too


@pytest.mark.parametrize("source", SOURCES)
def test_heldout_patients_are_the_test_split_and_never_train(source):
    ds = load_dataset(f"{source}:n_patients=20,test_patients=6")
    scans = evaluation_scans(ds)
    held_ids, own_ids = set(ds.heldout.scans["patient_id"]), set(ds.scans["patient_id"])
    assert not held_ids & own_ids and len(held_ids) == 6
    for seed in range(4):
        splits = split_patients(scans, seed)
        assert np.array_equal(splits["test"], np.flatnonzero(scans[HELDOUT]))
        for name in ("train", "val"):
            assert not set(scans["patient_id"].iloc[splits[name]]) & held_ids
        # The training cohort's own test share: in no split (neither pretrained on nor scored).
        unused = own_ids - set(scans["patient_id"].iloc[np.concatenate([splits["train"], splits["val"]])])
        assert len(unused) == 20 - 11 - 5
        pairs = pairs_by_split(make_pairs(scans, ds.rule), splits, len(scans))
        assert set(pairs["test"]["patient_id"]) <= held_ids and len(pairs["test"]) >= 6


@pytest.mark.parametrize("source", SOURCES)
def test_heldout_patients_come_from_their_own_seeded_stream(source):
    ds, again = load_dataset(f"{source}:n_patients=6,test_patients=6"), load_dataset(f"{source}:n_patients=6,test_patients=6")
    assert ds.heldout.scans.equals(again.heldout.scans) and ds.heldout.cache_key == again.heldout.cache_key
    assert ds.heldout.cache_key != ds.cache_key
    assert np.array_equal(_clip(ds.heldout, 0), _clip(again.heldout, 0))
    # Not the training patients again: other scores, other pixels for patient index 0.
    own, held = ds.scans.groupby("patient_id")["score"].apply(list), ds.heldout.scans.groupby("patient_id")["score"].apply(list)
    assert list(own.to_numpy()) != list(held.to_numpy())
    assert not np.array_equal(_clip(ds, 0), _clip(ds.heldout, 0))
    other_seed = load_dataset(f"{source}:n_patients=6,test_patients=6,seed=1")
    assert not ds.heldout.scans["score"].equals(other_seed.heldout.scans["score"])


@pytest.mark.parametrize("value,shown", [("-1", "-1"), ("abc", "'abc'"), ("1.5", "'1.5'")])
def test_bad_test_patients_is_one_clear_line(value, shown):
    with pytest.raises(ValueError, match=r"test_patients") as info:
        load_dataset(f"synthetic-lus:test_patients={value}")
    assert shown in str(info.value) and "\n" not in str(info.value)


def test_a_shared_patient_id_between_cohorts_is_refused():
    ds = load_dataset("synthetic-lus:n_patients=6,test_patients=0")
    clash = dataclasses.replace(ds, heldout=ds)
    with pytest.raises(ValueError, match="also training patients"):
        evaluation_scans(clash)


@pytest.mark.parametrize("source", SOURCES)
def test_the_oracle_learns_from_a_generated_cohort_and_scores_the_test_pairs(source):
    ds = load_dataset(f"{source}:n_patients=24,test_patients=10")
    preset = dataclasses.replace(get_preset("smoke"), oracle_patients=200)
    scans = evaluation_scans(ds)
    pairs = pairs_by_split(make_pairs(scans, ds.rule), split_patients(scans, 0), len(scans))
    result, trained_on = oracle_classifier(ds, pairs, ds.rule, preset, 0, torch.device("cpu"))
    assert trained_on["train_pairs"] > 5 * len(pairs["train"]) and trained_on["val_pairs"] > 0
    assert np.array_equal(result.test_true, pairs["test"]["label"].to_numpy())
    _, own = oracle_classifier(dataclasses.replace(ds, latent_cohort=None), pairs, ds.rule, preset, 0,
                                   torch.device("cpu"))
    assert own["train_pairs"] == len(pairs["train"])  # a source without the hook: the cell's own pairs
    table, severity = ds.latent_cohort(7)
    assert table["patient_id"].nunique() == 7 and len(severity) == len(table) and np.isfinite(severity).all()
    assert not set(table["patient_id"]) & (set(ds.scans["patient_id"]) | set(ds.heldout.scans["patient_id"]))
    sev = oracle_severity(ds)
    assert len(sev) == len(scans) and sev[-1] == ds.heldout.latent_severity(ds.heldout.scans.iloc[-1])


def test_no_method_row_beats_the_oracle_in_a_label_noise_study(tmp_path):
    """The oracle is a ceiling: at smoke scale, over label noise 0 and 0.3, no row's mean macro-F1
    exceeds the oracle's 95 % interval (about 30 s on 2 busy cores)."""
    from bench.cli import main
    argv = ["sensitivity", "--knob", "label_noise", "--values", "0,0.3", "--losses", "mse,cl", "--datasets", "lus",
            "--data", "lus=synthetic-lus:test_patients=40", "--preset", "smoke", "--seeds", "3",
            "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    summary = pd.read_csv(tmp_path / "sensitivity" / "label_noise" / "summary.csv")
    for value, rows in summary.groupby("value"):
        oracle = rows[rows["loss"] == "oracle"].iloc[0]
        others = rows[rows["loss"] != "oracle"]
        assert len(others) == 4 and (others["macro_f1_mean"] <= oracle["macro_f1_ci_hi"]).all(), rows
