"""The spine end to end on the smoke preset: run, rerun (nothing redone), kill + resume."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import sweep
from bench.cli import main
from bench.records import git_commit

REPO = Path(__file__).resolve().parent.parent


def run_cli(out: Path, cache: Path, *extra: str) -> int:
    return main(["--grid", "table3", "--preset", "smoke", "--out", str(out), "--cache-dir", str(cache), *extra])


@pytest.fixture(scope="module")
def table3_smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("table3")
    assert run_cli(root / "results", root / "cache") == 0
    return root


def test_table3_smoke_writes_tables_figure_report(table3_smoke):
    out = table3_smoke / "results" / "table3"
    runs = sorted((out / "runs").glob("*.json"))
    # per dataset: 3 losses + majority, untrained and oracle references; embeddings where there is an encoder
    assert len(runs) == 12 and len(list((out / "runs").glob("*.npz"))) == 8
    csv = pd.read_csv(out / "table3.csv")
    rows = ["mse", "cl", "wcl", "majority", "untrained", "oracle"]
    assert list(zip(csv["dataset"], csv["loss"])) == [(d, r) for d in ("lus", "adni") for r in rows]
    assert csv["kind"].tolist() == (["method"] * 3 + ["reference"] * 3) * 2
    assert (csv["n"] == 1).all() and csv["accuracy_mean"].between(0, 100).all()
    assert csv["paper_accuracy"].tolist()[:3] == [55.48, 68.25, 62.80]
    assert csv["paper_accuracy"].tolist()[6:9] == [31.25, 31.99, 37.51]
    md = (out / "table3.md").read_text()
    for label in ("Majority (ref.)", "Untrained encoder (ref.)", "Oracle severity (ref.)"):
        assert f"| {label} |" in md and label.replace("é", "e") in (out / "table3.tex").read_text()
    assert "compatible with the paper" in md or "than the paper's" in md
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 12 and (cells["macro_f1_ci_lo"] <= cells["macro_f1"]).all()
    assert r"\toprule" in (out / "table3.tex").read_text()
    assert "| Loss | LUS Acc. (ours)" in (out / "table3.md").read_text()
    assert (out / "figure1.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "Does the paper's effect reproduce?" in report and "![effects](effects.png)" in report
    assert (out / "effects.png").stat().st_size > 10_000
    assert report.count("| LUS | tsm_r18 |") == 4 and "| ADNI | tsm_r18 | wcl | cos |" in report
    rec = json.loads(next(p for p in runs if "-mse-" in p.name).read_text())
    for key in ("metrics", "settings", "numerics", "timing", "device", "versions", "git_commit", "code_version",
                "data", "pretrained", "schema"):
        assert key in rec
    assert rec["status"] == "finished" and rec["numerics"]["cpu_threads"] == 1
    assert rec["pretrained"] == "none" and rec["timing"]["train_clips_per_second"] > 0
    assert set(rec["data"]["split_patients"]) == {"train", "val", "test"}


def test_rerun_redoes_nothing_and_says_so(table3_smoke, capsys):
    runs = table3_smoke / "results" / "table3" / "runs"
    before = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    capsys.readouterr()
    assert run_cli(table3_smoke / "results", table3_smoke / "cache") == 0
    assert "all 12 cells were already finished" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")} == before


def test_tables_only_rebuilds_identical_tables(table3_smoke):
    out = table3_smoke / "results" / "table3"
    before = (out / "table3.csv").read_text()
    (out / "table3.csv").unlink()
    assert run_cli(table3_smoke / "results", table3_smoke / "cache", "--tables-only") == 0
    assert (out / "table3.csv").read_text() == before


def test_a_half_written_record_is_rerun(table3_smoke, tmp_path, capsys):
    shutil.copytree(table3_smoke / "results", tmp_path / "results")
    runs = tmp_path / "results" / "table3" / "runs"
    victim = sorted(runs.glob("*lus*mse*.json"))[0]
    good = json.loads(victim.read_text())
    victim.write_text(victim.read_text()[:100])  # what a non-atomic writer would leave behind
    capsys.readouterr()
    assert run_cli(tmp_path / "results", table3_smoke / "cache", "--datasets", "lus") == 0
    assert "1 ran now" in capsys.readouterr().out
    assert json.loads(victim.read_text())["metrics"] == good["metrics"]  # same seed, same result


@pytest.mark.slow
def test_killed_sweep_resumes_with_the_same_tables(table3_smoke, tmp_path):
    """Kill a sweep after its first finished cell; the rerun finishes only the rest."""
    out, cache = tmp_path / "results", table3_smoke / "cache"
    cmd = [sys.executable, str(REPO / "run_all.py"), "--grid", "table3", "--preset", "smoke",
           "--out", str(out), "--cache-dir", str(cache)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs = out / "table3" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and not list(runs.glob("*.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert 1 <= len(finished) < 12
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed: {len(finished)} cells were already finished, {12 - len(finished)} ran now" in done.stdout
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in runs.glob("*.json")) if n in finished} == finished
    reference = pd.read_csv(table3_smoke / "results" / "table3" / "table3.csv")
    resumed = pd.read_csv(out / "table3" / "table3.csv")
    pd.testing.assert_frame_equal(resumed, reference)


def test_beyond_grid_runs_every_loss(table3_smoke, tmp_path):
    argv = ["--grid", "beyond", "--preset", "smoke", "--datasets", "lus", "--out", str(tmp_path),
            "--cache-dir", str(table3_smoke / "cache")]
    assert main(argv) == 0
    csv = pd.read_csv(tmp_path / "beyond" / "beyond.csv")
    assert csv["loss"].tolist() == ["mse", "cl", "wcl", "wcl_out", "rnc", "yaware", "supcon", "majority",
                                    "untrained", "oracle"]
    assert (csv["n"] == 1).all() and csv["macro_f1_mean"].between(0, 1).all()


def test_pretrained_weights_are_loaded_and_recorded(table3_smoke, tmp_path):
    import torch
    from safetensors.torch import save_file

    import backbones
    # weights of our own: another seed's initialisation (all-equal weights make a constant
    # encoder, whose cell fails as a collapsed classifier)
    torch.manual_seed(123)
    source = backbones.create("tsm_r18", num_frames=4, img_size=32, variant="tiny")
    path = tmp_path / "tsm_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.net.state_dict().items()}, str(path))
    argv = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse",
            "--pretrained", f"tsm_r18={path}", "--no-references", "--out", str(tmp_path / "out"),
            "--cache-dir", str(table3_smoke / "cache")]
    assert main(argv) == 0
    (rec_path,) = (tmp_path / "out" / "table3" / "runs").glob("*.json")
    rec = json.loads(rec_path.read_text())
    assert rec["pretrained"] == str(path) and rec["settings"]["pretrained"] == str(path)
    # a different weights file is a different cell: it never reuses the random-init result
    random_init = {p.name for p in (table3_smoke / "results" / "table3" / "runs").glob("*lus*mse*s0*.json")}
    assert rec_path.name not in random_init


def test_records_name_the_commit_the_sweep_started_from(tmp_path):
    """A commit made while a sweep runs does not change the code running it, nor its records."""
    plan = sweep.plan(sweep.SweepOptions(grid="table3", preset="smoke", datasets=["lus"], losses=["mse"],
                                         out=tmp_path, cache_dir=tmp_path / "cache", references=False))
    assert plan.ctx.git_commit == git_commit()
    plan.ctx.git_commit = "commit-at-sweep-start"
    result = sweep.run(plan)
    assert result.ran == 1
    assert json.loads(plan.ctx.run_path(plan.specs[0]).read_text())["git_commit"] == "commit-at-sweep-start"
