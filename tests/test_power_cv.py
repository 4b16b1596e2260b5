"""Power planning (variance components, seeds needed, test pairs per class) and the corrected
resampled t for cross-validation, on made-up records and a simulated K-fold CV."""
import numpy as np
import pytest
from scipy import stats

from bench.grid import grid_rows
from bench.records import ScoredPairs
from bench.power import class_counts, joint_bootstrap, power_plan
from bench.stats import (corrected_paired_effect, minimal_detectable_effect, paired_bootstrap_var, paired_effect,
                         seeds_needed)
from bench.tables import design_notes, summarize
from tests.test_tables_stats import record


def with_pairs(rec, true, pred, patient):
    rec.test_pairs = ScoredPairs(list(true), list(pred), list(patient))
    return rec


def test_paired_bootstrap_variance_of_an_accuracy_difference_is_var_over_n():
    # pairs are their own clusters: Δaccuracy = 100 · mean(c), c = right_a − right_b per pair
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, 400)
    a = np.where(rng.random(400) < 0.7, true, (true + 1) % 3)
    b = np.where(rng.random(400) < 0.1, (a + 1) % 3, a)  # b mostly agrees with a
    c = (a == true).astype(float) - (b == true)
    want = 1e4 * c.var() / len(c)
    assert paired_bootstrap_var(true, a, b, "accuracy", n_boot=4000) == pytest.approx(want, rel=0.1)
    # resampled jointly, far below the sum of the two separate variances (a and b agree on most pairs)
    sep = sum(1e4 * (p == true).var() / len(true) for p in (a, b))
    assert want < sep / 3


def test_seeds_needed_is_the_fewest_seeds_whose_mde_meets_the_target():
    n = seeds_needed(0.068, 0.05)
    assert minimal_detectable_effect(0.068, int(n)) <= 0.05 < minimal_detectable_effect(0.068, int(n) - 1)
    assert n == 17  # the reference LUS design: 1.96 + 0.84 = 2.8 sd-units of the mean -> (2.8 · 0.068 / 0.05)² ≈ 15, + t
    assert seeds_needed(0.001, 0.05) == 2 and np.isinf(seeds_needed(10.0, 0.05, n_max=50))
    assert np.isnan(seeds_needed(float("nan"), 0.05))


def _cohort(seed, n_patients=10):
    """Test pairs of one seed: 4 pairs per patient, mostly 'same'."""
    rng = np.random.default_rng(seed)
    patient = np.repeat([f"p{i}" for i in range(n_patients)], 4)
    true = rng.choice(3, len(patient), p=[0.3, 0.6, 0.1])
    return true, patient, rng


def test_power_plan_splits_the_seed_variance_into_training_and_test_sampling():
    records = []
    for s in range(4):
        true, patient, rng = _cohort(s)
        mse_pred = np.where(rng.random(len(true)) < 0.6, true, 1)
        cl_pred = np.where(rng.random(len(true)) < 0.2, (mse_pred + 1) % 3, mse_pred)
        records += [with_pairs(record("lus", "mse", s, 50, 0.40 + 0.01 * s), true, mse_pred, patient),
                    with_pairs(record("lus", "cl", s, 60, 0.45 + 0.03 * (s % 2)), true, cl_pred, patient)]
    # a cell on other test pairs than its MSE cell's is left out of the bootstrap
    other = record("lus", "wcl", 0, 50, 0.41)
    records.append(with_pairs(other, [1] * 8, [1] * 8, ["q"] * 8))
    boot = joint_bootstrap(records)
    assert list(boot["loss"]) == ["cl"] * 4
    r = boot.iloc[0]
    assert r["delta"] == pytest.approx(0.05) and r["test_patients"] == 10
    tp_mse, tp_cl = records[0].test_pairs, records[1].test_pairs
    assert r["test_var"] == paired_bootstrap_var(tp_cl.true, tp_cl.pred, tp_mse.pred, "macro_f1",
                                                 tp_cl.patient, seed=0)
    summary = summarize(records, grid_rows("table3"))
    plan = power_plan(summary, records).set_index("dataset")
    # ΔF1 by seed: 0.45−0.40, 0.48−0.41, 0.45−0.42, 0.48−0.43; the wCL row has one seed (no sd): not pooled
    assert list(summary.dropna(subset=["macro_f1_vs_mse_sd"])["loss"]) == ["cl"]
    total = np.var([0.05, 0.07, 0.03, 0.05], ddof=1)
    test = boot["test_var"].mean()
    p = plan.loc["lus"]
    assert p["sd_total"] == pytest.approx(np.sqrt(total)) and p["sd_test"] == pytest.approx(np.sqrt(test))
    assert p["sd_train"] == pytest.approx(np.sqrt(max(total - test, 0)))
    assert p["seeds_0.05_now"] == seeds_needed(np.sqrt(p["sd_train"] ** 2 + test), 0.05)
    assert p["seeds_0.05_400"] == seeds_needed(np.sqrt(p["sd_train"] ** 2 + test * 10 / 400), 0.05)
    assert p["seeds_0.05_400"] <= p["seeds_0.05_now"] and p["seeds_0.03_now"] >= p["seeds_0.05_now"]


