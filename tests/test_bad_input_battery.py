"""Issue #22's battery: every bad command line, config file, size, data set and tampering it
found answers before anything is written, decoded or trained — one line naming the value and
what is valid, exit 2 (or, for data and records, the named problem); and none is accepted in
silence."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.limits import cpu_cores
from bench.records import RecordError, read_record

REPO = Path(__file__).resolve().parent.parent
CORES = cpu_cores()

# (extra argv after the base run flags, needle of the one error line)
RUN = [
    (["--seeds", "1.5"], "invalid int value: '1.5'"),
    (["--seeds", "100000000"], "--seeds must be at most 1000 (seeds of one sweep), got 100000000"),
    (["--seeds", "2", "--seed-list", "5"], "--seeds 2 and --seed-list 5 both choose the seeds: give one of them"),
    (["--seed-list", "3000000000"], "--seed-list: a seed must be at most 2147483647, got 3000000000"),
    (["--epochs", "3", "--set", "epochs=5"], "--epochs 3 and --set epochs=5 both choose the epochs: give one of them"),
    (["--out", ""], "--out '': give a folder"),
    (["--tables-only", "--out", "{file}"], "--out {file}/table3: {file} is a file, not a folder"),
    (["--backbones", ""], "--backbones is empty: give at least one name"),
    (["--losses", ","], "--losses is empty: give at least one name"),
    (["--sims="], "--sims is empty"),
    (["--set", "img_size=1"], "setting img_size=1: must be at least 16, got 1"),
    (["--set", "img_size=5000"], "setting img_size=5000: must be at most 1024, got 5000"),
    (["--set", "lr=nan"], "setting lr=nan: must be a finite number"),
    (["--epochs", "20000"], "--epochs must be at most 10000 (epochs), got 20000"),
    (["--set", "epochs=100000000"], "setting epochs=100000000: must be at most 10000 (epochs), got 100000000"),
    (["--set", "ds_epochs=20000"], "setting ds_epochs=20000: must be at most 10000 (epochs), got 20000"),
    (["--set", "batch_size=1000000"], "setting batch_size=1000000: must be at most 4096 (clips per batch)"),
    (["--set", "head_hidden=10000000"], "setting head_hidden=10000000: must be at most 65536 (units)"),
    (["--set", "seeds=5000"], "setting seeds=5000: must be at most 1000 (seeds of one sweep), got 5000"),
    (["--set", "oracle_patients=1000000"], "setting oracle_patients=1000000: must be at most 20000 (patients)"),
    (["--set", "lr=inf"], "setting lr=inf: must be a finite number"),
    (["--set", "lam=nan"], "setting lam=nan: must be a finite number"),
    (["--set", "ds_lr=-inf"], "setting ds_lr=-inf: must be a finite number"),
    (["--threads-per-cell", "100000"], f"--threads-per-cell must be at most {CORES} (CPU cores here), got 100000"),
    (["--threads-per-cell", "4096"], f"--threads-per-cell must be at most {CORES} (CPU cores here), got 4096"),
    (["--executor", "submitit", "--threads-per-cell", "1000"], "--threads-per-cell must be at most 256, got 1000"),
    (["--jobs-per-gpu", "2"], "--jobs-per-gpu 2 packs cells on GPUs: use it with --gpus N"),
    (["--data", "lus=synthetic-lus:n_patients=100000000"], "n_patients must be a number in [1, 20000], got 100000000"),
    (["--data", "lus=synthetic-mri:n_patients=30000"], "n_patients must be a number in [1, 20000], got 30000"),
    (["--data", "lus=synthetic-lus:n_patients=3"], "lus (synthetic-lus, 3 patients), seed 0: every train pair is"),
    (["--data", "adni=synthetic-mri"], "--data adni=synthetic-mri: the grid has no adni row (datasets: lus)"),
    (["--pretrained", "vit={file}"], "--pretrained vit={file}: the grid has no vit row (backbones: tsm_r18)"),
    (["--tracker-uri", "http://127.0.0.1:1"], "--tracker-uri http://127.0.0.1:1: a tracker store, use it with "
                                              "--tracker mlflow"),
    (["--slurm-time", "-5"], "--slurm-time: SLURM settings, use them with --executor submitit"),
    (["--slurm-partition", "gpu", "--slurm-cpus-per-task", "2"],
     "--slurm-partition, --slurm-cpus-per-task: SLURM settings, use them with --executor submitit"),
    (["--executor", "submitit", "--slurm-time", "-5"], "--slurm-time must be at least 1, got -5"),
    (["--executor", "submitit", "--slurm-cpus-per-task", "0"], "--slurm-cpus-per-task must be at least 1, got 0"),
]
TRACKER = [
    (["--tracker", "mlflow", "--tracker-uri", "nosuch://x"], "--tracker-uri nosuch://x: MLflow has no store for "
                                                             "'nosuch'; valid: http(s)://HOST:PORT"),
    (["--tracker", "mlflow", "--tracker-uri", "http://127.0.0.1:1"], "nothing answers there within 3 s"),
]
# (config file text, needle)
CONFIGS = [
    ("seeds = 1.5\n", "seeds must be an integer, got 1.5"),
    ("seeds = true\n", "seeds must be an integer, got True"),
    ("device = 5\n", "device must be a string, got 5"),
    ('references = "no"\n', "references must be true or false, got 'no'"),
    ('amp = 1\n', "amp must be true or false, got 1"),
    ('seed_list = "0,1"\n', "seed_list must be a list of integers, got '0,1'"),
    ("seed_list = [0, true]\n", "seed_list must be a list of integers, got [0, True]"),
    ('backbones = "tsm_r18"\n', "backbones must be a list of strings, got 'tsm_r18'"),
    ("[data]\nlus = 5\n", "data must be a table of NAME = strings, got {'lus': 5}"),
    ("threads_per_cell = 100000\n", "--threads-per-cell must be at most"),
    ("seeds = 2\nseed_list = [5]\n", "both choose the seeds"),
    ("seed_list = [0, 0]\n", "c.toml, key seed_list: --seed-list repeats seed(s) 0"),  # named by file and key
    ("[set]\nlr = nan\n", "setting lr=nan: must be a finite number"),
    ("[set]\nepochs = 100000\n", "setting epochs=100000: must be at most 10000 (epochs), got 100000"),
]
# (full argv, needle): the other subcommands
OTHER = [
    (["bench", "--steps", "0", "--warmup", "0"], "--steps must be at least 1, got 0"),
    (["bench", "--steps", "-1"], "--steps must be at least 1, got -1"),
    (["bench", "--warmup", "-1"], "--warmup must be at least 0, got -1"),
    (["bench", "--steps", "10000000"], "--steps must be at most 100000 (timed steps), got 10000000"),
    (["bench", "--warmup", "10000000"], "--warmup must be at most 100000 (untimed steps), got 10000000"),
    (["bench", "--workers", "-1"], "--workers must be at least 0, got -1"),
    (["bench", "--peak-tflops", "0"], "--peak-tflops 0.0: must be a finite number > 0"),
    (["bench", "--peak-tflops", "inf"], "--peak-tflops inf: must be a finite number > 0"),
    (["bench", "--device", "tpu"], "--device 'tpu' is not a device; valid: auto, cpu, cuda, cuda:N"),
    (["bench", "--out", "{file}"], "--out {file}: {file} is a file, not a folder"),
    (["bench", "--backbones", ""], "--backbones is empty"),
    (["describe", "--frames", "0", "synthetic-lus:n_patients=8"], "describe --frames must be at least 1, got 0"),
    (["describe", "--size", "100000", "synthetic-lus:n_patients=8"], "describe --size must be at most 1024"),
    (["describe", "synthetic-lus:n_patients=100000000"], "n_patients must be a number in [1, 20000]"),
    (["sensitivity", "--knob", "shortcut", "--values", "0,,1"], "--values '0,,1': an empty value"),
    (["sensitivity", "--knob", "signal", "--values", "0,1", "--tracker", "mlflow"],
     "--tracker/--tracker-uri: sensitivity logs to no tracker"),
    (["export-tracker", "--out", "{runs_root}", "--tracker-uri", "nosuch://x"], "MLflow has no store for 'nosuch'"),
]
NO_CUDA = [(["bench", "--device", "cuda:0"], "--device cuda:0: no CUDA device here"),
           (["--device", "cuda:0"], "--device cuda:0: no CUDA device here")]


def _ids(case) -> str:
    return " ".join(case) if isinstance(case, list) else case.strip().replace("\n", "; ")


@pytest.fixture
def paths(tmp_path) -> dict[str, str]:
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "runs_root" / "g" / "runs").mkdir(parents=True)
    return {"file": str(afile), "runs_root": str(tmp_path / "runs_root")}


def _refused_before_any_work(usage_error, argv: list[str], needle: str, tmp_path: Path) -> None:
    """The usage error, and not a file written before it: nothing decoded, cached, trained or
    recorded (how long the answer takes is the benchmarks' business, not a test's)."""
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    usage_error(argv, needle)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before


def _base(tmp_path: Path) -> list[str]:
    return ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.parametrize("flags, needle", RUN + TRACKER, ids=_ids)
def test_bad_run_flags(flags, needle, tmp_path, paths, usage_error):
    if (flags, needle) in TRACKER and importlib.util.find_spec("mlflow") is None:
        pytest.skip("needs MLflow (the tracker extra)")
    if "--executor" in flags and "submitit" in flags and importlib.util.find_spec("submitit") is None:
        pytest.skip("needs submitit (the slurm extra)")
    flags = [f.format(**paths) for f in flags]
    _refused_before_any_work(usage_error, _base(tmp_path) + flags, needle.format(**paths), tmp_path)


@pytest.mark.parametrize("content, needle", CONFIGS, ids=_ids)
def test_bad_config_values(content, needle, tmp_path, usage_error):
    path = tmp_path / "c.toml"
    path.write_text(content)
    _refused_before_any_work(usage_error, _base(tmp_path) + ["--config", str(path)], needle, tmp_path)


@pytest.mark.parametrize("argv, needle", OTHER + NO_CUDA, ids=_ids)
def test_bad_subcommand_flags(argv, needle, tmp_path, paths, usage_error):
    if (argv, needle) in NO_CUDA and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if argv[0] == "export-tracker" and importlib.util.find_spec("mlflow") is None:
        pytest.skip("needs MLflow (the tracker extra)")
    argv = [a.format(**paths) for a in argv]
    if argv[0] not in ("bench", "describe", "sensitivity", "export-tracker"):
        argv = _base(tmp_path) + argv
    elif argv[0] in ("bench", "sensitivity") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    _refused_before_any_work(usage_error, argv, needle.format(**paths), tmp_path)


# --- accepted, and said so ------------------------------------------------------------------

@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def one_cell(tmp_path: Path, cache: Path, *extra: str) -> list[str]:
    return ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse", "--no-references",
            "--out", str(tmp_path), "--cache-dir", str(cache), *extra]


def test_a_config_flag_wins_over_the_files_seeds(tmp_path, cache, capsys):
    path = tmp_path / "c.toml"
    path.write_text("seed_list = [5, 6]\n")
    assert main(one_cell(tmp_path / "out", cache, "--config", str(path), "--seeds", "1", "--tables-only")) == 0
    assert "1 of 1 cells have no readable record" in capsys.readouterr().out  # seed 0 only, not 5 and 6


def test_a_thin_split_is_a_warning_line(tmp_path, cache, capsys):
    argv = one_cell(tmp_path, cache, "--data", "lus=synthetic-lus:n_patients=4,test_patients=0", "--tables-only")
    assert main(argv) == 0
    assert ("warning lus (synthetic-lus, 4 patients): thin test split: 1 of 1 seed(s) have fewer than 5 test "
            "pairs of a label (seed 0: 1 deteriorated, 1 same, 0 improved)") in capsys.readouterr().out


def test_a_diverging_classifier_fails_its_cell(tmp_path, cache, capsys):
    assert main(one_cell(tmp_path, cache, "--set", "ds_lr=1e30")) == 1
    out = capsys.readouterr().out
    assert "Diverged: downstream classifier diverged at epoch" in out and "ds_lr = 1e+30" in out
    (path,) = (tmp_path / "table3" / "runs").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["status"] == "failed" and rec["metrics"] is None


def test_a_collapsed_classifier_fails_its_cell():
    from bench.presets import PRESETS
    from bench.classifier import Diverged, train_classifier
    labels = np.array([0, 1, 2, 1] * 5)
    x = {k: torch.ones(len(labels), 6) for k in ("train", "val", "test")}  # nothing to tell pairs apart
    with pytest.raises(Diverged, match="collapsed: it predicted one class for every train pair at every one of 30"):
        train_classifier(x, {k: labels for k in x}, PRESETS["smoke"], 0)


def test_a_hand_edited_record_is_named_and_rerun(tmp_path, cache, capsys):
    argv = one_cell(tmp_path, cache)
    assert main(argv) == 0
    (path,) = (tmp_path / "table3" / "runs").glob("*.json")
    rec = json.loads(path.read_text())
    rec["metrics"]["macro_f1"] = 0.999
    path.write_text(json.dumps(rec, indent=1))
    with pytest.raises(RecordError, match="does not match its checksum"):
        read_record(path)
    capsys.readouterr()
    assert main(argv + ["--tables-only"]) == 0
    out = capsys.readouterr().out
    assert f"unreadable record {path}: does not match its checksum (edited by hand since it was written?)" in out
    assert "1 of 1 cells have no readable record" in out and "0.999" not in (tmp_path / "table3" / "table3.md").read_text()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"unreadable record {path}: does not match its checksum" in out and "done smoke-lus-tsm_r18-mse" in out
    assert read_record(path).metric("macro_f1") != 0.999


def test_records_without_a_checksum_are_read():
    """Records written before checksums existed (schema 2, as the first reference tables were)."""
    path = REPO / "tests" / "records" / "schema2_without_checksum.json"
    assert "checksum" not in json.loads(path.read_text()) and read_record(path).finished


def test_check_data_refuses_what_the_sweep_refuses(tmp_path, capsys, usage_error):
    from fixtures_realdata import write_csv, write_npy
    rows = []
    for i, patient in enumerate(["P\n1", "P2", "P3"]):  # a patient id with a newline, as the issue had
        for v, (spo2, fio2) in enumerate([("95", "0.3"), ("90", "0.6")]):
            clip = np.random.default_rng(10 * i + v).integers(0, 255, (8, 32, 32), dtype=np.uint8)
            write_npy(tmp_path / f"c{i}{v}.npy", clip)
            rows.append([patient, f"2021-03-0{v + 1}", f"c{i}{v}.npy", spo2, fio2])
    spec = f"lus-manifest:{write_csv(tmp_path / 'manifest.csv', ['patient_id', 'visit', 'path', 'spo2', 'fio2'], rows)}"
    why = "seed 0: every train pair is 'deteriorated': a classifier cannot learn a change from one class"
    assert main(["check-data", spec]) == 1
    assert f"patient split, {why}; a sweep refuses these data" in capsys.readouterr().out
    usage_error(_base(tmp_path) + ["--data", f"lus={spec}"], why)


@pytest.mark.slow
def test_jobs_beyond_the_cores_are_clamped_and_the_sweep_exits(tmp_path, cache):
    done = subprocess.run([sys.executable, str(REPO / "run_all.py"), *one_cell(tmp_path, cache, "--jobs", "10000")],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"--jobs 10000: {CORES} CPU cores run at most {CORES} cell(s) of 1 thread(s) at once" in done.stdout

