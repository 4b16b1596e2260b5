"""Trustworthy results: stale code named, divergence fails a cell, in-cell resume gives the
same numbers, claims, strict records, and every bad command line is one line + exit 2."""
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import bench.train
from bench import claims, sweep
from bench.cli import main
from bench.code_version import source_digest
from bench.presets import PRESETS
from bench.files import FILE_MODE
from bench.records import RecordError, content_checksum, read_record
from bench.cell import CODE_VERSION

REPO = Path(__file__).resolve().parent.parent


def options(tmp: Path, cache: Path, **kw) -> sweep.SweepOptions:
    base = dict(grid="table3", preset="smoke", datasets=["lus"], losses=["mse"], out=tmp / "out", cache_dir=cache,
                references=False)
    return sweep.SweepOptions(**{**base, **kw})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


# --- code version -------------------------------------------------------------------------

def test_code_version_follows_code_not_comments_or_docstrings(tmp_path, monkeypatch):
    import bench.code_version as cv
    for d in ("bench", "backbones"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cv, "ROOT", tmp_path)

    def version():
        cv.code_version.cache_clear()
        return cv.code_version()
    base = version()
    losses = tmp_path / "bench" / "losses.py"
    text = losses.read_text()
    losses.write_text(text.replace('"""', '"""Reworded. ', 1) + "\n# a comment\n")
    assert version() == base  # docstrings and comments are not code
    (tmp_path / "bench" / "tables.py").write_text("X = 1\n")
    assert version() == base  # presentation code is not result-affecting
    losses.write_text(text + "\nEXTRA = 2\n")
    assert version() != base
    cv.code_version.cache_clear()


# Modules the runner reaches that decide which cell runs or how it is scheduled and stored,
# never a number: editing them must not make finished cells stale.
IDENTITY_AND_PLUMBING = {"bench/cell.py", "bench/code_version.py", "bench/grid.py", "bench/paper.py",
                         "bench/plugins.py", "bench/claims.py", "bench/watchdog.py", "bench/files.py",
                         "bench/records.py", "bench/devices.py", "bench/limits.py"}


def test_code_version_covers_every_module_a_cell_computes_with():
    """Every bench module the runner imports (transitively) is hashed, or is listed above as
    identity and plumbing: a new module of numerics (as the similarities once were) cannot
    slip out of the hash."""
    import ast
    from bench.code_version import result_affecting_files

    def imported(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        files = set()
        for name in names:
            for cand in (Path(*name.split(".")).with_suffix(".py"), Path(*name.split(".")) / "__init__.py"):
                if (REPO / cand).exists() and cand.parts[0] in ("bench", "backbones"):
                    files.add(cand.as_posix())
        return files

    hashed = {f.relative_to(REPO).as_posix() for f in result_affecting_files()}
    seen, todo = set(), ["bench/runner.py"]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += imported(REPO / f)
    unhashed = sorted(f for f in seen - hashed - IDENTITY_AND_PLUMBING if not f.endswith("__init__.py"))
    assert not unhashed, f"modules a cell computes with but outside the code version: {unhashed}"


def test_source_digest_ignores_formatting():
    assert source_digest("def f(x):\n    return x+1\n") == source_digest("def f( x ):\n    '''doc'''\n    return (x + 1)\n")
    assert source_digest("def f(x):\n    return x+1\n") != source_digest("def f(x):\n    return x+2\n")


def test_stale_cells_are_named_marked_and_rerun_on_request(tmp_path, cache, capsys):
    argv = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse", "--no-references",
            "--out", str(tmp_path), "--cache-dir", str(cache)]
    assert main(argv) == 0
    (path,) = (tmp_path / "table3" / "runs").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["code_version"] == CODE_VERSION
    rec["code_version"] = "0123456789ab"  # as if made by other result-affecting code
    path.write_text(json.dumps({**rec, "checksum": content_checksum(rec)}))
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 of 1 cells were made by other result-affecting code: smoke-lus-tsm_r18-mse" in out
    assert "--rerun-stale recomputes them" in out
    assert "†" in (tmp_path / "table3" / "table3.md").read_text()
    assert main(argv + ["--rerun-stale"]) == 0
    assert "recomputed (--rerun-stale)" in capsys.readouterr().out
    assert json.loads(path.read_text())["code_version"] == CODE_VERSION
    assert "†" not in (tmp_path / "table3" / "table3.md").read_text()


