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


def _cell(**kw):
    from bench.cell import Cell, Numerics
    from bench.grid import Row
    from bench.presets import resolve
    return Cell("table3", Row("lus", "tsm_r18", "cl", "cos"), 2, resolve("smoke", {}), "synthetic-lus", "abc123",
                Numerics("cpu", "fp32", False, 1), **kw)


def test_a_cell_without_a_fold_keeps_its_identity_and_a_fold_is_part_of_it():
    plain = _cell()
    # Pinned: a new identity orphans every finished record, so it changes only on purpose (last: the
    # preset's default seed count left the fingerprint; folds did not change it).
    assert plain.run_id == "smoke-lus-tsm_r18-cl-cos-s2-d022eae3"
    assert "cv" not in plain.settings()
    folded = [_cell(fold=k, folds=3) for k in range(3)]
    assert len({c.run_id for c in folded} | {plain.run_id}) == 4
    assert folded[1].run_id.startswith("smoke-lus-tsm_r18-cl-cos-s2-f1-")
    assert folded[1].settings()["cv"] == {"fold": 1, "folds": 3}
    assert _cell(fold=1, folds=5).fingerprint() != folded[1].fingerprint()  # fold 1 of 5 tests other patients


def test_the_record_stores_the_fold_and_the_cell_reads_it_back(tmp_path):
    from bench.cell import Cell
    from bench.records import RunRecord, read_record, save_record
    from bench.tables import _fold
    for cell in (_cell(), _cell(fold=2, folds=3)):
        rec = RunRecord(cell.run_id, "table3", "lus", "tsm_r18", "cl", "cos", 2, "smoke", cell.fingerprint(),
                        cell.code_version(), "finished", cell.settings(), cell.numerics.to_dict(), "cpu", "c", "t",
                        metrics={"macro_f1": 0.5}, fold=cell.fold, folds=cell.folds)
        save_record(tmp_path / f"{cell.run_id}.json", rec)
        back = read_record(tmp_path / f"{cell.run_id}.json")
        assert (back.fold, back.folds, _fold(back)) == (cell.fold, cell.folds, cell.fold)
        assert Cell.from_record(back) == cell and Cell.from_record(back).run_id == cell.run_id


def _argv(tmp, *extra):
    return ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse,cl", "--no-references",
            "--out", str(tmp / "out"), "--cache-dir", str(tmp / "cache"), *extra]


CV_DATA = ("--data", "lus=synthetic-lus:n_patients=12,test_patients=0")


@pytest.mark.parametrize("extra, needle", [
    (("--repeats", "2"), "--repeats 2 repeats the cross-validation: use it with --folds K"),
    (("--folds", "3", "--seeds", "2", *CV_DATA), "under cross-validation the seeds are the repeats"),
    (("--folds", "3", "--seed-list", "0,1", *CV_DATA), "give --repeats R instead"),
    (("--folds", "1", *CV_DATA), "--folds must be at least 2, got 1"),
    (("--folds", "3", "--repeats", "0", *CV_DATA), "--repeats must be at least 1, got 0"),
    (("--folds", "3",), "set test_patients=0"),  # the smoke preset's synthetic source has a held-out cohort
    (("--folds", "13", *CV_DATA), "--folds 13: lus (synthetic-lus) has 12 patients"),
    (("--folds", "2", "--data", "lus=synthetic-lus:n_patients=3,test_patients=0"), "lus (synthetic-lus, 3 "
     "patients), repeat 0, fold"),  # one fold tests two patients, leaving one for train and validation
])
def test_contradictory_or_impossible_cv_settings_are_one_line(tmp_path, usage_error, extra, needle):
    usage_error(_argv(tmp_path, *extra), needle)


def test_the_plan_has_k_cells_per_row_and_repeat_seed_by_seed(tmp_path):
    from bench import sweep
    from bench.cli import parse
    from bench.config import config_dict
    from bench.options import from_args
    p = sweep.plan(from_args(parse(_argv(tmp_path, "--folds", "3", "--repeats", "2", *CV_DATA))), decode=False)
    assert p.seeds == [0, 1] and len(p.specs) == 2 * 2 * 3
    assert [(c.seed, c.fold, c.row.loss) for c in p.specs[:4]] == [(0, 0, "mse"), (0, 0, "cl"), (0, 1, "mse"),
                                                                     (0, 1, "cl")]
    assert {c.folds for c in p.specs} == {3} and len({c.run_id for c in p.specs}) == 12
    assert config_dict(p)["folds"] == 3 and config_dict(p)["repeats"] == 2 and "seed_list" not in config_dict(p)


def test_a_cross_validated_row_averages_per_repeat_then_over_repeats(tmp_path):
    from bench.grid import grid_rows
    from bench.stats import cv_mean_ci, mean_ci
    from bench.tables import summarize, write_tables
    from tests.test_tables_stats import record
    recs, f1 = [], {(0, 0): 0.30, (0, 1): 0.50, (0, 2): 0.40, (1, 0): 0.60, (1, 1): 0.40}  # repeat 1, fold 2 failed
    for (s, k), v in f1.items():
        for loss, shift in (("mse", 0.0), ("cl", 0.02 * (k + s))):
            rec = record("lus", loss, s, 50.0, v + shift)
            rec.fold, rec.folds = k, 3
            recs.append(rec)
    line = summarize(recs, grid_rows("table3")).set_index(["dataset", "loss"]).loc[("lus", "mse")]
    assert line["macro_f1_mean"] == pytest.approx((0.4 + 0.5) / 2)  # not the mean of the 5 folds, 0.44
    mean, lo, hi = cv_mean_ci(list(f1.values()), [s for s, _ in f1], 3)
    assert (line["macro_f1_ci_lo"], line["macro_f1_ci_hi"]) == pytest.approx((lo, hi))
    naive = mean_ci(list(f1.values()))
    assert hi - lo > 1.5 * (naive[1] - naive[0])  # sd · √(1/5 + 1/2) vs sd · √(1/5)
    paths = write_tables(summarize(recs, grid_rows("table3")), recs, "table3", tmp_path)
    note = "LUS: patient-level 3-fold cross-validation, 2 repeat(s)"
    assert note in paths["md"].read_text() and note in paths["tex"].read_text()
    assert "a row's mean averages the folds of each repeat, then the repeats" in paths["md"].read_text()
    assert list(pd.read_csv(paths["cells"])["fold"][:3]) == [0, 0, 1]
