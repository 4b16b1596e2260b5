"""Training throughput of each backbone: the device-resident fast path vs a naive baseline.

Fast path (what the runner does): uint8 clips resident on the device, frame sampling and
normalisation on the device, bf16 autocast, channels_last for CNNs and fused Adam on
CUDA, no host sync inside the timed loop. Naive baseline (what a first implementation
does): fp32, a host-side ``DataLoader`` that renders/decodes every clip again each time it
is drawn, then copies the batch to the device.

Per backbone: clips/s, step time, peak memory, model FLOPs per training clip (torch's
``FlopCounterMode`` on one forward+backward), achieved TFLOP/s and MFU against the
device's dense bf16 peak (fp32 peak for the baseline). CPUs have no listed peak: MFU is
left empty there unless ``--peak-tflops`` is given.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

import backbones
from bench.data import load_dataset
from bench.losses import LossSpec
from bench.presets import Preset
from bench.runner import device_name, fast_path_model, peak_memory_mb
from bench.train import IMAGENET_MEAN, IMAGENET_STD, ClipBatcher, Regressor, autocast

# Dense peak TFLOP/s (bf16 tensor core, fp32 non-tensor) from the vendors' data sheets.
PEAK_TFLOPS = {"H100": (989.0, 67.0), "H200": (989.0, 67.0), "A100": (312.0, 19.5), "L40S": (362.0, 91.6)}


def device_peak(device: torch.device) -> tuple[float | None, float | None]:
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_TFLOPS.items():
        if key in name:
            return peak
    return None, None


def device_slug(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{torch.get_num_threads()}t"
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def bench_csv(out_dir, device: torch.device, preset: Preset, compile: bool) -> Path:
    """Where ``run_all.py bench`` writes, and ``time_to_table.py`` reads, a device's figures."""
    return Path(out_dir) / f"{device_slug(device)}-{preset.name}{'-compile' if compile else ''}.csv"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_flops_per_clip(name: str, preset: Preset) -> float:
    """FLOPs of one forward + backward per clip, counted on the meta device (no compute, no
    memory: the paper-size models are counted in seconds on any machine)."""
    with torch.device("meta"):
        enc = backbones.create(name, num_frames=preset.frames, img_size=preset.img_size, variant=preset.variant)
        model = Regressor(enc, preset.head_hidden)
        x = torch.randn(1, preset.frames, 3, preset.img_size, preset.img_size)
    with FlopCounterMode(display=False) as counter:
        pred, u = model(x)
        (pred.sum() + u.sum()).backward()
    return float(counter.get_total_flops())


def _build(name: str, preset: Preset, device: torch.device, fast: bool, compile: bool) -> Regressor:
    torch.manual_seed(0)
    enc = backbones.create(name, num_frames=preset.frames, img_size=preset.img_size, variant=preset.variant)
    model = Regressor(enc, preset.head_hidden)
    # Compiling happens in the warm-up steps, outside the timing.
    return fast_path_model(model, device, compile) if fast else model.to(device)


def _timed_steps(model, opt, loss, batches, steps: int, warmup: int, device, amp: bool) -> float:
    """Seconds per step over ``steps`` steps after ``warmup``; syncs only at the ends."""
    it = iter(batches)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        x, y = next(it)
        with autocast(device, amp):
            pred, u = model(x)
        out = loss(pred, u, y)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