# --- divergence ---------------------------------------------------------------------------

def test_divergence_fails_the_cell_with_epoch_and_step(tmp_path, cache, monkeypatch):
    real_step, calls = bench.train.train_step, []

    def nan_from_epoch_two(*args, **kw):
        out = real_step(*args, **kw)
        calls.append(1)
        return out * math.nan if len(calls) > steps_per_epoch + 2 else out
    plan = sweep.plan(options(tmp_path, cache))
    n_train = len(__import__("bench.data.splits", fromlist=["x"]).split_patients(
        plan.datasets["lus"].scans, 0)["train"])
    steps_per_epoch = n_train // PRESETS["smoke"].batch_size
    monkeypatch.setattr(bench.train, "train_step", nan_from_epoch_two)
    result = sweep.run(plan)
    ((run_id, error),) = result.failed
    assert f"diverged at epoch 2 of 2, step 3 of {steps_per_epoch} (loss = nan)" in error
    raw = plan.ctx.run_path(plan.specs[0]).read_text()
    rec = json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert rec["status"] == "failed" and rec["metrics"] is None and "diverged at epoch 2" in rec["error"]
    assert not plan.ctx.checkpoint_path(plan.specs[0]).exists()
    assert "failed" in sweep.records_of(plan)[0].status
    monkeypatch.setattr(bench.train, "train_step", real_step)
    assert sweep.run(plan).ran == 0  # a failed cell is kept: retried only on request
    assert sweep.run(replace(plan, options=replace(plan.options, retry_failed=True))).ran == 1


# --- in-cell resume -----------------------------------------------------------------------

class StopAfter:
    """A reporter that kills the sweep (like Ctrl-C) after ``epochs`` epochs of a cell."""

    def __init__(self, epochs):
        self.epochs = epochs

    def start(self, *a):
        pass

    def cell_started(self, spec):
        pass

    def epoch_done(self, epoch, row):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt

    def stop(self):
        pass


def test_killed_cell_resumes_from_its_checkpoint_with_the_same_numbers(tmp_path, cache):
    whole = sweep.run(sweep.plan(options(tmp_path / "a", cache, epochs=4))).records[0]
    plan = sweep.plan(options(tmp_path / "b", cache, epochs=4))
    with pytest.raises(KeyboardInterrupt):
        sweep.run(plan, StopAfter(2))
    assert plan.ctx.checkpoint_path(plan.specs[0]).exists()
    assert not plan.ctx.claim_path(plan.specs[0]).exists()  # released on the way out
    resumed = sweep.run(plan).records[0]
    assert resumed.pretrain.resumed_at_epoch == 2 and whole.pretrain.resumed_at_epoch is None
    assert resumed.metrics == whole.metrics and resumed.test_pairs == whole.test_pairs
    strip = [{k: v for k, v in h.items() if "seconds" not in k} for h in whole.pretrain.history]
    assert [{k: v for k, v in h.items() if "seconds" not in k} for h in resumed.pretrain.history] == strip
    assert not plan.ctx.checkpoint_path(plan.specs[0]).exists()  # gone once the cell finished


def test_a_resumed_cell_says_so_on_the_console(tmp_path, cache, capsys):
    plan = sweep.plan(options(tmp_path, cache, epochs=4))
    with pytest.raises(KeyboardInterrupt):
        sweep.run(plan, StopAfter(2))
    capsys.readouterr()
    assert main(["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse", "--no-references",
                 "--epochs", "4", "--out", str(tmp_path / "out"), "--cache-dir", str(cache)]) == 0
    assert f"resumed {plan.specs[0].run_id} from epoch 2 of 4 (its checkpoint)" in capsys.readouterr().out


