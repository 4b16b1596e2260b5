"""The sensitivity command: one tidy line per (value, row, seed), a figure, resumable."""
import pandas as pd
import pytest

from bench.cli import main


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
    capsys.readouterr()
    assert main(argv) == 0
    assert "nothing to run" in capsys.readouterr().out  # a rerun skips every finished cell

    gone = sorted((out / "runs").glob("*-cl-*.json"))[0]
    gone.unlink()
    assert main(argv + ["--tables-only"]) == 0
    assert "1 of 10 cells have no readable record" in capsys.readouterr().out
    assert not gone.exists()  # --tables-only ran nothing
    assert len(pd.read_csv(out / "sensitivity.csv")) == len(tidy) - 1


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
