"""A researcher's habits: subcommand help, --set / --config, learning curves, MLflow,
SLURM through submitit, progress from workers, LaTeX that fits a page."""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import sweep
from bench.cli import COMMANDS, main
from conftest import exit_code

REPO = Path(__file__).resolve().parent.parent
SMOKE = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("habits")
    tracker = ["--tracker", "mlflow"] if importlib.util.find_spec("mlflow") else []  # else its test skips
    assert main(SMOKE + ["--set", "epochs=3", "--out", str(out), "--cache-dir", str(cache), *tracker]) == 0
    return out


def test_help_lists_every_subcommand_and_each_has_its_own(capsys):
    assert exit_code(["--help"]) == 0
    text = capsys.readouterr().out
    for name in COMMANDS:
        assert f"\n    {name}" in text
    for name in COMMANDS:
        assert exit_code([name, "--help"]) == 0
        assert f"usage: run_all.py {name}" in capsys.readouterr().out
    script = Path(sys.executable).parent / "learner-bench"
    if script.exists():  # the console script is the same CLI
        done = subprocess.run([str(script), "check-data", "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "--quick" in done.stdout


def test_grid_flags_without_a_subcommand_still_run_a_grid(tmp_path, capsys):
    assert exit_code(["--grid", "table9"]) == 2
    assert "unknown grid 'table9'" in capsys.readouterr().err


def test_set_is_in_the_fingerprint_and_config_toml_reruns_the_same_cells(smoke_run, cache, capsys):
    runs = {p.name for p in (smoke_run / "table3" / "runs").glob("*-mse-*.json")}
    config = smoke_run / "table3" / "config.toml"
    text = config.read_text()
    assert "epochs = 3" in text and 'preset = "smoke"' in text and "--config" in text
    capsys.readouterr()
    assert main(["--config", str(config), "--out", str(smoke_run), "--cache-dir", str(cache)]) == 0
    assert "nothing to run" in capsys.readouterr().out
    assert {p.name for p in (smoke_run / "table3" / "runs").glob("*-mse-*.json")} == runs
    plan = sweep.plan(sweep.SweepOptions(grid="table3", preset="smoke", datasets=["lus"], overrides={"epochs": 4},
                                         out=smoke_run, cache_dir=cache))
    assert not any(f"{s.run_id}.json" in runs for s in plan.specs)  # another setting, other cells


@pytest.mark.parametrize("content, needle", [
    ('grid = "table3"\ncolour = "red"\n', "unknown key(s) colour; valid: grid, preset"),
    ("grid = \n", "not valid TOML"),
    ('[set]\nlr = "fast"\n', "setting lr='fast': expected a number"),
])
def test_bad_config_files_are_one_line(tmp_path, content, needle, usage_error):
    path = tmp_path / "c.toml"
    path.write_text(content)
    usage_error(["--config", str(path), "--out", str(tmp_path)], needle)


def test_learning_curves_are_drawn_and_in_the_report(smoke_run):
    out = smoke_run / "table3"
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "curves.pdf").exists()
    assert "![learning curves](curves.png)" in (out / "report.md").read_text()


def test_mlflow_holds_every_cell_and_export_replays_only_new_ones(smoke_run, tmp_path, capsys):
    MlflowClient = pytest.importorskip("mlflow", reason="needs MLflow (the tracker extra)").MlflowClient
    out = smoke_run / "table3"
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("learner-bench/table3")
    cells = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'cell'")
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert len(cells) == len(records) == 6
    mse = next(r for r in cells if r.data.params["loss"] == "mse")
    assert mse.data.params["preset.epochs"] == "3" and mse.data.params["numerics.cpu_threads"] == "1"
    assert len(client.get_metric_history(mse.info.run_id, "epoch_val_mse")) == 3
    rec = next(r for r in records if r["run_id"] == mse.data.tags["run_id"])
    assert mse.data.metrics["macro_f1"] == pytest.approx(rec["metrics"]["macro_f1"])
    (grid_run,) = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'grid'")
    names = {a.path for a in client.list_artifacts(grid_run.info.run_id)}
    assert {"table3.csv", "effects.png", "curves.png", "report.md"} <= names
    capsys.readouterr()
    assert main(["export-tracker", "--out", str(smoke_run)]) == 0
    assert "0 new cell(s) of 6 logged" in capsys.readouterr().out
    assert main(["export-tracker", "--out", str(smoke_run), "--tracker-uri", f"sqlite:///{tmp_path / 'team.db'}"]) == 0
    assert "6 new cell(s) of 6 logged" in capsys.readouterr().out


def test_workers_report_their_epochs(tmp_path, cache):
    seen = []

    class Reporter:
        def start(self, *a): pass
        def cell_started(self, spec): pass
        def epoch_done(self, *a): pass
        def cell_done(self, spec, rec): pass
        def stop(self): pass

        def workers_progress(self, running):
            seen.extend(running.values())
    plan = sweep.plan(sweep.SweepOptions(grid="table3", preset="smoke", datasets=["lus"], losses=["mse"], epochs=30,
                                         references=False, jobs=2, out=tmp_path, cache_dir=cache))
    assert sweep.run(plan, Reporter()).ran == 1
    assert seen and all(p["epochs"] == 30 and 1 <= p["epoch"] <= 30 for p in seen)
    assert {"loss", "val_mse"} <= set(seen[-1])


@pytest.mark.slow
def test_submitit_runs_resumes_and_reports_failures(tmp_path, cache, capsys):
    pytest.importorskip("submitit")
    weights = tmp_path / "broken.safetensors"
    weights.write_bytes(b"not a checkpoint")
    argv = SMOKE + ["--losses", "mse,cl", "--no-references", "--backbones", "tsm_r18,resnet2d_r18",
                    "--pretrained", f"resnet2d_r18={weights}", "--out", str(tmp_path / "out"),
                    "--cache-dir", str(cache)]
    assert main(argv + ["--executor", "submitit", "--slurm-folder", str(tmp_path / "jobs")]) == 1
    out = capsys.readouterr().out
    assert out.count("failed smoke-lus-resnet2d_r18") == 2 and "2 cell(s) failed" in out
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "out" / "table3" / "runs").glob("*.json")}
    assert sorted(r["status"] for r in records.values()) == ["failed", "failed", "finished", "finished"]
    assert main(argv + ["--executor", "submitit", "--slurm-folder", str(tmp_path / "jobs")]) == 1  # nothing re-run
    out = capsys.readouterr().out
    assert "2 cell(s) failed in an earlier run" in out and "2 cells were already finished, 0 ran now" in out
    local = tmp_path / "local"
    assert main(SMOKE + ["--losses", "mse,cl", "--no-references", "--backbones", "tsm_r18", "--out", str(local),
                         "--cache-dir", str(cache)]) == 0
    same = {p.stem: json.loads(p.read_text())["metrics"] for p in (local / "table3" / "runs").glob("*.json")}
    assert same == {k: r["metrics"] for k, r in records.items() if r["status"] == "finished"}


def test_latex_tables_fit_the_text_width(tmp_path):
    from bench.grid import grid_rows
    from bench.records import RunRecord
    from bench.grid import with_references
    from bench.tables import summarize, write_tables
    rows = with_references(grid_rows("table3"), lambda d: True)
    records = [RunRecord(run_id=f"{r}-{s}", grid="table3", dataset=r.dataset, backbone=r.backbone, loss=r.loss,
                         sim=r.sim, seed=s, preset="quick", fingerprint="f", code_version="c", status="finished",
                         settings={}, numerics={}, device="cpu", git_commit="g", finished_at="",
                         metrics={"accuracy": 55.55 + s, "macro_f1": 0.555 + s / 100, "weighted_f1": 0.5})
               for r in rows for s in range(3)]
    paths = write_tables(summarize(records, rows, lambda rec: rec.code_version != "c"), records, "table3", tmp_path)
    tex = paths["tex"].read_text()
    assert r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\box0}" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex here (.ci/run installs one)")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs,graphicx}\\begin{document}\n"
                   f"\\input{{{paths['tex'].name}}}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    assert "Overfull \\hbox" not in log and (tmp_path / "doc.pdf").stat().st_size > 1000