def test_a_checkpoint_of_other_code_is_not_resumed(tmp_path):
    from bench.checkpoint import Checkpoint
    Checkpoint(tmp_path / "c.ckpt", {"run_id": "r", "code": "old"}).save({"epoch": 3})
    assert Checkpoint(tmp_path / "c.ckpt", {"run_id": "r", "code": "new"}).load() is None
    assert Checkpoint(tmp_path / "c.ckpt", {"run_id": "r", "code": "old"}).load() == {"epoch": 3}
    (tmp_path / "c.ckpt").write_bytes(b"garbage")
    assert Checkpoint(tmp_path / "c.ckpt", {"run_id": "r", "code": "old"}).load() is None


# --- claims and records -------------------------------------------------------------------

def test_claims_live_and_dead(tmp_path):
    path = tmp_path / "x.claim"
    claims.acquire(path, "x")
    claims.acquire(path, "x")  # our own claim: fine
    held = json.loads(path.read_text())
    path.write_text(json.dumps({**held, "pid": os.getppid()}))  # a live process holds it
    with pytest.raises(claims.ClaimedElsewhere, match=f":{os.getppid()} since"):
        claims.acquire(path, "x")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({**held, "pid": dead.pid}))  # its process is gone: taken over
    claims.acquire(path, "x")
    assert json.loads(path.read_text())["pid"] == os.getpid()
    path.write_text(json.dumps({**held, "host": "elsewhere", "pid": 1}))
    with pytest.raises(claims.ClaimedElsewhere):  # another host, fresh heartbeat: respected
        claims.acquire(path, "x")
    old = time.time() - claims.STALE_AFTER_S - 10
    os.utime(path, (old, old))
    claims.acquire(path, "x")  # another host, silent for too long: taken over
    claims.release(path)
    assert not path.exists()


def test_records_are_strict_json_with_folder_permissions(tmp_path, cache):
    result = sweep.run(options(tmp_path, cache))
    (path,) = (tmp_path / "out" / "table3" / "runs").glob("*.json")
    assert path.stat().st_mode & 0o777 == FILE_MODE
    assert path.with_suffix(".npz").stat().st_mode & 0o777 == FILE_MODE
    rec = read_record(path)
    assert rec == result.records[0] and rec.finished and rec.worker.endswith(f":{os.getpid()}")


@pytest.mark.parametrize("content, needle", [
    ("{not json", "is not valid JSON"),
    ('{"schema": 1, "metrics": {}}', "has record schema 1, this code reads schema(s) 2, 3, 4"),
    ('{"schema": 2}', "lacks field(s)"),
    ("[]", "not a run record"),
])
def test_unusable_records_are_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(RecordError, match="the cell is rerun") as err:
        read_record(path)
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_corrupt_sidecar_and_record_do_not_crash(tmp_path, cache, capsys):
    argv = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--out", str(tmp_path),
            "--cache-dir", str(cache)]
    assert main(argv) == 0
    runs = sorted((tmp_path / "table3" / "runs").glob("*.json"))
    runs[0].with_suffix(".npz").write_bytes(b"garbage")
    runs[1].write_text("{half")
    capsys.readouterr()
    with pytest.warns(UserWarning, match="is not a readable embedding file"):
        assert main(argv + ["--tables-only"]) == 0
    assert "1 of 6 cells have no readable record" in capsys.readouterr().out
    with pytest.warns(UserWarning):
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"unreadable record {runs[1]}: is not valid JSON" in out and "1 ran now" in out


def test_python_api_and_cli_name_the_same_cells(tmp_path, cache):
    argv = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--out", str(tmp_path),
            "--cache-dir", str(cache)]
    assert main(argv) == 0
    plan = sweep.plan(sweep.SweepOptions(grid="table3", preset="smoke", datasets=["lus"], out=tmp_path,
                                         cache_dir=cache))
    assert len(sweep.cell_states(plan).finished) == len(plan.specs) == 6  # 3 losses + 3 references


# --- bad command lines --------------------------------------------------------------------

def _bad_paths(tmp: Path) -> dict[str, Path]:
    afile = tmp / "afile"
    afile.write_text("x")
    readonly = tmp / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    return {"file": afile, "readonly": readonly}


