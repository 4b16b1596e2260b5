"""``benchmarks/gpu_check.sh``: its plan fits 8 minutes, its report's arithmetic, and (slow) the
whole script at smoke scale on the CPU, checked through the files it writes."""
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.grid import PAPER_BACKBONES
from bench.presets import get_preset

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
GiB = 2**30
# run_all.py flags the script may use (the CLI is being reworked; these are the stable ones).
GRID_FLAGS = {"--grid", "--preset", "--backbones", "--losses", "--datasets", "--seeds", "--epochs", "--out",
              "--cache-dir", "--gpus", "--jobs-per-gpu", "--jobs", "--device"}
BENCH_FLAGS = {"--backbones", "--preset", "--steps", "--warmup", "--workers", "--device", "--compile", "--out"}


def _module():
    """``benchmarks/gpu_check.py`` as the module ``gpu_check`` (registered, so that its
    functions pickle by name for its process pool)."""
    if "gpu_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
        sys.modules["gpu_check"] = mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    return sys.modules["gpu_check"]


def _dry_run(*flags: str) -> list[str]:
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run", *flags], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_gpu_plan_fits_eight_minutes_and_uses_only_existing_flags():
    lines = _dry_run()
    planned, total = map(int, re.search(r"add up to (\d+) s of (\d+) s", lines[0]).groups())
    assert planned + 15 <= total <= 480  # + the kill grace of a part that overruns
    parts = {line.split()[0] for line in lines[1:]}
    assert {"env", "data", "e2e", "packing:1", "packing:2", "packing:4", "report"} <= parts
    assert {f"bench-eager:{b}" for b in PAPER_BACKBONES} <= parts
    assert {f"bench-compile:{b}" for b in PAPER_BACKBONES} <= parts
    for line in lines[1:]:
        if "run_all.py" in line:
            flags = set(re.findall(r"(?<=\s)--[a-z][a-z-]*", line))
            assert flags <= (BENCH_FLAGS if "run_all.py bench" in line else GRID_FLAGS), line
            assert "--preset paper" in line
    packing = [line for line in lines if line.startswith("packing:4")]
    assert "--gpus 1 --jobs-per-gpu 4" in packing[0]


