"""``--compile`` (torch.compile of the encoder) in a grid run and in the benchmark, on CPU.

Inductor needs a C compiler on the CPU; both tests are slow (compiling takes most of it).
"""
import json
import shutil

import pandas as pd
import pytest

from bench.cli import main

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")]


def test_compiled_cell_runs_and_is_recorded(tmp_path):
    argv = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "cl", "--seeds", "1",
            "--no-references", "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]
    assert main([*argv, "--compile"]) == 0
    (run,) = (tmp_path / "results" / "table3" / "runs").glob("*.json")
    rec = json.loads(run.read_text())
    assert rec["numerics"]["compile"] is True and rec["settings"]["numerics"]["compile"] is True
    assert 0 <= rec["metrics"]["macro_f1"] <= 1 and rec["pretrain"]["best_epoch"] >= 0
    # A compiled result is a different cell: the plain run does not count it as finished.
    assert main(argv) == 0
    assert len(list((tmp_path / "results" / "table3" / "runs").glob("*.json"))) == 2


def test_benchmark_compiles_the_fast_path_only(tmp_path):
    argv = ["--preset", "smoke", "--backbones", "tsm_r18", "--steps", "2", "--warmup", "2", "--compile",
            "--out", str(tmp_path)]
    assert main(["bench", *argv]) == 0
    (csv,) = tmp_path.glob("*-smoke-compile.csv")
    df = pd.read_csv(csv).set_index("mode")
    assert bool(df.loc["fast", "compiled"]) and not bool(df.loc["naive", "compiled"])
    assert (df["clips_per_s"] > 0).all()