BAD = [
    (["--threads-per-cell", "-1"], "--threads-per-cell must be at least 1, got -1"),
    (["--threads-per-cell", "0"], "--threads-per-cell must be at least 1, got 0"),
    (["--epochs", "-1"], "--epochs must be at least 1, got -1"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--jobs", "-1"], "--jobs must be at least 1, got -1"),
    (["--jobs-per-gpu", "0"], "--jobs-per-gpu must be at least 1"),
    (["--gpus", "-1"], "--gpus must be at least 0, got -1"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--seed-list", ""], "--seed-list is empty"),
    (["--seed-list", "0,0"], "--seed-list repeats seed(s) 0"),
    (["--seed-list=-1"], "seeds must be >= 0"),
    (["--seed-list", "a"], "--seed-list: invalid"),
    (["--device", "tpu"], "--device 'tpu' is not a device; valid: auto, cpu, cuda, cuda:N"),
    (["--device", "cuda:abc"], "the GPU index must be a number"),
    (["--gpus", "1", "--jobs", "2"], "--jobs is for CPU cells"),
    (["--executor", "ray", "--jobs", "2"], "ray places cells itself"),
    (["--executor", "submitit", "--gpus", "1"], "submitit places cells itself"),
    (["--jobs-per-gpu", "auto"], "--jobs-per-gpu auto packs cells on GPUs: use it with --gpus N"),
    (["--jobs-per-gpu", "many"], "--jobs-per-gpu 'many': give a number of cells or auto"),
    (["--set", "lrr=1"], "unknown setting 'lrr'; valid: variant, img_size"),
    (["--set", "epochs=abc"], "setting epochs='abc': expected an integer"),
    (["--set", "lr=-1"], "setting lr=-1.0: must be > 0"),
    (["--set", "frames=3"], "cache_frames must be a multiple of frames"),
    (["--set", "lr"], "--set must look like NAME=VALUE"),
    (["--config", "/no/such.toml"], "--config /no/such.toml: cannot read it"),
    (["--address", "127.0.0.1:6379"], "use it with --executor ray"),
    (["--executor", "ray", "--address", "127.0.0.1:1"], "nothing answers there within 3 s"),
    (["--executor", "ray", "--address", "nonsense"], "must look like HOST:PORT"),
    (["--executor", "slurm"], "invalid choice: 'slurm'"),
    (["--on-bad-input", "maybe"], "invalid choice: 'maybe'"),
    (["--pretrained", "tsm_r18=/no/such/weights.pt"], "--pretrained tsm_r18=/no/such/weights.pt: no such file"),
    (["--data", "lus=synthetic-lus:signal=abc"], "signal"),
    (["--data", "lus=synthetic-lus:n_patients=0"], "n_patients"),
    (["--data", "lus=synthetic-lus:bogus=1"], "unknown option 'bogus'"),
    (["--data", "lus=synthetic-lus:n_patients=3"], "use more patients"),
    (["--out", "{file}"], "is a file, not a folder"),
    (["--cache-dir", "{file}"], "is a file, not a folder"),
    (["--out", "{readonly}/sub"], "cannot write there"),
]
NO_CUDA = [(["--device", "cuda:0"], "no CUDA device here"), (["--device", "cuda"], "no CUDA device here"),
           (["--gpus", "1"], "--gpus 1: no CUDA device here")]


@pytest.mark.parametrize("flags, needle", BAD + NO_CUDA, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_command_line_is_one_line_and_exit_2_before_anything_runs(flags, needle, tmp_path, usage_error):
    import torch
    if (flags, needle) in NO_CUDA and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if "--address" in flags and "ray" in flags and importlib.util.find_spec("ray") is None:
        pytest.skip("needs Ray (the ray extra, part of the test extra)")
    paths = _bad_paths(tmp_path)
    if "{readonly}" in " ".join(flags) and os.access(paths["readonly"], os.W_OK):
        pytest.skip("running as root: a read-only folder is writable")
    flags = [f.format(**paths) for f in flags]
    argv = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), *flags]
    t0 = time.perf_counter()
    usage_error(argv, needle)
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "out" / "table3" / "runs").exists()