def test_classes_with_few_test_pairs_are_warned_about():
    true = [1] * 30 + [0] * 25 + [2] * 5
    recs = [with_pairs(record("lus", "mse", s, 50, 0.4 + 0.01 * s), true, true, [f"p{i // 3}" for i in range(60)])
            for s in range(2)]
    counts = class_counts(recs).set_index("label")
    assert counts.loc["improved", "min"] == 5 and counts.loc["same", "mean"] == 30 and counts.loc["same", "seeds"] == 2
    summary = summarize(recs, grid_rows("table3"))
    notes = design_notes(summary, power_plan(summary, recs), class_counts(recs))
    assert [n for n in notes if "warning" in n] == [
        "LUS: warning — fewer than 20 test pairs in a seed for improved (min 5, mean 5.0): the F1 of such a "
        "class, and with it macro-F1, turns on a handful of pairs."]


def test_records_with_folds_use_the_corrected_resampled_t():
    recs, diffs = [], np.zeros((2, 5))
    for s in range(2):
        for k in range(5):
            diffs[s, k] = 0.02 * ((s * 5 + k) % 3) - 0.01
            for loss, f1 in (("mse", 0.4), ("cl", 0.4 + diffs[s, k])):
                rec = record("lus", loss, s, 50, f1)
                rec.fold = k
                recs.append(rec)
    s = summarize(recs, grid_rows("table3")).set_index(["dataset", "loss"]).loc[("lus", "cl")]
    want = corrected_paired_effect(diffs)
    assert s["n_paired"] == 10 and s["macro_f1_vs_mse"] == pytest.approx(diffs.mean())
    assert (s["macro_f1_vs_mse_lo"], s["macro_f1_vs_mse_hi"]) == pytest.approx((want["lo"], want["hi"]))
    naive = paired_effect(dict(enumerate(diffs.ravel())), dict.fromkeys(range(10), 0.0))
    assert want["hi"] - want["lo"] > 1.5 * (naive["hi"] - naive["lo"])  # 1/J + 1/(K−1) vs 1/J: ×√3.5


def test_corrected_paired_effect_by_hand():
    d = np.array([[0.1, 0.2, 0.0, 0.1], [0.3, 0.1, 0.2, 0.0]])  # 2 repeats × 4 folds
    out = corrected_paired_effect(d)
    se = d.std(ddof=1) * np.sqrt(1 / 8 + 1 / 3)  # test/train = (1/4) / (3/4)
    assert out["n"] == 8 and out["mean"] == pytest.approx(0.125)
    assert out["hi"] - out["mean"] == pytest.approx(stats.t.ppf(0.975, 7) * se)
    assert out["p_value"] == pytest.approx(2 * stats.t.sf(0.125 / se, 7))
    assert corrected_paired_effect(d.ravel(), test_fraction=0.25)["lo"] == pytest.approx(out["lo"])
    with pytest.raises(ValueError):
        corrected_paired_effect(d.ravel())


