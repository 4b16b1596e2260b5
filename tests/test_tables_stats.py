"""Tables (mean ± std, paper columns, bold best, booktabs) and statistics on made-up records."""
import numpy as np
import pytest
from scipy import stats

from bench.grid import Row, grid_rows
from bench.distances import (distance_score_spearman, pairwise_distances, sampled_pairs, same_patient_pairs,
                             spearman)
from bench.records import RunRecord
from bench.stats import bootstrap_ci, paired_effect
from bench.tables import layout, summarize, to_latex, to_markdown, write_tables


def record(dataset, loss, seed, acc, f1, sim="cos", backbone="tsm_r18", code="code-a", status="finished"):
    return RunRecord(run_id=f"{dataset}-{backbone}-{loss}-{sim}-s{seed}", grid="t", dataset=dataset,
                     backbone=backbone, loss=loss, sim=sim, seed=seed, preset="smoke", fingerprint="f",
                     code_version=code, status=status, settings={}, numerics={}, device="cpu", git_commit="g",
                     finished_at="", metrics=None if status == "failed" else
                     {"accuracy": acc, "macro_f1": f1, "weighted_f1": f1, "spearman_within": 0.5})


RECORDS = ([record("lus", "mse", s, 50 + s, 0.40 + 0.01 * s) for s in range(3)]
           + [record("lus", "cl", s, 60 + s, 0.50 + 0.02 * s) for s in range(3)]
           + [record("lus", "wcl", s, 40.0, 0.30) for s in range(2)]
           + [record("adni", "mse", 0, 30.0, 0.2)])


def test_summarize_mean_std_paper_and_paired():
    s = summarize(RECORDS, grid_rows("table3")).set_index(["dataset", "loss"])
    assert s.loc[("lus", "mse"), "n"] == 3
    assert s.loc[("lus", "mse"), "accuracy_mean"] == pytest.approx(51.0)
    assert s.loc[("lus", "mse"), "accuracy_std"] == pytest.approx(1.0)  # sample std of 50, 51, 52
    assert s.loc[("lus", "cl"), "paper_accuracy"] == 68.25 and s.loc[("adni", "wcl"), "paper_f1"] == 0.347
    assert s.loc[("lus", "cl"), "macro_f1_vs_mse"] == pytest.approx(0.11)  # (0.50+0.52+0.54)/3 - 0.41
    assert s.loc[("lus", "cl"), "p_improve"] == 1.0
    assert s.loc[("lus", "cl"), "paper_f1_vs_mse"] == pytest.approx(0.736 - 0.460)
    # +0.09, +0.10, +0.11: sd 0.01, interval [+0.085, +0.135] excludes 0 and the paper's +0.276
    assert s.loc[("lus", "cl"), "verdict"] == "significant; same sign, smaller than the paper's"
    assert s.loc[("lus", "wcl"), "verdict"] == "significant; opposite sign to the paper's"  # −0.10, −0.11 vs +0.160
    assert s.loc[("lus", "mse"), "verdict"] == "" and s.loc[("adni", "cl"), "verdict"] == ""
    p_cl, p_wcl = s.loc[("lus", "cl"), "macro_f1_vs_mse_p_value"], s.loc[("lus", "wcl"), "macro_f1_vs_mse_p_value"]
    assert p_cl < p_wcl and s.loc[("lus", "cl"), "macro_f1_vs_mse_p_holm"] == pytest.approx(2 * p_cl)
    assert s.loc[("lus", "wcl"), "macro_f1_vs_mse_p_holm"] == pytest.approx(max(2 * p_cl, p_wcl))
    assert s.loc[("lus", "cl"), "n_paired"] == 3
    assert s.loc[("adni", "cl"), "n"] == 0 and np.isnan(s.loc[("adni", "cl"), "accuracy_mean"])
    lo, hi = stats.t.interval(0.95, 2, loc=61.0, scale=stats.sem([60, 61, 62]))
    assert (s.loc[("lus", "cl"), "accuracy_ci_lo"], s.loc[("lus", "cl"), "accuracy_ci_hi"]) == pytest.approx((lo, hi))