def test_a_full_disk_is_found_before_anything_runs(tmp_path, monkeypatch, usage_error):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1024))
    usage_error(["--grid", "table3", "--preset", "smoke", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")], "0 MiB free, a cell needs about")


# --- processes ----------------------------------------------------------------------------

def _descendants(pid: int) -> set[int]:
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_point(driver: subprocess.Popen, runs: Path, when: str) -> set[int]:
    """Wait for the moment ``when`` of a ``--jobs 2`` sweep; its descendants then."""
    deadline, spawned = time.time() + 120, None
    while time.time() < deadline and driver.poll() is None:
        workers = _descendants(driver.pid)
        spawned = spawned or (time.time() if workers else None)
        if (when == "at spawn" and spawned) or (when == "1 s after spawn" and spawned and time.time() > spawned + 1) \
                or (when == "cells running" and list(runs.glob("*.claim"))):
            return workers | _descendants(driver.pid)
        time.sleep(0.02)
    pytest.fail(f"the sweep never reached {when!r}")


@pytest.mark.slow
@pytest.mark.parametrize("when", ["at spawn", "1 s after spawn", "cells running"])
def test_workers_stop_within_2_s_when_the_driver_is_killed(tmp_path, cache, when):
    cmd = [sys.executable, str(REPO / "run_all.py"), "--grid", "table3", "--preset", "smoke", "--epochs", "50",
           "--jobs", "2", "--out", str(tmp_path), "--cache-dir", str(cache)]
    driver = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = _kill_point(driver, tmp_path / "table3" / "runs", when)
    assert workers
    driver.send_signal(signal.SIGKILL)
    killed = time.time()
    while time.time() < killed + 2 and any(map(_alive, workers)):  # the driver is a zombie until reaped
        time.sleep(0.05)
    left = [pid for pid in workers if _alive(pid)]
    driver.wait()
    assert not left, f"{len(left)} of {len(workers)} processes alive 2 s after the driver was killed {when}"


@pytest.mark.slow
def test_two_concurrent_sweeps_run_each_cell_once(tmp_path, cache):
    cmd = [sys.executable, str(REPO / "run_all.py"), "--grid", "table3", "--preset", "smoke", "--seeds", "2",
           "--out", str(tmp_path), "--cache-dir", str(cache)]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    done = sum(o.count("done smoke-") for o, _ in outs)
    records = [json.loads(p.read_text()) for p in (tmp_path / "table3" / "runs").glob("*.json")]
    assert done == len(records) == 24 and all(r["status"] == "finished" for r in records)  # 12 rows x 2 seeds
    assert not list((tmp_path / "table3" / "runs").glob("*.claim"))


def test_a_schema_2_record_reads_back_typed(tmp_path):
    """Records written before the typed parts (schema 2: the same parts, without the pair rule
    and the held-out cohort) still read, as typed parts."""
    from bench.records import DataPart, Pretraining, Timing, read_record
    old = {"run_id": "r", "grid": "table3", "dataset": "lus", "backbone": "tsm_r18", "loss": "cl", "sim": "cos",
           "seed": 0, "preset": "quick", "fingerprint": "f", "code_version": "c", "status": "finished",
           "settings": {}, "numerics": {}, "device": "cpu", "git_commit": "g", "finished_at": "", "schema": 2,
           "metrics": {"macro_f1": 0.5}, "test_pairs": {"true": [1], "pred": [1], "patient": ["p"]},
           "pretrain": {"best_epoch": 3, "best_val_mse": 0.9, "history": [{"epoch": 0}], "resumed_at_epoch": None},
           "timing": {"wall_seconds": 9.0, "data_seconds": 1.0, "peak_memory_mb": 5.0, "peak_memory_scope": "x"},
           "data": {"source": "synthetic-lus", "kind": "lus", "score": "S/F", "patients": 9, "scans": 30,
                    "skipped": [], "split_patients": {}, "split_scans": {}, "pairs": {},
                    "score_standardisation": {"mean": 1.0, "std": 2.0}}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(old))
    rec = read_record(path)
    assert isinstance(rec.pretrain, Pretraining) and rec.pretrain.best_epoch == 3
    assert isinstance(rec.timing, Timing) and rec.timing.pretrain_seconds is None
    assert isinstance(rec.data, DataPart) and rec.data.pair_rule is None and rec.data.heldout_patients == 0
    del old["timing"]["wall_seconds"]
    path.write_text(json.dumps(old))
    with pytest.raises(RecordError, match="lacks field\\(s\\) timing.wall_seconds"):
        read_record(path)
