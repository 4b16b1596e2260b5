"""One declared options schema (bench.options): every sweep flag is a field of SweepOptions
and every field a flag (or declared Python-only), the CLI's defaults are the Python API's,
each option survives CLI -> config.toml -> --config as the same cells, and an executor's
option given with another executor is refused in one line."""
import argparse
import importlib.util
from dataclasses import fields

import pytest
import torch

from bench import sweep
from bench.cli import add_sweep_arguments, parse
from bench.config import write_config
from bench.limits import cpu_cores
from bench.options import SweepOptions, config_fields, default_of, flagged, from_args

COMMAND_FLAGS = {"config", "tables_only", "tracker", "tracker_uri"}  # how the command runs, not a sweep option
PYTHON_ONLY = {"folder"}  # set by sensitivity studies, no flag
# A value other than the default for every flagged option ({tmp}, {weights}: paths of the test). An option
# of the ray or submitit executor is given with --executor of its own.
EXAMPLES = {
    "grid": ["--grid", "beyond"], "preset": ["--preset", "quick"], "overrides": ["--set", "lr=5e-4"],
    "seeds": ["--seeds", "2"], "seed_list": ["--seed-list", "3,5"], "datasets": ["--datasets", "adni"],
    "backbones": ["--backbones", "resnet2d_r18"], "losses": ["--losses", "cl"], "sims": ["--sims", "l2"],
    "data": ["--data", "lus=synthetic-lus:n_patients=30"], "pretrained": ["--pretrained", "tsm_r18={weights}"],
    "on_bad_input": ["--on-bad-input", "skip"], "epochs": ["--epochs", "3"], "references": ["--no-references"],
    "out": ["--out", "{tmp}/other"], "cache_dir": ["--cache-dir", "{tmp}/other-cache"], "device": ["--device", "cpu"],
    "amp": ["--device", "cuda", "--no-amp"], "compile": ["--compile"],  # amp and threads: where they count
    "threads_per_cell": ["--device", "cpu", "--threads-per-cell", "2"],
    "executor": ["--executor", "ray"], "address": ["--address", "auto"], "gpus": ["--gpus", "1"],
    "jobs_per_gpu": ["--gpus", "1", "--jobs-per-gpu", "auto"], "jobs": ["--jobs", "2"],
    "slurm_partition": ["--slurm-partition", "gpu"], "slurm_time": ["--slurm-time", "30"],
    "slurm_gpus_per_task": ["--slurm-gpus-per-task", "2"], "slurm_cpus_per_task": ["--slurm-cpus-per-task", "4"],
    "slurm_folder": ["--slurm-folder", "{tmp}/jobs"], "rerun_stale": ["--rerun-stale"],
    "retry_failed": ["--retry-failed"],
    "folds": ["--folds", "3", "--data", "lus=synthetic-lus:test_patients=0"],
    "repeats": ["--folds", "3", "--repeats", "2", "--data", "lus=synthetic-lus:test_patients=0"],
}
FLAGGED = [f.name for f in flagged()]
FIELDS = {f.name: f for f in fields(SweepOptions)}


def _base(tmp) -> list[str]:
    return ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse", "--out", str(tmp / "out"),
            "--cache-dir", str(tmp / "cache")]


def _example(name: str, tmp) -> list[str]:
    """The example flags of an option, with --executor of the ray / submitit options' own."""
    executor = FIELDS[name].metadata.get("executor")
    weights = tmp / "w.safetensors"
    weights.write_bytes(b"0" * 10)
    own = ["--executor", executor] if executor not in (None, "local") else []
    return own + [a.format(tmp=tmp, weights=weights) for a in EXAMPLES[name]]


def _needs(argv: list[str], monkeypatch) -> None:
    """Skip what this machine cannot plan; --gpus and cuda plan with a CUDA device pretended."""
    for flag, module in (("ray", "ray"), ("submitit", "submitit")):
        if flag in argv and importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}")
    if "--threads-per-cell" in argv and cpu_cores() < 2:
        pytest.skip("needs 2 CPU cores")
    if ("--gpus" in argv or "cuda" in argv) and not torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_flags_and_options_are_one_to_one():
    p = argparse.ArgumentParser()
    add_sweep_arguments(p)
    flags = {a.dest: a.option_strings for a in p._actions if a.dest != "help"}
    assert all("flag" in f.metadata for f in fields(SweepOptions))  # a plain field is not an option
    assert set(flags) - COMMAND_FLAGS == set(FLAGGED)
    assert {name for name in FIELDS if name not in FLAGGED} == PYTHON_ONLY
    assert all(flags[f.name] == [f.metadata["flag"]] for f in flagged())
    assert set(EXAMPLES) == set(FLAGGED)  # a new option gets its round-trip case below


def test_the_clis_defaults_are_the_python_apis():
    assert from_args(parse(["run"])) == SweepOptions()
    assert from_args(parse(["sensitivity", "--knob", "signal", "--values", "0,1"])) == SweepOptions(grid="table3")


@pytest.mark.parametrize("name", FLAGGED)
def test_each_option_round_trips_through_config_toml(name, tmp_path, monkeypatch):
    argv = _base(tmp_path) + _example(name, tmp_path)
    _needs(argv, monkeypatch)
    given = from_args(parse(argv))
    assert getattr(given, name) != default_of(FIELDS[name])  # the example is not the default
    first = sweep.plan(given, decode=False)
    path = write_config(first, tmp_path / "config.toml")
    reread = from_args(parse(["--config", str(path), "--out", str(tmp_path / "out"),
                              "--cache-dir", str(tmp_path / "cache")]))
    assert [s.run_id for s in sweep.plan(reread, decode=False).specs] == [s.run_id for s in first.specs]
    if name in {f.name for f in config_fields().values()} and "write" not in FIELDS[name].metadata:
        assert getattr(reread, name) == getattr(given, name)  # also where the cells do not show it (amp on a CPU)


def test_a_flag_wins_over_the_config_files_epochs_and_seeds(tmp_path):
    """A written config.toml holds the resolved preset ([set] epochs) and the seed list:
    --epochs / --seeds given beside it choose, as any flag does over the file."""
    first = sweep.plan(from_args(parse(_base(tmp_path) + ["--seeds", "3"])), decode=False)
    path = write_config(first, tmp_path / "config.toml")
    again = from_args(parse(["--config", str(path), "--epochs", "1", "--seeds", "2", "--out", str(tmp_path / "out")]))
    plan = sweep.plan(again, decode=False)
    assert plan.ctx.preset.epochs == 1 and plan.seeds == [0, 1] and "epochs" not in again.overrides
    assert plan.ctx.preset.lr == first.ctx.preset.lr  # the file's other settings still hold


@pytest.mark.parametrize("name", [f.name for f in flagged() if "executor" in f.metadata])
def test_an_executors_option_with_another_executor_is_one_line(name, tmp_path, usage_error):
    other = "ray" if FIELDS[name].metadata["executor"] != "ray" else "submitit"
    argv = _base(tmp_path) + [a.format(tmp=tmp_path, weights="") for a in EXAMPLES[name]] + ["--executor", other]
    err = usage_error(argv, FIELDS[name].metadata["flag"])
    assert f"--executor {FIELDS[name].metadata['executor']}" in err or f"{other} places cells itself" in err
