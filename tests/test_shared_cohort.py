"""A held-out cohort every seed is scored on: its draw moves every seed's number alike, which
the seeds' spread cannot show; the intervals add its variance (measured by one bootstrap draw
of the cohort's patients for every seed), and separate test splits per seed add nothing."""
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from bench.grid import ANY, Row, grid_rows
from bench.power import power_plan, shared_cohort_variance
from bench.stats import difference_effect, mean_ci, minimal_detectable_effect, seeds_needed, shared_variance
from bench.tables import summarize
from tests.test_power_cv import with_pairs
from tests.test_tables_stats import record


def test_shared_variance_recovers_the_part_every_seed_shares():
    rng = np.random.default_rng(0)
    seeds, n_boot = 9, 20_000
    per_seed = rng.normal(0, 0.03, (seeds, n_boot))   # the part of test sampling that differs by seed
    shared = rng.normal(0, 0.02, n_boot)              # the part every seed shares
    assert shared_variance(per_seed + shared) == pytest.approx(0.02 ** 2, rel=0.1)
    assert shared_variance(per_seed) < 0.1 * 0.02 ** 2  # none shared: about 0 (floored at 0)
    assert np.isnan(shared_variance(per_seed[:1]))      # one seed cannot tell the parts apart


@pytest.mark.parametrize("interval", ["row mean", "paired difference"])
def test_adding_the_shared_variance_covers_95_percent_where_the_seeds_alone_do_not(interval):
    rng = np.random.default_rng(1)
    experiments, seeds, sd_seed, sd_cohort = 4000, 9, 0.04, 0.02
    values = rng.normal(0, sd_seed, (experiments, seeds)) + rng.normal(0, sd_cohort, (experiments, 1))
    if interval == "row mean":
        def ci(v, shared):
            return mean_ci(v, shared_var=shared)
    else:
        def ci(v, shared):
            out = difference_effect(v, 0.0, shared_var=shared)
            return out["lo"], out["hi"]
    cover = {shared: np.mean([lo <= 0 <= hi for lo, hi in (ci(v, shared) for v in values)])
             for shared in (0.0, sd_cohort ** 2)}
    # measured: 0.95 with the shared variance, 0.75–0.76 without (the sd of the mean is 0.024, not 0.013)
    assert 0.93 <= cover[sd_cohort ** 2] <= 0.97 and cover[0.0] <= 0.85


def test_no_spread_over_seeds_leaves_the_cohorts_interval_and_welch_degrees_of_freedom():
    lo, hi = mean_ci([0.3] * 5, shared_var=0.01 ** 2)  # every seed the same: a normal interval of the cohort
    assert (lo, hi) == pytest.approx((0.3 - 1.96 * 0.01, 0.3 + 1.96 * 0.01), abs=1e-4)
    assert mean_ci([0.3] * 5) == (0.3, 0.3)
    v = np.array([0.1, 0.2, 0.15, 0.3])
    spread = v.var(ddof=1) / 4
    df = (spread + 0.02 ** 2) ** 2 / (spread ** 2 / 3)
    want = stats.t.interval(0.95, df, loc=v.mean(), scale=np.sqrt(spread + 0.02 ** 2))
    assert mean_ci(v, shared_var=0.02 ** 2) == pytest.approx(want)
    assert difference_effect(v, 0.0, shared_var=0.02 ** 2)["p_value"] == pytest.approx(
        2 * stats.t.sf(v.mean() / np.sqrt(spread + 0.02 ** 2), df))


def _seed_records(loss, seeds, cohort_of, predict, backbone="tsm_r18"):
    """One record per seed scored on ``cohort_of(seed)`` (true labels, patients) with
    ``predict(seed, true, patient)``; its macro-F1 that of those predictions."""
    out = []
    for s in seeds:
        true, patient = cohort_of(s)
        pred = predict(s, true, patient)
        f1 = f1_score(true, pred, average="macro", labels=[0, 1, 2], zero_division=0)
        out.append(with_pairs(record("lus", loss, s, 100 * np.mean(pred == true), f1, backbone=backbone),
                              true, pred, patient))
    return out


def _cohort(seed, patients=60):
    rng = np.random.default_rng(seed)
    return rng.choice(3, 4 * patients, p=[0.3, 0.5, 0.2]), np.repeat([f"e{i}" for i in range(patients)], 4)