def test_table3_layout_bold_best_and_files(tmp_path):
    summary = summarize(RECORDS, grid_rows("table3"))
    groups, columns, rows = layout(summary, "table3")
    assert [g for g, _ in groups] == ["", "LUS", "ADNI"]
    assert columns[:5] == ["Loss", "Acc. (ours)", "Acc. (paper)", "F1 (ours)", "F1 (paper)"]
    assert [r[0].text for r in rows] == ["MSE", "MSE + CL", "MSE + wCL"]
    cl = rows[1]
    assert cl[1].text == "61.00 ± 1.00" and cl[1].bold and cl[2].text == "68.25" and cl[4].text == "0.736"
    assert not rows[0][1].bold and rows[2][1].text == "40.00 ± 0.00"
    assert rows[1][5].text == "–"  # no ADNI CL run
    tex = to_latex(groups, columns, rows, "cap")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\textbf{61.00 $\pm$ 1.00}" in tex and r"\multicolumn{4}{c}{LUS}" in tex
    md = to_markdown(groups, columns, rows)
    assert "| Loss | LUS Acc. (ours) |" in md and "**61.00 ± 1.00**" in md
    paths = write_tables(summarize(RECORDS, grid_rows("table3")), RECORDS, "table3", tmp_path)
    md = paths["md"].read_text()
    assert "**Evidence: LUS**" in md and "**Evidence: ADNI**" in md
    cl_line = next(line for line in md.splitlines() if line.startswith("| MSE + CL | 3 |"))
    assert "+0.110 [+0.085, +0.135]" in cl_line and "significant; same sign, smaller than the paper's" in cl_line
    assert "Holm" in md and "inconclusive" in md  # the legend explains every verdict
    tex = paths["tex"].read_text()
    assert tex.count(r"\begin{table}") == 2 and r"$\Delta$F1 vs MSE" in tex and "Holm" in tex
    assert paths["csv"].read_text().splitlines()[0].startswith("dataset,backbone,loss,sim")


def test_table4_layout_names_models_and_similarity():
    recs = [record("lus", "wcl", 0, 60, 0.5, sim="l2"), record("lus", "cl", 0, 70, 0.6)]
    _, columns, rows = layout(summarize(recs, grid_rows("table4")), "table4")
    assert columns[:2] == ["Model", "Loss"]
    assert [(r[0].text, r[1].text) for r in rows][:2] == [("TSM", "MSE + CL"), ("2D ResNet", "MSE + CL")]
    assert (rows[-1][0].text, rows[-1][1].text) == ("TSM", "MSE + wCL (l2Sim)")


def test_bootstrap_ci():
    assert bootstrap_ci([0, 1, 2] * 10, [0, 1, 2] * 10, "accuracy") == (100.0, 100.0)
    lo, hi = bootstrap_ci([0, 1, 2, 1] * 10, [0, 1, 1, 1] * 10, "accuracy")
    assert lo < 75.0 < hi and hi - lo < 40
    lo, hi = bootstrap_ci([0, 1, 2, 1] * 10, [0, 1, 1, 1] * 10, "macro_f1")
    assert 0 <= lo < hi <= 1


def test_confusion_metric_matches_sklearn():
    from sklearn.metrics import confusion_matrix, f1_score

    from bench.stats import confusion_metric
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 3, (20, 15)), rng.integers(0, 2, (20, 15))  # class 2 never predicted
    cms = np.stack([confusion_matrix(a, b, labels=[0, 1, 2]) for a, b in zip(t, p)])
    want = [f1_score(a, b, labels=[0, 1, 2], average="macro", zero_division=0) for a, b in zip(t, p)]
    np.testing.assert_allclose(confusion_metric(cms, "macro_f1"), want)
    np.testing.assert_allclose(confusion_metric(cms, "accuracy"), 100 * (t == p).mean(1))


def test_patient_bootstrap_is_wider_than_pair_bootstrap_when_pairs_cluster():
    # 12 patients with 8 pairs each; a patient's pairs are all right or all wrong
    patients = np.repeat(np.arange(12), 8)
    true = np.tile([0, 1, 2, 1, 0, 1, 2, 1], 12)
    right = np.repeat(np.arange(12) % 3 != 0, 8)
    pred = np.where(right, true, (true + 1) % 3)
    pair_lo, pair_hi = bootstrap_ci(true, pred, "accuracy")
    pat_lo, pat_hi = bootstrap_ci(true, pred, "accuracy", clusters=patients)
    assert pat_lo < pair_lo and pat_hi > pair_hi
    assert (pat_hi - pat_lo) > 2 * (pair_hi - pair_lo)  # 8 pairs per patient: ~sqrt(8) wider
    assert pat_lo < 100 * right.mean() < pat_hi


def test_paired_effect_matches_scipy():
    a, b = {0: 0.5, 1: 0.6, 2: 0.55, 7: 0.9}, {0: 0.4, 1: 0.58, 2: 0.5}
    out = paired_effect(a, b)
    ref = stats.ttest_rel([0.5, 0.6, 0.55], [0.4, 0.58, 0.5])
    assert out["n"] == 3 and out["mean"] == pytest.approx((0.1 + 0.02 + 0.05) / 3)
    assert out["p_value"] == pytest.approx(ref.pvalue)
    assert (out["lo"], out["hi"]) == pytest.approx(tuple(ref.confidence_interval()))
    assert out["p_improve"] == 1.0