def test_unknown_option_is_one_line_and_exit_2():
    proc = subprocess.run(["bash", str(SCRIPT), "--gpu"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--gpu" in proc.stderr


def test_mfu_against_the_measured_peak_is_bf16_for_the_fast_path_on_cuda(tmp_path):
    folder = tmp_path / "bench-eager" / "vit"
    folder.mkdir(parents=True)
    pd.DataFrame({"backbone": ["vit", "vit"], "mode": ["fast", "naive"], "achieved_tflops": [100.0, 10.0],
                  "mfu": [100 / 989, 10 / 67]}).to_csv(folder / "x.csv", index=False)
    env = {"device_type": "cuda", "measured_bf16_tflops": 500.0, "measured_fp32_tflops": 50.0}
    df = _module().merge_bench(tmp_path, "eager", env).set_index("mode")
    assert df.loc["fast", "mfu_measured_peak"] == pytest.approx(0.2)
    assert df.loc["naive", "mfu_measured_peak"] == pytest.approx(0.2)


def test_time_to_table_packs_only_where_every_backbone_fits():
    mod = _module()
    step_ms = {"tsm_r18": 30, "resnet2d_r18": 30, "swin": 60, "vit": 150, "timesformer": 200, "videomae": 100}
    peak_mb = {"tsm_r18": 3000, "resnet2d_r18": 3000, "swin": 8000, "vit": 20000, "timesformer": 40000,
               "videomae": 15000}
    fast = pd.DataFrame({"backbone": list(step_ms), "step_ms": list(step_ms.values()),
                         "peak_memory_mb": list(peak_mb.values()), "achieved_tflops": 200.0})
    packing = pd.DataFrame({"jobs_per_gpu": [1, 2, 4], "gain": [1.0, 1.6, 2.0]})
    env = {"device_type": "cuda", "memory_free_bytes": 79 * GiB}
    ttt = mod.time_to_table({"eager": fast}, None, packing, env, get_preset("paper"), {}, 20.0)
    t = ttt.set_index(["jobs_per_gpu", "bound"])
    # TimeSformer (39 GiB, + 25 %, + 1 GiB) fits once in 79 - 2 GiB: only one cell per GPU.
    assert bool(t.loc[(1, "conservative"), "fits"]) and not t.loc[(2, "conservative"), "fits"]
    assert (t["cells"] == 27).all()
    assert t.loc[(1, "conservative"), "minutes"] == pytest.approx(t.loc[(1, "optimistic"), "minutes"])
    optimistic = [t.loc[(jobs, "optimistic"), "minutes"] for jobs in (4, 2, 1)]
    assert optimistic == sorted(optimistic)
    assert t.loc[(2, "optimistic"), "minutes"] < t.loc[(2, "conservative"), "minutes"]
    assert mod.best_time(ttt)["jobs_per_gpu"] == 1
    # One at a time: 27 cells x 100 epochs x 40-60 steps of 30-200 ms, back to back.
    assert 27 * 100 * 40 * 0.03 / 60 < t.loc[(1, "conservative"), "minutes"] < 27 * 100 * 60 * 0.2 * 1.5 / 60


@pytest.mark.slow
def test_cpu_smoke_runs_every_part_and_writes_sane_figures(tmp_path):
    out = tmp_path / "benchmarks"
    proc = subprocess.run(["bash", str(SCRIPT), "--cpu-smoke", "--out", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    (env_path,) = out.glob("*-env.json")
    slug = env_path.name.removesuffix("-env.json")
    env = json.loads(env_path.read_text())
    assert env["device_type"] == "cpu" and env["torch"] and env["measured_fp32_tflops"] > 0

    parts = pd.read_csv(out / f"{slug}-parts.csv")
    assert (parts["status"] == "ok").all(), parts
    assert {"env", "data", "e2e", "packing:1", "packing:2", "bench-compile:tsm_r18",
            *(f"bench-eager:{b}" for b in PAPER_BACKBONES)} <= set(parts["part"])
    assert (parts["seconds"] <= parts["budget_s"]).all()

    bench = pd.read_csv(out / f"{slug}-smoke.csv")
    assert sorted(zip(bench["backbone"], bench["mode"])) == sorted((b, m) for b in PAPER_BACKBONES
                                                                   for m in ("fast", "naive"))
    for col in ("clips_per_s", "step_ms", "gflops_per_clip", "achieved_tflops", "peak_memory_mb"):
        assert (bench[col] > 0).all() and np.isfinite(bench[col]).all(), col
    assert ((bench["mfu_measured_peak"] > 0) & (bench["mfu_measured_peak"] < 5)).all()
    assert np.allclose(bench["step_ms"] * bench["clips_per_s"], 1000 * bench["batch"], rtol=1e-2)
    compiled = pd.read_csv(out / f"{slug}-smoke-compile.csv").set_index("mode")
    assert bool(compiled.loc["fast", "compiled"]) and compiled.loc["fast", "backbone"] == "tsm_r18"

    e2e = pd.read_csv(out / f"{slug}-e2e.csv")
    assert list(e2e["epoch"]) == [0, 1] and (e2e["seconds"] >= e2e["train_seconds"]).all()
    assert (e2e["train_seconds"] > 0).all() and np.isfinite(e2e["val_mse"]).all()

    packing = pd.read_csv(out / f"{slug}-packing.csv").set_index("jobs_per_gpu")
    assert list(packing.index) == [1, 2] and (packing["cells_finished"] == packing.index).all()
    assert (packing["total_clips_per_s"] > 0).all() and packing.loc[1, "gain"] == pytest.approx(1.0)
    assert packing.loc[2, "total_clips_per_s"] == pytest.approx(2 * packing.loc[2, "cell_clips_per_s"], rel=0.5)

    ttt = pd.read_csv(out / f"{slug}-time-to-table.csv")
    assert set(ttt["mode"]) == {"eager", "compile"}
    assert (ttt["cells"] >= 27).all() and (ttt["cells"] % 3 == 0).all()  # 9 rows (+ references) x 3 seeds
    assert ((ttt["minutes"] > 0) & ttt["minutes"].map(math.isfinite)).all()
    best = _module().best_time(ttt)

    summary = (out / f"{slug}-summary.md").read_text()
    assert summary.count("PASS:") >= 7 and "FAIL" not in summary
    assert f"≈ {best['minutes']:.1f} min" in summary
    assert re.search(rf"`--jobs {best['jobs_per_gpu']}( --compile)?`", summary)
    for b in PAPER_BACKBONES:
        assert f"| {b} |" in summary
    e2e_dir = out / f"{slug}-check" / "e2e" / "table3"
    assert len(list(e2e_dir.glob("runs/smoke-lus-tsm_r18-cl-cos-s0-*.json"))) == 1  # (+ reference cells)
    assert (e2e_dir / "table3.tex").exists()


def test_time_to_table_without_a_backbones_figures_estimates_it_from_flops():
    fast = pd.DataFrame({"backbone": ["tsm_r18", "resnet2d_r18", "swin", "vit", "videomae"],
                         "step_ms": [30, 30, 60, 150, 100], "peak_memory_mb": 5000.0, "achieved_tflops": 100.0})
    ttt = _module().time_to_table({"eager": fast}, None, pd.DataFrame({"jobs_per_gpu": [1], "gain": [1.0]}),
                                  {"device_type": "cuda", "memory_free_bytes": 79 * GiB}, get_preset("paper"), {})
    assert (ttt["flops_steps_for"] == "timesformer").all() and np.isfinite(ttt["minutes"]).all()


def test_parallel_warm_cache_writes_what_the_runner_reads(tmp_path):
    from bench.data.cache import cache_path, load_clips
    from bench.data.splits import cohorts
    from bench.data.store import DataStore
    preset = get_preset("smoke")
    assert _module().main(["warm-cache", "--preset", "smoke", "--cache-dir", str(tmp_path), "--workers", "2"]) == 0
    for ds in cohorts(DataStore().dataset("synthetic-lus", "fail", preset.data_defaults)):  # held-out cohort too
        assert cache_path(ds, preset.cache_frames, preset.img_size, tmp_path).exists()
        read, clips = load_clips(ds, preset.cache_frames, preset.img_size, tmp_path)
        assert read is ds and clips.shape[0] == len(ds)
        for i in (0, len(ds) - 1):
            assert np.array_equal(clips[i], ds.load_clip(ds.scans.iloc[i], preset.cache_frames, preset.img_size))