def _simulated_cv(n_datasets=400, n=60, folds=10, repeats=10, seed=0):
    """Per simulated data set, the fold differences in test MSE of two one-feature least-squares
    regressors under repeated K-fold CV. y = x1 + x2 + noise, so by symmetry the true expected
    difference is exactly 0; the folds share training data, which the naive t ignores."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_datasets, n, 2))
    y = x.sum(-1) + rng.normal(size=(n_datasets, n))
    diffs = np.empty((n_datasets, repeats, folds))
    for r in range(repeats):
        fold = np.argsort(rng.random((n_datasets, n)), axis=1) % folds
        for k in range(folds):
            test = fold == k
            slope = np.einsum("mn,mnj->mj", y * ~test, x) / np.einsum("mn,mnj->mj", (~test) * 1.0, x ** 2)
            err = ((y[..., None] - slope[:, None, :] * x) ** 2 * test[..., None]).sum(1) / test.sum(1)[:, None]
            diffs[:, r, k] = err[:, 0] - err[:, 1]
    return diffs


def test_corrected_t_covers_95_percent_where_the_naive_t_does_not():
    diffs = _simulated_cv()
    corrected = [corrected_paired_effect(d) for d in diffs]
    naive = [paired_effect(dict(enumerate(d.ravel())), dict.fromkeys(range(d.size), 0.0)) for d in diffs]
    cover = {name: np.mean([e["lo"] <= 0 <= e["hi"] for e in effects])
             for name, effects in (("corrected", corrected), ("naive", naive))}
    # measured: corrected 0.95–0.98, naive 0.40–0.45 over simulation seeds 0–3
    assert cover["corrected"] >= 0.90 and cover["naive"] <= 0.70


def test_one_seed_plans_from_the_test_part_alone_as_a_lower_bound():
    true, patient, rng = _cohort(0)
    pred = np.where(rng.random(len(true)) < 0.6, true, 1)
    recs = [with_pairs(record("lus", "mse", 0, 50, 0.40), true, pred, patient),
            with_pairs(record("lus", "cl", 0, 50, 0.45), true, np.roll(pred, 1), patient)]
    plan = power_plan(summarize(recs, grid_rows("table3")), recs).iloc[0]
    test = joint_bootstrap(recs)["test_var"].iloc[0]
    assert plan["lower_bound"] and np.isnan(plan["sd_train"]) and np.isnan(plan["mde_f1"]) and plan["n_seeds"] == 1
    assert plan["seeds_0.05_now"] == seeds_needed(np.sqrt(test), 0.05) > 2


def test_cross_validation_power_counts_the_overlap_of_training_sets():
    """K-fold differences are correlated: the MDE uses the corrected variance sd²(1/J + 1/(K−1)),
    which more repeats cannot push below ~2.8·sd/√(K−1)."""
    from bench.power import cv_extra_variance
    sd, k = 0.06, 5
    naive, corrected = minimal_detectable_effect(sd, 3 * k), minimal_detectable_effect(sd, 3 * k, extra_variance=1 / 4)
    assert cv_extra_variance(k) == 1 / 4 and cv_extra_variance(None) == 0.0
    assert corrected > 2 * naive  # the naive design would claim to see effects it cannot
    floor = 2.8 * sd / np.sqrt(k - 1)
    assert minimal_detectable_effect(sd, 500 * k, extra_variance=1 / 4) == pytest.approx(floor, rel=0.02)
    assert np.isinf(seeds_needed(sd, 0.9 * floor, n_max=200, per_seed=k, extra_variance=1 / 4))
    repeats = seeds_needed(sd, 1.5 * floor, per_seed=k, extra_variance=1 / 4)
    mde = minimal_detectable_effect(sd, int(repeats) * k, extra_variance=1 / 4)
    assert mde <= 1.5 * floor < minimal_detectable_effect(sd, (int(repeats) - 1) * k, extra_variance=1 / 4)