def test_a_shared_cohort_widens_a_rows_interval_and_separate_splits_do_not():
    seeds = range(5)
    hard = np.random.default_rng(9).random(60) < 0.4  # patients every model gets wrong more often

    def predict(s, true, patient):
        rng = np.random.default_rng(100 + s)
        wrong = rng.random(len(true)) < np.where(np.repeat(hard, 4), 0.7, 0.2)
        return np.where(wrong, (true + 1) % 3, true)
    shared = _seed_records("mse", seeds, lambda s: _cohort(0), predict)        # one held-out cohort
    majority = _seed_records("majority", seeds, lambda s: _cohort(0), lambda s, t, p: np.ones_like(t), ANY)
    separate = _seed_records("cl", seeds, _cohort, predict)                    # each seed its own split
    rows = grid_rows("table3") + [Row("lus", ANY, "majority")]
    s = summarize(shared + majority + separate, rows).set_index(["dataset", "loss"])

    f1 = [r.metric("macro_f1") for r in shared]
    t_lo, t_hi = mean_ci(f1)
    row = s.loc[("lus", "mse")]
    assert row["macro_f1_ci_lo"] < t_lo and row["macro_f1_ci_hi"] > t_hi
    assert (row["macro_f1_ci_lo"], row["macro_f1_ci_hi"]) == pytest.approx(
        mean_ci(f1, shared_var=shared_cohort_variance(shared, "macro_f1")))
    maj = s.loc[("lus", "majority")]  # the same predictions every seed: no spread, yet another cohort moves it
    assert maj["macro_f1_ci_lo"] < maj["macro_f1_mean"] < maj["macro_f1_ci_hi"]
    assert maj["accuracy_ci_lo"] < maj["accuracy_mean"] < maj["accuracy_ci_hi"]
    assert shared_cohort_variance(separate, "macro_f1") == 0.0
    assert (s.loc[("lus", "cl"), "macro_f1_ci_lo"], s.loc[("lus", "cl"), "macro_f1_ci_hi"]) == pytest.approx(
        mean_ci([r.metric("macro_f1") for r in separate]))


def test_the_paired_effect_and_the_power_plan_count_the_shared_part_of_a_difference():
    seeds = range(6)
    true, patient = _cohort(0)
    hard = np.repeat(np.random.default_rng(3).random(60) < 0.4, 4)

    def predict(bias):
        def f(s, t, p):
            rng = np.random.default_rng(10 * s + bias)
            return np.where(rng.random(len(t)) < np.where(hard, 0.6 - 0.3 * bias, 0.2), (t + 1) % 3, t)
        return f
    mse = _seed_records("mse", seeds, lambda s: (true, patient), predict(0))
    cl = _seed_records("cl", seeds, lambda s: (true, patient), predict(1))  # CL gets the hard patients right more
    recs = mse + cl
    shared = shared_cohort_variance(cl, "macro_f1", base=mse)
    assert shared > 0
    diffs = [c.metric("macro_f1") - m.metric("macro_f1") for c, m in zip(cl, mse)]
    row = summarize(recs, grid_rows("table3")).set_index(["dataset", "loss"]).loc[("lus", "cl")]
    want = difference_effect(diffs, 0.0, shared_var=shared)
    assert (row["macro_f1_vs_mse_lo"], row["macro_f1_vs_mse_hi"]) == pytest.approx((want["lo"], want["hi"]))
    assert row["macro_f1_vs_mse_shared_var"] == pytest.approx(shared)
    plan = power_plan(summarize(recs, grid_rows("table3")), recs).iloc[0]
    assert plan["sd_shared"] == pytest.approx(np.sqrt(shared))
    assert plan["sd_train"] ** 2 == pytest.approx(max(plan["sd_total"] ** 2 - (plan["sd_test"] ** 2 - shared), 0))


def test_the_shared_part_is_a_floor_no_number_of_seeds_lowers():
    floor = minimal_detectable_effect(0.0, 9, shared_var=0.02 ** 2)  # no spread over seeds, the cohort's alone
    assert 0.05 < floor < 0.07 and np.isnan(minimal_detectable_effect(0.0, 9))
    assert np.isinf(seeds_needed(0.0, 0.03, shared_var=0.02 ** 2, n_max=200))
    assert seeds_needed(0.0, 0.03) == 2
    assert minimal_detectable_effect(0.04, 9, shared_var=0.02 ** 2) > minimal_detectable_effect(0.04, 9)