def test_probability_of_improvement_counts_ties_half():
    out = paired_effect({0: 0.5, 1: 0.4, 2: 0.3, 3: 0.6}, {0: 0.4, 1: 0.4, 2: 0.5, 3: 0.5})
    assert out["p_improve"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)


@pytest.mark.parametrize("lo, hi, paper, n, want", [
    (-0.05, 0.30, 0.276, 5, "inconclusive"),
    (-0.017, 0.091, 0.276, 5, "no effect detected; the paper's Δ excluded"),
    (0.02, 0.30, 0.276, 5, "significant; compatible with the paper"),
    (0.02, 0.09, 0.276, 5, "significant; same sign, smaller than the paper's"),
    (-0.40, -0.30, -0.129, 5, "significant; same sign, larger than the paper's"),
    (0.01, 0.09, -0.129, 5, "significant; opposite sign to the paper's"),
    (0.01, 0.09, float("nan"), 5, "significant"),
    (-0.01, 0.09, float("nan"), 5, "no effect detected"),
    (float("nan"), float("nan"), 0.276, 1, "n = 1: no interval"),
    (float("nan"), float("nan"), 0.276, 0, ""),
])
def test_verdict_says_what_the_interval_says(lo, hi, paper, n, want):
    from bench.stats import verdict
    assert verdict(lo, hi, paper, n) == want


def test_one_seed_says_there_is_no_interval(tmp_path):
    recs = [record("lus", "mse", 0, 50, 0.4), record("lus", "cl", 0, 60, 0.6)]
    summary = summarize(recs, grid_rows("table3"))
    assert summary.set_index(["dataset", "loss"]).loc[("lus", "cl"), "verdict"] == "n = 1: no interval"
    paths = write_tables(summary, recs, "table3", tmp_path)
    assert "| MSE + CL | 1 | – | – | +0.200 | – | – | 1.00 | +0.276 | n = 1: no interval |" in paths["md"].read_text()


def test_holm_against_a_hand_computed_case():
    from bench.stats import holm
    # sorted 0.01, 0.02, 0.03, 0.04 -> 4·0.01, 3·0.02, 2·0.03 (= 0.06, raised to the running max), 1·0.04
    got = holm([0.03, np.nan, 0.01, 0.04, 0.02])
    np.testing.assert_allclose(got, [0.06, np.nan, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.6])[1] == 1.0 and holm([0.5, 0.6])[0] == 1.0  # capped at 1
    assert np.isnan(holm([np.nan])).all()


def test_minimal_detectable_effect_has_80_percent_power():
    from bench.stats import minimal_detectable_effect
    mde = minimal_detectable_effect(0.05, 5)
    rng = np.random.default_rng(0)
    diffs = rng.normal(mde, 0.05, size=(20000, 5))
    t = diffs.mean(1) / (diffs.std(1, ddof=1) / np.sqrt(5))
    assert np.mean(np.abs(t) > stats.t.ppf(0.975, 4)) == pytest.approx(0.8, abs=0.01)
    assert minimal_detectable_effect(0.05, 20) < mde  # more seeds detect smaller effects


def test_spearman_within_patient_pairs():
    # one patient, embeddings rotating away with the score: distance grows with |Δscore|
    angles = np.array([0.0, 0.3, 0.7, 1.2])
    emb = {"u": np.stack([np.cos(angles), np.sin(angles)], 1), "score": angles * 100,
           "patient_id": np.array(["p"] * 4)}
    assert distance_score_spearman(emb) == pytest.approx(1.0)
    emb["patient_id"] = np.array(["a", "b", "c", "d"])  # no same-patient pair
    assert np.isnan(distance_score_spearman(emb))


def test_same_patient_pairs_are_exactly_the_masked_all_pairs_and_only_those():
    # Shuffled patients with 1-5 scans each: the pairs formed are the same-patient ones of
    # all n(n-1)/2, in the same (i, j) order, so the record's rho is unchanged bit for bit,
    # while the work grows with the sum of visits² instead of n² (1.2 M pairs at 400 patients).
    rng = np.random.default_rng(3)
    pid = rng.permutation(np.repeat(np.arange(60), rng.integers(1, 6, 60)).astype(str))
    i, j = same_patient_pairs(pid)
    a, b = np.triu_indices(len(pid), k=1)
    keep = pid[a] == pid[b]
    np.testing.assert_array_equal(i, a[keep])
    np.testing.assert_array_equal(j, b[keep])
    emb = {"u": rng.normal(size=(len(pid), 16)), "score": rng.normal(size=len(pid)), "patient_id": pid}
    everything = pairwise_distances(emb, a, b)
    assert distance_score_spearman(emb) == spearman(everything["distance"][keep], everything["delta"][keep])
    assert len(same_patient_pairs(np.array([], dtype=str))[0]) == 0


