"""The sensitivity command: one tidy line per (value, row, seed), a figure, resumable."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.cli import main
from bench.sensitivity import knob_trends


def test_sensitivity_command_writes_tidy_csv_and_figure_and_resumes(tmp_path, capsys):
    argv = ["sensitivity", "--knob", "shortcut", "--values", "0,1", "--losses", "mse,cl", "--datasets", "lus",
            "--preset", "smoke", "--seeds", "2", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    out = tmp_path / "sensitivity" / "shortcut"
    tidy = pd.read_csv(out / "sensitivity.csv")
    rows = ["mse", "cl", "majority", "untrained", "oracle"]
    assert len(tidy) == 2 * len(rows) * 2  # values x rows x seeds
    assert tidy.groupby(["value", "loss", "seed"]).size().eq(1).all()
    assert set(tidy["value"]) == {0.0, 1.0} and set(tidy["loss"]) == set(rows)
    assert tidy["macro_f1"].between(0, 1).all() and (tidy["knob"] == "shortcut").all()
    summary = pd.read_csv(out / "summary.csv")
    cl = summary[summary["loss"] == "cl"]
    assert len(cl) == 2 and cl["macro_f1_vs_mse"].notna().all() and cl["n_paired"].eq(2).all()
    assert (out / "sensitivity.png").stat().st_size > 10_000 and (out / "sensitivity.pdf").exists()
    trend = pd.read_csv(out / "trend.csv")
    effect = trend[trend["quantity"] == "macro_f1_vs_mse"]
    assert effect[["loss", "n_seeds", "values"]].values.tolist() == [["cl", 2, 2]]
    assert set(trend.loc[trend["quantity"] == "macro_f1", "loss"]) == set(rows)
    capsys.readouterr()
    assert main(argv) == 0
    assert "nothing to run" in capsys.readouterr().out  # a rerun skips every finished cell

    gone = sorted((out / "runs").glob("*-cl-*.json"))[0]
    gone.unlink()
    assert main(argv + ["--tables-only"]) == 0
    assert "1 of 10 cells have no readable record" in capsys.readouterr().out
    assert not gone.exists()  # --tables-only ran nothing
    assert len(pd.read_csv(out / "sensitivity.csv")) == len(tidy) - 1


def _tidy(delta_of_value, seeds=5, values=(0.0, 0.5, 1.0), seed=0, mse_slope=0.0):
    """Cells whose MSE macro-F1 moves by ``mse_slope`` per unit of the knob and whose CL − MSE
    difference is ``delta_of_value(v)``, each plus a per-seed offset and noise."""
    rng = np.random.default_rng(seed)
    lines = []
    for s in range(seeds):
        offset = rng.normal(0, 0.05)
        for v in values:
            mse = 0.5 + mse_slope * v + rng.normal(0, 0.02)
            for loss, f1 in (("mse", mse), ("cl", mse + delta_of_value(v) + offset + rng.normal(0, 0.02))):
                lines.append({"dataset": "lus", "backbone": "tsm_r18", "loss": loss, "sim": "cos", "kind": "method",
                              "status": "finished", "seed": s, "value": v, "macro_f1": f1})
    return pd.DataFrame(lines)


def _effect(tidy):
    trends = knob_trends(tidy)
    return trends[trends["quantity"] == "macro_f1_vs_mse"].iloc[0]


def test_effect_trend_recovers_a_slope_and_covers_zero_at_the_nominal_rate():
    tidy = _tidy(lambda v: 0.2 * v, seeds=8, mse_slope=-0.1)
    rising = _effect(tidy)
    mse = knob_trends(tidy).query("loss == 'mse'")
    assert mse["quantity"].tolist() == ["macro_f1"]  # MSE has no effect against itself
    assert mse["slope"].iloc[0] == pytest.approx(-0.1, abs=0.04) and mse["slope_hi"].iloc[0] < 0
    assert rising["loss"] == "cl" and rising["n_seeds"] == 8 and rising["values"] == 3
    assert rising["slope"] == pytest.approx(0.2, abs=0.04) and rising["slope_lo"] > 0.1 and rising["p_value"] < 0.01
    assert rising["change_over_range"] == pytest.approx(rising["slope"])  # range 0..1
    flat = [_effect(_tidy(lambda v: 0.0, seed=s)) for s in range(100)]
    assert 0.88 <= np.mean([t["slope_lo"] < 0 < t["slope_hi"] for t in flat]) <= 0.99  # 95 % coverage
    # the interval is the one-sample t-interval of the per-seed least-squares slopes
    tidy = _tidy(lambda v: 0.1 * v, values=(0.0, 0.1, 0.3))
    wide = tidy.pivot_table(index=["seed", "value"], columns="loss", values="macro_f1")
    per_seed = [stats.linregress(g.index.get_level_values("value"), g["cl"] - g["mse"]).slope
                for _, g in wide.groupby(level="seed")]
    ci = stats.ttest_1samp(per_seed, 0).confidence_interval()
    got = _effect(tidy)
    assert (got["slope_lo"], got["slope_hi"]) == pytest.approx((ci.low, ci.high))
    assert got["change_lo"] == pytest.approx(ci.low * 0.3)


def test_sensitivity_tables_only_before_any_cell_ran(tmp_path, capsys):
    argv = ["sensitivity", "--knob", "label_noise", "--values", "0,0.2", "--losses", "mse", "--datasets", "lus",
            "--preset", "smoke", "--seeds", "2", "--out", str(tmp_path), "--tables-only"]
    assert main(argv) == 0
    assert capsys.readouterr().out.count("8 of 8 cells have no readable record") == 2
    out = tmp_path / "sensitivity" / "label_noise"
    assert pd.read_csv(out / "summary.csv")["n"].eq(0).all() and not (out / "runs").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--knob", "colour", "--values", "0,1"], "unknown knob 'colour'; valid: signal, nuisance"),
    (["--knob", "shortcut", "--values", "0,x"], "shortcut takes float values"),
    (["--knob", "shortcut", "--values", "0"], "at least two distinct values"),
    (["--knob", "shortcut", "--values", "0,2"], "shortcut must be a number in [0, 1], got 2.0"),
    (["--knob", "shortcut", "--values", "0,1", "--data", "lus=lus-manifest:m.csv"], "varies a synthetic generator"),
])
def test_sensitivity_bad_arguments_are_one_line(extra, needle, tmp_path, usage_error):
    usage_error(["sensitivity", *extra, "--datasets", "lus", "--preset", "smoke", "--out", str(tmp_path)], needle)
