#!/usr/bin/env python
"""The Python parts of ``benchmarks/gpu_check.sh`` (run that script, not this one).

    gpu_check.py slug --device D                      # the device's file-name slug
    gpu_check.py env --out DIR --device D [--smoke]   # versions, GPU, measured matmul peaks
    gpu_check.py warm-cache --preset P --cache-dir C  # decode the LUS clips once, in parallel
    gpu_check.py report --out DIR --work W --preset P --device D   # CSVs + <slug>-summary.md

``report`` reads what the script's parts left in the work folder (throughput CSVs per
backbone, the end-to-end cell's record and tables, the packed cells' records, the parts'
status) and writes under ``--out``: ``<slug>-<preset>.csv`` and ``<slug>-<preset>-compile.csv``
(throughput with MFU against the datasheet and the measured peak), ``<slug>-e2e.csv``
(per-epoch times of the real cell), ``<slug>-packing.csv`` (1, 2, 4 cells per GPU),
``<slug>-time-to-table.csv`` and ``<slug>-summary.md``. It exits 1 if a check of the
end-to-end cell fails or a part did not finish.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.benchmark import (bench_csv, device_peak, device_slug, epoch_and_embed_seconds,  # noqa: E402
                             estimate_grid_seconds, flops_step_seconds, lus_cell_sizes, step_seconds)
from bench.devices import resolve_device  # noqa: E402
from bench.grid import PAPER_BACKBONES, grid_rows  # noqa: E402
from bench.packing import auto_jobs_per_gpu  # noqa: E402
from bench.presets import get_preset  # noqa: E402

GRID, SEEDS = "table4", 3  # the time-to-table target: Table 4 x 3 seeds
CELL = ("tsm_r18", "cl")    # the backbone and loss of the script's real cells (Table 3, LUS)


# ---------------------------------------------------------------- environment

def matmul_tflops(device: torch.device, dtype: torch.dtype, sizes: list[int], seconds: float) -> float:
    """Best dense matmul TFLOP/s over ``sizes`` (square), each timed for about ``seconds``."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        reps, elapsed = 1, 0.0
        while elapsed < seconds / 4:  # grow the repetitions until one timing is long enough
            reps *= 2
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                a @ b
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - t0
        best = max(best, 2 * n ** 3 * reps / elapsed / 1e12)
        del a, b
    return best


def _nvidia_smi(field: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        return out.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def environment(device: torch.device, smoke: bool) -> dict:
    info = {"slug": device_slug(device), "device_type": device.type, "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                    memory_total_bytes=total, memory_free_bytes=free, driver=_nvidia_smi("driver_version"))
    else:
        info.update(gpu=None, driver=None)
    info["datasheet_bf16_tflops"], info["datasheet_fp32_tflops"] = device_peak(device)
    sizes, secs = ([256, 512], 0.3) if smoke or device.type != "cuda" else ([4096, 8192, 16384], 1.5)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # true fp32, what the naive baseline's peak means
    try:
        info["measured_fp32_tflops"] = matmul_tflops(device, torch.float32, sizes[:2], secs)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    info["measured_bf16_tflops"] = matmul_tflops(device, torch.bfloat16, sizes, secs)
    info["matmul_sizes"] = sizes
    return info


def env_command(args) -> int:
    device = resolve_device(args.device)
    info = environment(device, args.smoke)
    path = Path(args.out) / f"{info['slug']}-env.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))
    print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------- clip cache

_DS = {}


def _one_blas_thread() -> None:
    """A worker renders on one core: with the parent's BLAS threads in every one of N
    workers, N x N threads contend for N cores (the clips are byte-identical either way)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    torch.set_num_threads(1)


def _render(i: int) -> np.ndarray:
    ds, frames, size = _DS["job"]
    return ds.load_clip(ds.scans.iloc[i], frames, size)


class _Rendered:
    """A dataset whose clips were rendered already: ``load_clips`` validates and caches them
    exactly as it would the source's own (same name, content key and scan list)."""

    def __init__(self, ds, clips: list[np.ndarray]):
        self.name, self.cache_key, self.scans = ds.name, ds.cache_key, ds.scans
        self._by_id = dict(zip(ds.scans["scan_id"], clips))

    def __len__(self) -> int:
        return len(self.scans)

    def load_clip(self, row, frames: int, size: int) -> np.ndarray:
        return self._by_id[row["scan_id"]]


def warm_cache_command(args) -> int:
    """Decode the LUS clips of the preset (its held-out evaluation cohort too) into the cache
    with all cores, so later parts only read them (the CLI decodes them on one core: the 718
    training and 1,520 held-out paper-size clips take about 90 + 190 s)."""
    from bench.data.cache import cache_path, load_clips
    from bench.data.sources import DEFAULT_SOURCES
    from bench.data.splits import cohorts
    from bench.data.store import DataStore
    p = get_preset(args.preset)
    workers = max(1, min(args.workers or os.cpu_count() or 1, 32))
    for ds in cohorts(DataStore().dataset(DEFAULT_SOURCES["lus"], "fail", p.data_defaults)):
        path = cache_path(ds, p.cache_frames, p.img_size, Path(args.cache_dir))
        if path.exists():
            print(f"{path} is there already")
            continue
        print(f"decoding {len(ds)} clips with {workers} processes ...", flush=True)
        t0 = time.perf_counter()
        _DS["job"] = (ds, p.cache_frames, p.img_size)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),  # inherit _DS
                                 initializer=_one_blas_thread) as pool:
            clips = list(pool.map(_render, range(len(ds)), chunksize=4))
        load_clips(_Rendered(ds, clips), p.cache_frames, p.img_size, Path(args.cache_dir))
        print(f"decoded {len(ds)} clips with {workers} processes in {time.perf_counter() - t0:.1f} s -> {path}",
              flush=True)
    return 0