class _RenderEveryTime(Dataset):
    """The naive loader's dataset: each item renders/decodes its clip from the source again."""

    def __init__(self, ds, preset: Preset):
        self.ds, self.p = ds, preset

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        clip = self.ds.load_clip(self.ds.scans.iloc[i], self.p.cache_frames, self.p.img_size)
        idx = np.arange(self.p.frames) * (self.p.cache_frames // self.p.frames)
        x = torch.from_numpy(clip[idx]).float().div(255.0)[:, None].expand(-1, 3, -1, -1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x - mean) / std, torch.tensor(float(i % 7) - 3.0)


@dataclass
class BenchConfig:
    preset: Preset
    steps: int = 20
    warmup: int = 3
    pool: int = 64           # clips resident for the fast path
    source: str = "synthetic-lus"
    workers: int = 0         # naive DataLoader workers
    peak_tflops: float | None = None  # override for devices without a listed peak
    compile: bool = False    # torch.compile the fast path's encoder


def measure(name: str, cfg: BenchConfig, device: torch.device, mode: str) -> dict:
    p = cfg.preset
    fast = mode == "fast"
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = _build(name, p, device, fast, cfg.compile)
    loss = LossSpec("cl")
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, fused=fast and device.type == "cuda")
    ds = load_dataset(cfg.source, n_patients=max(8, cfg.pool // 3))
    if fast:
        clips = np.stack([ds.load_clip(ds.scans.iloc[i % len(ds)], p.cache_frames, p.img_size)
                          for i in range(cfg.pool)])
        batcher = ClipBatcher(torch.from_numpy(clips).to(device), p.frames)
        y = torch.randn(cfg.pool, device=device)
        gen = torch.Generator(device=device).manual_seed(0)

        def batches():
            while True:
                idx = torch.randint(0, cfg.pool, (p.batch_size,), generator=gen, device=device)
                yield batcher(idx, gen), y[idx]
        it = batches()
    else:
        loader = DataLoader(_RenderEveryTime(ds, p), batch_size=p.batch_size, shuffle=True,
                            num_workers=cfg.workers, drop_last=True)

        def batches():
            while True:
                for x, y in loader:
                    yield x.to(device), y.to(device)
        it = batches()
    step = _timed_steps(model, opt, loss, it, cfg.steps, cfg.warmup, device, amp=fast)
    flops = train_flops_per_clip(name, p)
    clips_s = p.batch_size / step
    achieved = flops * clips_s / 1e12
    bf16_peak, fp32_peak = device_peak(device)
    peak = cfg.peak_tflops or (bf16_peak if fast else fp32_peak)
    return {"backbone": name, "mode": mode, "variant": p.variant, "frames": p.frames, "size": p.img_size,
            "batch": p.batch_size, "compiled": fast and cfg.compile, "step_ms": 1000 * step, "clips_per_s": clips_s,
            "peak_memory_mb": peak_memory_mb(device), "gflops_per_clip": flops / 1e9, "achieved_tflops": achieved,
            "mfu": achieved / peak if peak else np.nan, "device": device_name(device)}


def run_benchmark(names: list[str], cfg: BenchConfig, device: torch.device) -> pd.DataFrame:
    rows = []
    for name in names:
        for mode in ("fast", "naive"):
            rows.append(measure(name, cfg, device, mode))
    df = pd.DataFrame(rows)
    speed = df.pivot(index="backbone", columns="mode", values="clips_per_s")
    df["fast_over_naive"] = df["backbone"].map(speed["fast"] / speed["naive"])
    return df


def estimate_grid_seconds(step_s: dict[str, float], rows, seeds: int, preset: Preset, n_train: int,
                          n_clips: int, overhead_s: float = 5.0) -> pd.DataFrame:
    """Wall time of a grid from each backbone's training step time (measured, or derived
    from FLOPs and an assumed MFU).

    Per cell: ``epochs * (train steps * step + val clips * eval)`` + embedding all clips +
    ``overhead_s`` (downstream classifier, bookkeeping); evaluating a clip costs a third of
    training it (forward only).
    """
    out = []
    for r in rows:
        step = step_s[r.backbone]
        per_clip_eval = step / preset.batch_size / 3
        cell = preset.epochs * ((n_train // preset.batch_size) * step + (n_clips - n_train) * per_clip_eval) \
            + n_clips * per_clip_eval + overhead_s
        out.append({"backbone": r.backbone, "loss": r.loss, "sim": r.sim, "step_s": step, "cell_s": cell,
                    "seeds": seeds, "row_s": cell * seeds})
    return pd.DataFrame(out)
