"""``--folds`` end to end on the ADNI-like real-data fixture: K cells per row and repeat, every
patient tested once per repeat, the table's ΔF1 interval by the corrected resampled t, and a
rerun that redoes nothing."""
import json

import numpy as np
import pandas as pd
import pytest

import fixtures_realdata as fx
from bench.cli import main
from bench.stats import corrected_paired_effect, paired_effect

pytestmark = pytest.mark.filterwarnings("ignore::bench.data.readers.ClipWarning")


def test_folds_run_end_to_end_on_real_data(tmp_path, capsys):
    csv, volumes = fx.build_adni(tmp_path / "adni")
    fx.add_adni_patients(csv, volumes, 6)  # 9 patients: every fold trains on two labels
    argv = ["--grid", "table3", "--preset", "smoke", "--datasets", "adni", "--losses", "mse,cl", "--no-references",
            "--folds", "3", "--repeats", "2", "--data", f"adni=adni:{csv},{volumes}", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert "(2 rows × 2 repeats × 3 folds)" in capsys.readouterr().out
    runs = tmp_path / "out" / "table3" / "runs"
    recs = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    assert len(recs) == 12 and all(r["status"] == "finished" for r in recs)
    assert sorted((r["loss"], r["seed"], r["fold"]) for r in recs) == sorted(
        (loss, s, k) for loss in ("mse", "cl") for s in (0, 1) for k in range(3))
    assert all(f"-s{r['seed']}-f{r['fold']}-" in r["run_id"] and r["folds"] == 3 for r in recs)
    patients = recs[0]["data"]["patients"]
    for loss in ("mse", "cl"):
        for s in (0, 1):
            folds = [r for r in recs if r["loss"] == loss and r["seed"] == s]
            tested = [set(r["test_pairs"]["patient"]) for r in folds]
            assert sum(map(len, tested)) == len(set().union(*tested)) == patients  # each patient in one test split
            assert sum(r["data"]["split_patients"]["test"] for r in folds) == patients

    summary = pd.read_csv(tmp_path / "out" / "table3" / "table3.csv").set_index("loss")
    f1 = {(r["loss"], r["seed"], r["fold"]): r["metrics"]["macro_f1"] for r in recs}
    diffs = np.array([[f1["cl", s, k] - f1["mse", s, k] for k in range(3)] for s in (0, 1)])
    want = corrected_paired_effect(diffs)
    assert summary.loc["cl", "n_paired"] == 6
    assert np.ptp(diffs) > 0  # an interval, not a point
    got = summary.loc["cl", ["macro_f1_vs_mse_lo", "macro_f1_vs_mse_hi"]].to_numpy(float)
    assert got == pytest.approx([want["lo"], want["hi"]], abs=1e-4)  # the CSV has 4 decimals
    naive = paired_effect(dict(enumerate(diffs.ravel())), dict.fromkeys(range(6), 0.0))
    assert want["hi"] - want["lo"] > 1.5 * (naive["hi"] - naive["lo"])  # √(1/6 + 1/2) vs √(1/6)
    assert "patient-level 3-fold cross-validation, 2 repeat(s)" in (tmp_path / "out" / "table3" / "table3.md").read_text()

    mtimes = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert main(argv) == 0
    assert "all 12 cells were already finished" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")} == mtimes  # resume redoes no cell