# ---------------------------------------------------------------- report

def _read_records(folder: Path) -> tuple[list, list]:
    """The script's cells in ``folder`` and, apart, the other cells the sweep ran with them
    (reference rows such as ``majority`` / ``untrained``, when the sweep adds them)."""
    from bench.records import read_records
    recs = [r for runs in sorted(folder.glob("*/runs")) for r in read_records(runs)]
    return ([r for r in recs if (r.backbone, r.loss) == CELL],
            [r for r in recs if (r.backbone, r.loss) != CELL and r.status == "finished"])


def _steady(history: list[dict], key: str) -> float:
    """Median per-epoch value after the first epoch (warm-up: cuDNN autotuning, compiling)."""
    vals = [h[key] for h in history]
    return float(np.median(vals[1:] if len(vals) > 1 else vals))


def merge_bench(work: Path, kind: str, env: dict) -> pd.DataFrame:
    """The per-backbone throughput CSVs of one part, with MFU against the measured peak."""
    frames = [pd.read_csv(p) for p in sorted((work / f"bench-{kind}").glob("*/*.csv"))]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    order = {b: i for i, b in enumerate(PAPER_BACKBONES)}
    df = df.sort_values("backbone", key=lambda c: c.map(lambda b: order.get(b, len(order))), kind="stable")
    cuda = env.get("device_type") == "cuda"
    # The fast path runs bf16 autocast on CUDA, fp32 elsewhere; the naive baseline fp32.
    peak = [env.get("measured_bf16_tflops") if cuda and m == "fast" else env.get("measured_fp32_tflops")
            for m in df["mode"]]
    df["measured_peak_tflops"] = pd.to_numeric(pd.Series(peak), errors="coerce")
    df["mfu_measured_peak"] = df["achieved_tflops"] / df["measured_peak_tflops"]
    return df


def e2e_checks(rec, table_csv: Path, epochs: int, env: dict) -> list[tuple[str, bool]]:
    """What proves the device path wrote a correct record and table."""
    checks = [("record finished", rec.status == "finished")]
    if rec.status != "finished":
        return checks
    hist = rec.pretrain.history
    m = rec.metrics
    want = "bf16-autocast" if env.get("device_type") == "cuda" else "fp32"
    checks += [
        (f"ran on {env.get('gpu') or 'the CPU'}", env.get("gpu") is None or rec.device == env["gpu"]),
        (f"numerics {want}", rec.numerics.get("precision") == want),
        (f"{epochs} epochs recorded", len(hist) == epochs),
        ("losses and val MSE finite", all(math.isfinite(h[k]) for h in hist for k in ("loss", "val_mse"))),
        ("accuracy in [0, 100], macro-F1 in [0, 1]", 0 <= m["accuracy"] <= 100 and 0 <= m["macro_f1"] <= 1),
        ("peak memory and clips/s recorded", rec.timing.peak_memory_mb > 0
         and rec.timing.train_clips_per_second > 0),
    ]
    ok = table_csv.exists()
    if ok:
        t = pd.read_csv(table_csv)
        row = t[(t["backbone"] == rec.backbone) & (t["loss"] == rec.loss)]
        ok = len(row) == 1 and abs(float(row["accuracy_mean"].iloc[0]) - m["accuracy"]) < 1e-3
    checks.append((f"{table_csv.name} holds the cell's accuracy", ok))
    return checks