def test_sampled_pairs_cap_the_figure_and_keep_small_sets_whole():
    i, j = sampled_pairs(1520, 20_000, seed=0)  # a 400-patient held-out cohort's test scans
    assert len(i) == 20_000 and (i < j).all() and j.max() < 1520
    np.testing.assert_array_equal(i, sampled_pairs(1520, 20_000, seed=0)[0])  # seeded: the same figure
    i, j = sampled_pairs(30, 20_000)
    assert len(i) == 30 * 29 // 2  # fewer pairs than the cap: all of them


def test_table3_with_two_backbones_falls_back_to_model_rows(tmp_path):
    recs = RECORDS + [record("lus", "mse", 0, 45.0, 0.35, backbone="vit")]
    rows = grid_rows("table3") + [Row("lus", "vit", "mse")]
    groups, columns, body = layout(summarize(recs, rows), "table3")
    assert columns[:3] == ["Dataset", "Model", "Loss"]
    assert ("LUS", "ViT", "MSE") in {(r[0].text, r[1].text, r[2].text) for r in body}
    tex = to_latex(groups, columns, body, "cap")
    assert r"\begin{tabular}{lllcccc}" in tex and "\\toprule\nDataset & Model" in tex


def test_failed_and_stale_rows_are_marked(tmp_path):
    recs = [record("lus", "mse", 0, 50, 0.4), record("lus", "cl", 0, 0, 0, status="failed"),
            record("lus", "wcl", 0, 55, 0.45, code="code-old")]
    summary = summarize(recs, grid_rows("table3"), lambda rec: rec.code_version != "code-a").set_index(["dataset", "loss"])
    assert summary.loc[("lus", "cl"), "n"] == 0 and summary.loc[("lus", "cl"), "n_failed"] == 1
    assert not summary.loc[("lus", "mse"), "stale"] and summary.loc[("lus", "wcl"), "stale"]
    paths = write_tables(summarize(recs, grid_rows("table3"), lambda rec: rec.code_version != "code-a"), recs, "table3", tmp_path)
    md = paths["md"].read_text()
    assert "| MSE + CL | failed | 68.25 | failed | 0.736 |" in md and "| MSE + CL | 0 (+1 failed) |" in md and "0.450 †" in md and "--rerun-stale" in md
    assert r"0.450 $^\dagger$" in paths["tex"].read_text()


def test_reference_rows_headroom_and_no_bold(tmp_path):
    from bench.grid import ANY, with_references
    rows = with_references([Row("lus", "tsm_r18", "mse"), Row("lus", "tsm_r18", "cl")], lambda d: True)
    assert [(r.backbone, r.loss) for r in rows] == [
        ("tsm_r18", "mse"), ("tsm_r18", "cl"), (ANY, "majority"), ("tsm_r18", "untrained"), (ANY, "oracle")]
    recs = [record("lus", "mse", s, 50, 0.40 + 0.01 * s) for s in range(2)] + \
           [record("lus", "untrained", s, 40, 0.30) for s in range(2)] + \
           [record("lus", "oracle", s, 80, 0.70, backbone=ANY) for s in range(2)] + \
           [record("lus", "majority", s, 90, 0.90, backbone=ANY) for s in range(2)]
    s = summarize(recs, rows).set_index("loss")
    assert s.loc["mse", "headroom"] == pytest.approx((0.405 - 0.30) / (0.70 - 0.30))
    assert np.isnan(s.loc["untrained", "headroom"]) and s.loc["oracle", "kind"] == "reference"
    assert np.isnan(s.loc["majority", "macro_f1_vs_mse"])  # references are not compared with MSE
    near = [r for r in recs if r.loss != "oracle"] + \
           [record("lus", "oracle", s, 80, f1, backbone=ANY) for s, f1 in enumerate((0.25, 0.37))]
    assert np.isnan(summarize(near, rows).set_index("loss").loc["mse", "headroom"])  # oracle CI reaches untrained
    _, _, body = layout(summarize(recs, rows), "table4")
    majority = next(r for r in body if r[1].text == "Majority (ref.)")
    assert majority[0].text == "–" and not majority[3].bold  # the best F1, but not a method