def e2e_frame(rec) -> pd.DataFrame:
    hist = pd.DataFrame(rec.pretrain.history)
    return hist[[c for c in ("epoch", "train_seconds", "seconds", "loss", "val_mse") if c in hist]]


def packing_frame(work: Path, parts: pd.DataFrame, batch: int) -> pd.DataFrame:
    """Per number of concurrent cells: steady per-cell and summed training clips/s (from the
    epochs after the first, while the cells overlap), the sweep's wall time, peak memory."""
    rows = []
    for folder in sorted(work.glob("pack-*"), key=lambda f: int(f.name.split("-")[1])):
        jobs = int(folder.name.split("-")[1])
        recs = [r for r in _read_records(folder)[0] if r.status == "finished"]
        rates = [(r.data.split_scans["train"] // batch) * batch / _steady(r.pretrain.history, "train_seconds")
                 for r in recs]
        part = parts[parts["part"] == f"packing:{jobs}"]
        rows.append({"jobs_per_gpu": jobs, "cells_finished": len(recs),
                     "cell_clips_per_s": float(np.median(rates)) if rates else np.nan,
                     "total_clips_per_s": float(np.sum(rates)) if len(recs) == jobs else np.nan,
                     "epoch_s": float(np.median([_steady(r.pretrain.history, "seconds") for r in recs]))
                     if recs else np.nan,
                     "peak_memory_mb": max((r.timing.peak_memory_mb for r in recs), default=np.nan),
                     "sweep_s": float(part["seconds"].iloc[0]) if len(part) else np.nan})
    df = pd.DataFrame(rows)
    if len(df) and (df["jobs_per_gpu"] == 1).any():
        base = df.loc[df["jobs_per_gpu"] == 1, "total_clips_per_s"].iloc[0]
        df["gain"] = df["total_clips_per_s"] / base
    return df


def _makespan(durations: list[float], slots: int) -> float:
    """Wall time of cells on ``slots`` slots, longest first to the least loaded slot."""
    load = [0.0] * slots
    for d in sorted(durations, reverse=True):
        load[load.index(min(load))] += d
    return max(load)


R18_FAMILY = ("tsm_r18", "resnet2d_r18")  # the same ResNet-18 compute: TSM-R18's packing gain applies


def time_to_table(fast: dict[str, pd.DataFrame], e2e, packing: pd.DataFrame, env: dict, preset,
                  compile_extra: dict[str, float], sweep_overhead_s: float = 0.0, refs: list = ()) -> pd.DataFrame:
    """Minutes for Table 4 x 3 seeds at ``preset`` (its full epochs), per mode and packing.

    A cell: :func:`bench.benchmark.estimate_grid_seconds` from its backbone's measured
    fast-path step, plus what the real cell cost beyond its steps (per epoch: checkpoint,
    host work; per cell: data, classifier, bookkeeping), plus compiling in ``compile`` mode;
    once per sweep, what the real cell's command took beyond its cells (start-up, tables).
    The other cells the real sweep ran beside its cell (``refs``: reference rows) count as
    measured, per seed: once if backbone-independent, else once per backbone of the grid,
    with that backbone's embedding time in place of TSM-R18's.
    Packing N: a cell takes ``N / gain(N)`` times as long and N run at once (longest first).
    TSM-R18's measured gain applies to the ResNet-18 backbones; for the others it is
    unmeasured, so two bounds: ``conservative`` (no gain) and ``optimistic`` (TSM-R18's).
    A packing ``fits`` when :func:`bench.packing.auto_jobs_per_gpu` allows it for every
    backbone of the grid (its fast-path peak, clips included, against the free memory).
    A backbone without a measured step (its part ran out of time) gets one from its FLOPs at
    the median TFLOP/s of the measured ones, and the largest measured peak (both named in
    the CSV's ``eager_steps_for`` / ``flops_steps_for``).
    """
    rows = grid_rows(GRID)
    needed = {r.backbone for r in rows}
    eager = fast.get("eager")
    if eager is None or eager.empty:
        return pd.DataFrame()
    sizes = lus_cell_sizes(preset)
    eager_step, eager_peak, from_flops = _eager_figures(eager, needed, preset)
    epoch_over, cell_over = _real_cell_overheads(e2e, eager_step, preset, sizes)
    gains = {int(j): float(g) for j, g in zip(packing.get("jobs_per_gpu", []), packing.get("gain", []))
             if np.isfinite(g)} or {1: 1.0}
    out = []
    for mode, df in fast.items():
        step_s = {**eager_step, **step_seconds(df)}
        est = estimate_grid_seconds(step_s, rows, SEEDS, preset, *sizes, cell_over, epoch_overhead_s=epoch_over,
                                    cell_extra_s=compile_extra if mode == "compile" else None)
        cells = _with_reference_cells([(r.backbone, r.cell_s) for r in est.itertuples()], refs, step_s, needed,
                                      preset, sizes)
        peaks = {**eager_peak, **_peak_bytes(df)}
        # compile did not finish for these: their eager step
        eager_only = "" if mode == "eager" else ",".join(sorted(needed - set(df["backbone"]) - set(from_flops)))
        same = {"eager_steps_for": eager_only, "flops_steps_for": ",".join(from_flops),
                "epoch_overhead_s": epoch_over, "cell_overhead_s": cell_over, "sweep_overhead_s": sweep_overhead_s}
        out += [{"mode": mode, **row, **same}
                for row in _packed_times(cells, gains, peaks, needed, env.get("memory_free_bytes"), sweep_overhead_s)]
    return pd.DataFrame(out)


def _peak_bytes(rows: pd.DataFrame) -> dict[str, float]:
    return dict(zip(rows["backbone"], rows["peak_memory_mb"] * 2**20))


def _eager_figures(eager: pd.DataFrame, needed: set[str], preset) -> tuple[dict, dict, list[str]]:
    """Each backbone's eager step seconds and peak bytes; one whose part ran out of time (listed
    third) gets its FLOPs at the median TFLOP/s the others achieved, and their largest peak."""
    step, peak = step_seconds(eager), _peak_bytes(eager)
    from_flops = sorted(needed - set(step))
    tflops = float(eager["achieved_tflops"].median())
    step.update({b: flops_step_seconds(b, preset, tflops) for b in from_flops})
    peak.update({b: max(peak.values()) for b in from_flops})
    return step, peak, from_flops


def _real_cell_overheads(e2e, eager_step: dict, preset, sizes: tuple[int, int]) -> tuple[float, float]:
    """What the real cell cost beyond its steps, per epoch and per cell (without one: the
    estimate's defaults)."""
    if e2e is None or e2e.status != "finished" or e2e.backbone not in eager_step:
        return 0.0, 5.0
    epoch, embed = epoch_and_embed_seconds(eager_step[e2e.backbone], preset, *sizes)
    return (max(0.0, _steady(e2e.pretrain.history, "seconds") - epoch),
            max(0.0, e2e.timing.wall_seconds - e2e.timing.pretrain_seconds - embed))


def _with_reference_cells(cells: list, refs: list, step_s: dict, needed: set[str], preset,
                          sizes: tuple[int, int]) -> list[tuple[str, float]]:
    """The grid's cells and the reference cells the real sweep ran beside its cell, as measured."""
    embed = {b: epoch_and_embed_seconds(step_s[b], preset, *sizes)[1] for b in step_s}
    for ref in refs:
        if ref.backbone in embed:  # e.g. the untrained encoder: embedding + classifier
            cells += [(b, ref.timing.wall_seconds - embed[ref.backbone] + embed[b]) for b in sorted(needed)]
        else:
            cells.append((ref.backbone, ref.timing.wall_seconds))
    return cells


def _packed_times(cells: list, gains: dict[int, float], peaks: dict, needed: set[str], free,
                  sweep_overhead_s: float) -> list[dict]:
    """Per packing and bound: whether it fits and the minutes of every cell x seed."""
    out = []
    for jobs, gain in sorted(gains.items()):
        fits = free is None or all(auto_jobs_per_gpu(peaks[b], free, cap=jobs) >= jobs for b in needed)
        for bound in ("conservative", "optimistic"):
            slow = [max(0.0, t) * jobs / (gain if b in R18_FAMILY or bound == "optimistic" else 1.0)
                    for b, t in cells for _ in range(SEEDS)]
            out.append({"jobs_per_gpu": jobs, "bound": bound, "gain_r18": gain, "fits": fits, "cells": len(slow),
                        "minutes": (_makespan(slow, jobs) + sweep_overhead_s) / 60})
    return out


def _fmt(x, spec: str = ".3g") -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def _md_table(df: pd.DataFrame, cols: dict[str, str], specs: dict[str, str] | None = None) -> str:
    specs = specs or {}
    lines = ["| " + " | ".join(cols.values()) + " |", "|" + "---|" * len(cols)]
    for r in df.to_dict("records"):
        cells = [("yes" if r[c] else "no") if isinstance(r[c], (bool, np.bool_))
                 else _fmt(r[c], specs.get(c, ".3g")) if isinstance(r[c], (int, float)) else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_md(env: dict, benches: dict[str, pd.DataFrame], e2e_rec, e2e_df, checks, packing, ttt,
               parts: pd.DataFrame, preset, total_s: float, budget_s: float) -> str:
    out = (_environment_md(env, preset, total_s, budget_s) + _throughput_md(benches, preset)
           + _e2e_md(e2e_rec, e2e_df, checks) + _packing_md(packing) + _time_to_table_md(ttt, env, preset))
    out += ["", "## Parts", "", _md_table(parts, {"part": "part", "budget_s": "budget s", "seconds": "seconds",
                                                  "status": "status"}, {"seconds": ".1f", "budget_s": ".0f"}), ""]
    return "\n".join(out)


def _environment_md(env: dict, preset, total_s: float, budget_s: float) -> list[str]:
    title = env.get("gpu") or f"CPU ({env.get('cpu_count')} cores)"
    out = [f"# GPU check: {title}", "",
           f"`bash benchmarks/gpu_check.sh` — {env.get('time', '')}, {total_s:.0f} s of its {budget_s:.0f} s budget, "
           f"preset `{preset.name}`.", "", "## Environment", "",
           f"torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, driver {env.get('driver')}, "
           f"Python {env.get('python')}, {env.get('cpu_count')} CPU cores.",
           f"Measured dense matmul peak: **{_fmt(env.get('measured_bf16_tflops'), '.0f' if env.get('gpu') else '.3f')}"
           f" TFLOP/s bf16**, {_fmt(env.get('measured_fp32_tflops'), '.3g')} TFLOP/s fp32 "
           f"(datasheet: {_fmt(env.get('datasheet_bf16_tflops'))} bf16, {_fmt(env.get('datasheet_fp32_tflops'))} fp32)."]
    if env.get("memory_total_bytes"):
        out.append(f"Memory: {env['memory_total_bytes'] / 2**30:.1f} GiB, {env['memory_free_bytes'] / 2**30:.1f} GiB free.")
    return out


def _throughput_md(benches: dict[str, pd.DataFrame], preset) -> list[str]:
    out = ["", f"## Throughput (`run_all.py bench --preset {preset.name}`, batch {preset.batch_size} × "
           f"{preset.frames} × {preset.img_size}²)", ""]
    eager, comp = benches["eager"], benches["compile"]
    if eager.empty:
        out.append("No throughput figures (the part failed; see the parts table).")
    else:
        f = eager[eager["mode"] == "fast"].set_index("backbone")
        naive = eager[eager["mode"] == "naive"].set_index("backbone")["clips_per_s"]
        table = pd.DataFrame({"backbone": f.index, "fast": f["clips_per_s"].to_numpy(),
                              "naive": f.index.map(naive).to_numpy(dtype=float), "step_ms": f["step_ms"].to_numpy(),
                              "peak_gb": f["peak_memory_mb"].to_numpy() / 1024, "mfu_sheet": f["mfu"].to_numpy(),
                              "mfu_meas": f["mfu_measured_peak"].to_numpy()})
        table["ratio"] = table["fast"] / table["naive"]
        if not comp.empty:
            c = comp[comp["mode"] == "fast"].set_index("backbone")
            table["compiled"] = table["backbone"].map(c["clips_per_s"])
            table["mfu_comp"] = table["backbone"].map(c["mfu_measured_peak"])
        cols = {"backbone": "backbone", "fast": "fast clips/s", "naive": "naive clips/s", "ratio": "fast/naive",
                "step_ms": "fast step ms", "peak_gb": "peak GiB", "mfu_sheet": "MFU (datasheet)",
                "mfu_meas": "MFU (measured peak)", "compiled": "compiled clips/s", "mfu_comp": "compiled MFU (meas.)"}
        out.append(_md_table(table, {k: v for k, v in cols.items() if k in table},
                             {"mfu_sheet": ".1%", "mfu_meas": ".1%", "mfu_comp": ".1%", "ratio": ".2g"}))
        out += ["", "MFU: achieved training TFLOP/s (FLOPs counted per clip) over the dense peak — bf16 for the "
                "fast path on CUDA, fp32 otherwise."]
    return out


def _e2e_md(e2e_rec, e2e_df, checks) -> list[str]:
    out = ["", "## One real cell end to end", ""]
    if e2e_rec is None:
        out.append("No record: the part failed (see its log).")
    else:
        out.append(f"`{e2e_rec.run_id}` on {e2e_rec.device}: {len(e2e_df)} epochs, per-epoch seconds "
                   f"{', '.join(_fmt(s, '.2f') for s in e2e_df['seconds'])}; wall {e2e_rec.timing.wall_seconds:.1f} s, "
                   f"peak {e2e_rec.timing.peak_memory_mb / 1024:.2f} GiB, "
                   f"{e2e_rec.timing.train_clips_per_second:.0f} training clips/s.")
    out += [""] + [f"* {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks]
    return out


def _packing_md(packing: pd.DataFrame) -> list[str]:
    out = ["", "## Cells per GPU (TSM-R18 cells at once)", ""]
    if packing.empty:
        out.append("No packing figures.")
    else:
        out.append(_md_table(packing, {"jobs_per_gpu": "cells at once", "cells_finished": "finished",
                                       "cell_clips_per_s": "clips/s per cell", "total_clips_per_s": "clips/s total",
                                       "gain": "gain", "epoch_s": "epoch s", "peak_memory_mb": "peak MiB / cell",
                                       "sweep_s": "sweep wall s"}))
    return out


def _time_to_table_md(ttt: pd.DataFrame, env: dict, preset) -> list[str]:
    out = ["", f"## Time to table: {GRID} × {SEEDS} seeds, `{preset.name}` preset ({preset.epochs} epochs)", ""]
    best = best_time(ttt)
    if best is None:
        out.append("Not estimated (figures missing).")
    else:
        low = ttt[(ttt["mode"] == best["mode"]) & (ttt["jobs_per_gpu"] == best["jobs_per_gpu"])
                  & (ttt["bound"] == "optimistic")]["minutes"].iloc[0]
        flag = "--gpus 1 --jobs-per-gpu" if env.get("device_type") == "cuda" else "--jobs"
        out += [f"**≈ {best['minutes']:.1f} min** on one device with `{flag} {best['jobs_per_gpu']}"
                f"{' --compile' if best['mode'] == 'compile' else ''}` (best feasible packing; {low:.1f} min if every "
                "backbone gained from packing as TSM-R18 does).", "",
                _md_table(ttt, {"mode": "mode", "jobs_per_gpu": "cells/GPU", "bound": "bound", "fits": "fits",
                                "cells": "cells", "minutes": "minutes"}, {"minutes": ".1f"}),
                "", "From each backbone's measured step time plus the per-epoch and per-cell overhead the real cell "
                f"showed beyond its steps ({best['epoch_overhead_s']:.2f} s/epoch, {best['cell_overhead_s']:.1f} s/cell, "
                f"{best['sweep_overhead_s']:.0f} s/sweep); "
                "`conservative` gives only the ResNet-18 backbones TSM-R18's packing gain, `optimistic` all of them."
                + (f" No measured step (part out of time), from FLOPs instead: {best['flops_steps_for']}."
                   if isinstance(best.get("flops_steps_for"), str) and best["flops_steps_for"] else "")]
    return out


def best_time(ttt: pd.DataFrame) -> dict | None:
    """The fastest feasible (mode, packing) under the conservative bound."""
    if ttt.empty:
        return None
    ok = ttt[(ttt["bound"] == "conservative") & ttt["fits"]]
    return ok.sort_values("minutes").iloc[0].to_dict() if len(ok) else None


def report_command(args) -> int:
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    preset = get_preset(args.preset)
    slug = device_slug(device)
    env_path = out / f"{slug}-env.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {"device_type": device.type}
    parts = pd.read_csv(work / "parts.csv") if (work / "parts.csv").exists() else pd.DataFrame(
        columns=["part", "budget_s", "seconds", "rc", "status"])
    benches = {kind: merge_bench(work, kind, env) for kind in ("eager", "compile")}
    for kind, df in benches.items():
        if not df.empty:
            df.to_csv(bench_csv(out, device, preset, kind == "compile"), index=False, float_format="%.4g")
    cell, refs = _read_records(work / "e2e")
    e2e = cell[0] if cell else None
    checks = e2e_checks(e2e, work / "e2e" / "table3" / "table3.csv", args.epochs, env) if e2e else \
        [("record written", False)]
    e2e_df = e2e_frame(e2e) if e2e is not None and e2e.status == "finished" else pd.DataFrame()
    e2e_df.to_csv(out / f"{slug}-e2e.csv", index=False, float_format="%.4g")
    packing = packing_frame(work, parts, preset.batch_size)
    packing.to_csv(out / f"{slug}-packing.csv", index=False, float_format="%.4g")
    # Compiling is paid per cell: the compiled bench's wall time over the eager one's, per backbone.
    secs = parts.set_index("part")["seconds"] if len(parts) else pd.Series(dtype=float)
    compile_extra = {p.split(":")[1]: max(0.0, secs[p] - secs.get(p.replace("compile", "eager"), 0.0))
                     for p in secs.index if p.startswith("bench-compile:")}
    sweep_over = max(0.0, secs.get("e2e", 0.0) - sum(r.timing.wall_seconds for r in [*cell, *refs])) \
        if e2e is not None else 0.0
    fast = {kind: df[df["mode"] == "fast"] for kind, df in benches.items() if not df.empty}
    ttt = time_to_table(fast, e2e, packing, env, preset, compile_extra, sweep_over, refs)
    ttt.to_csv(out / f"{slug}-time-to-table.csv", index=False, float_format="%.4g")
    parts.to_csv(out / f"{slug}-parts.csv", index=False)
    md = summary_md(env, benches, e2e, e2e_df, checks, packing, ttt, parts, preset, args.elapsed, args.budget)
    (out / f"{slug}-summary.md").write_text(md)
    print(md)
    failed = [n for n, ok in checks if not ok] + list(parts.loc[parts["status"] != "ok", "part"])
    if failed:
        print(f"gpu_check: not all green: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("slug")
    s.add_argument("--device", default="auto")
    s = sub.add_parser("env")
    s.add_argument("--out", required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--smoke", action="store_true", help="small matmuls (CPU smoke run)")
    s = sub.add_parser("warm-cache")
    s.add_argument("--preset", required=True)
    s.add_argument("--cache-dir", required=True)
    s.add_argument("--workers", type=int, help="decoding processes (default: all cores)")
    s = sub.add_parser("report")
    for flag in ("--out", "--work", "--preset"):
        s.add_argument(flag, required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--epochs", type=int, required=True, help="epochs the end-to-end cell ran")
    s.add_argument("--elapsed", type=float, default=float("nan"), help="seconds the script has run")
    s.add_argument("--budget", type=float, default=float("nan"), help="the script's total budget")
    args = p.parse_args(argv)
    if args.cmd == "slug":
        print(device_slug(resolve_device(args.device)))
        return 0
    return {"env": env_command, "warm-cache": warm_cache_command, "report": report_command}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
