"""Training throughput of each backbone: the device-resident fast path vs a naive baseline.

Fast path (what the runner does, with the runner's own code): every clip of the preset's
dataset read as a cell reads them (:class:`~bench.data.store.DataStore`: the on-disk clip
cache, then the device), the runner's :class:`~bench.train.ClipBatcher` sampling and
normalising frames there, each step
:func:`bench.train.train_step` (bf16 autocast on CUDA) on the model
:func:`~bench.runner.fast_path_model` prepares (channels_last CNNs, ``torch.compile``) with
fused Adam on CUDA; no host sync inside the timed loop. Naive baseline (what a first
implementation does): fp32, a host-side ``DataLoader`` that renders/decodes every clip
again each time it is drawn (normalised by a ``ClipBatcher`` on the host) and copies the
batch to the device; its step is the same ``train_step``.

Per backbone: clips/s, step time, peak memory (on the fast path what a cell of the preset
peaks at: its clips are resident), model FLOPs per training clip (torch's
``FlopCounterMode`` on one forward+backward), achieved TFLOP/s and MFU against the
device's dense bf16 peak (fp32 peak for the baseline). CPUs have no listed peak: MFU is
left empty there unless ``--peak-tflops`` is given.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

import backbones
from bench import train  # train.train_step / train.ClipBatcher are looked up at call time (tests patch them)
from bench.data import load_dataset
from bench.files import DEFAULT_CACHE_DIR
from bench.data.splits import cohorts, evaluation_scans, split_patients
from bench.data.store import DataStore
from bench.losses import LossSpec
from bench.presets import Preset
from bench.runner import device_name, fast_path_model, peak_memory_mb

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
        model = train.Regressor(enc, preset.head_hidden)
        x = torch.randn(1, preset.frames, 3, preset.img_size, preset.img_size)
    with FlopCounterMode(display=False) as counter:
        pred, u = model(x)
        (pred.sum() + u.sum()).backward()
    return float(counter.get_total_flops())


def _build(name: str, preset: Preset, device: torch.device, fast: bool, compile: bool) -> train.Regressor:
    torch.manual_seed(0)
    enc = backbones.create(name, num_frames=preset.frames, img_size=preset.img_size, variant=preset.variant)
    model = train.Regressor(enc, preset.head_hidden)
    # Compiling happens in the warm-up steps, outside the timing.
    return fast_path_model(model, device, compile) if fast else model.to(device)


def _timed_steps(step: Callable[[], object], steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per ``step()`` over ``steps`` calls after ``warmup``; syncs only at the ends."""
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


class _RenderEveryTime(Dataset):
    """The naive loader's dataset: each item renders/decodes its clip from the source again,
    then takes the centred frames and normalises them with the runner's ``ClipBatcher``."""

    def __init__(self, ds, preset: Preset):
        self.ds, self.p = ds, preset

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        clip = torch.from_numpy(self.ds.load_clip(self.ds.scans.iloc[i], self.p.cache_frames, self.p.img_size))
        x = train.ClipBatcher(clip[None], self.p.frames)(torch.zeros(1, dtype=torch.long))[0]
        return x, torch.tensor(float(i % 7) - 3.0)


class _LoadedBatch:
    """Stands in for the ``ClipBatcher`` in ``train_step`` on the naive path: the batch is
    whatever the host-side loader delivered (already sampled and normalised)."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __call__(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.x


@dataclass
class BenchConfig:
    preset: Preset
    steps: int = 20
    warmup: int = 3
    source: str = "synthetic-lus"
    workers: int = 0         # naive DataLoader workers
    peak_tflops: float | None = None  # override for devices without a listed peak
    compile: bool = False    # torch.compile the fast path's encoder
    cache_dir: Path | None = DEFAULT_CACHE_DIR  # the runner's clip cache


def _fast_step(model, opt, loss, cfg: BenchConfig, device: torch.device) -> Callable[[], torch.Tensor]:
    """The runner's step on the runner's batcher, over the preset's dataset with its clips
    where a cell keeps them (read through the clip cache onto the device)."""
    p = cfg.preset
    store = DataStore()
    ds = store.dataset(cfg.source, "fail", p.data_defaults)
    batcher = train.ClipBatcher(store.clips(ds, p.cache_frames, p.img_size, cfg.cache_dir, device), p.frames)
    n = batcher.clips.shape[0]
    gen = torch.Generator(device=device).manual_seed(0)
    y = torch.randn(n, generator=gen, device=device)
    groups = torch.zeros(n, dtype=torch.long, device=device)

    def step() -> torch.Tensor:
        idx = torch.randint(0, n, (p.batch_size,), generator=gen, device=device)
        return train.train_step(model, opt, loss, batcher, idx, y, groups, gen, True)
    return step


def _naive_step(model, opt, loss, cfg: BenchConfig, device: torch.device) -> Callable[[], torch.Tensor]:
    """The same ``train_step`` in fp32 on batches a host-side ``DataLoader`` renders and copies."""
    p = cfg.preset
    ds = DataStore().dataset(cfg.source, "fail", p.data_defaults)
    loader = DataLoader(_RenderEveryTime(ds, p), batch_size=p.batch_size, shuffle=True,
                        num_workers=cfg.workers, drop_last=True)
    idx = torch.arange(p.batch_size, device=device)
    groups = torch.zeros(p.batch_size, dtype=torch.long, device=device)

    def batches():
        while True:
            yield from loader
    it = batches()

    def step() -> torch.Tensor:
        x, y = next(it)
        return train.train_step(model, opt, loss, _LoadedBatch(x.to(device)), idx, y.to(device), groups, None, False)
    return step


def measure(name: str, cfg: BenchConfig, device: torch.device, mode: str, flops: float | None = None) -> dict:
    """One backbone in one mode (``fast`` or ``naive``); ``flops`` per training clip is counted
    here unless given."""
    p = cfg.preset
    fast = mode == "fast"
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = _build(name, p, device, fast, cfg.compile)
    loss = LossSpec("cl")
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, fused=fast and device.type == "cuda")
    step = (_fast_step if fast else _naive_step)(model, opt, loss, cfg, device)
    step_s = _timed_steps(step, cfg.steps, cfg.warmup, device)
    flops = train_flops_per_clip(name, p) if flops is None else flops
    clips_s = p.batch_size / step_s
    achieved = flops * clips_s / 1e12
    bf16_peak, fp32_peak = device_peak(device)
    peak = cfg.peak_tflops or (bf16_peak if fast else fp32_peak)
    return {"backbone": name, "mode": mode, "variant": p.variant, "frames": p.frames, "size": p.img_size,
            "batch": p.batch_size, "compiled": fast and cfg.compile, "step_ms": 1000 * step_s, "clips_per_s": clips_s,
            "peak_memory_mb": peak_memory_mb(device), "gflops_per_clip": flops / 1e9, "achieved_tflops": achieved,
            "mfu": achieved / peak if peak else np.nan, "device": device_name(device)}


def measure_cell_peak_bytes(backbone: str, preset: Preset, device: torch.device | str, compile: bool = False,
                            steps: int = 2) -> float:
    """A cell's device peak without running one (what :mod:`bench.packing` packs by): a few of
    the runner's training steps on the preset's clips, resident as in a cell (the fast path)."""
    row = measure(backbone, BenchConfig(preset, steps=steps, warmup=1, compile=compile), torch.device(device),
                  "fast", flops=0.0)
    return row["peak_memory_mb"] * 2**20


def run_benchmark(names: list[str], cfg: BenchConfig, device: torch.device) -> pd.DataFrame:
    rows = []
    for name in names:
        flops = train_flops_per_clip(name, cfg.preset)
        for mode in ("fast", "naive"):
            rows.append(measure(name, cfg, device, mode, flops))
    df = pd.DataFrame(rows)
    speed = df.pivot(index="backbone", columns="mode", values="clips_per_s")
    df["fast_over_naive"] = df["backbone"].map(speed["fast"] / speed["naive"])
    return df


def lus_cell_sizes(preset: Preset) -> tuple[int, int, int]:
    """Clips a LUS cell at ``preset`` trains on, validates each epoch and embeds (its held-out
    evaluation cohort too), from seed 0's split: the sizes every time-to-table estimate gives
    a cell's epochs and embedding."""
    ds = load_dataset("synthetic-lus", **preset.data_defaults)
    splits = split_patients(evaluation_scans(ds), 0)
    return len(splits["train"]), len(splits["val"]), sum(len(c) for c in cohorts(ds))


def flops_step_seconds(name: str, preset: Preset, tflops: float) -> float:
    """A training step's seconds from the backbone's FLOPs per clip at ``tflops`` achieved
    TFLOP/s: the estimate where no step was measured."""
    return train_flops_per_clip(name, preset) * preset.batch_size / (tflops * 1e12)


def step_seconds(rows: pd.DataFrame) -> dict[str, float]:
    """Each backbone's measured step seconds in throughput rows of one mode."""
    return dict(zip(rows["backbone"], rows["step_ms"] / 1000))


def epoch_and_embed_seconds(step: float, preset: Preset, n_train: int, n_val: int,
                            n_embed: int) -> tuple[float, float]:
    """A cell's pretraining epoch (train steps + validating the validation clips) and its
    embedding of every clip it scores, from one training step's seconds; evaluating a clip
    costs a third of training it (forward only)."""
    per_clip_eval = step / preset.batch_size / 3
    return (n_train // preset.batch_size) * step + n_val * per_clip_eval, n_embed * per_clip_eval


def estimate_grid_seconds(step_s: dict[str, float], rows, seeds: int, preset: Preset, n_train: int, n_val: int,
                          n_embed: int, overhead_s: float = 5.0, *, epoch_overhead_s: float = 0.0,
                          cell_extra_s: dict[str, float] | None = None) -> pd.DataFrame:
    """Wall time of a grid from each backbone's training step time (measured, or derived
    from FLOPs and an assumed MFU).

    Per cell: ``epochs * (epoch + epoch_overhead_s) + embedding + overhead_s`` (downstream
    classifier, bookkeeping) ``+ cell_extra_s[backbone]`` (e.g. compiling), with epoch and
    embedding from :func:`epoch_and_embed_seconds`. ``epoch_overhead_s`` is what an epoch
    costs beyond its steps (checkpoint, host work), as the GPU check measures on a real cell.
    """
    out = []
    for r in rows:
        step = step_s[r.backbone]
        epoch, embed = epoch_and_embed_seconds(step, preset, n_train, n_val, n_embed)
        extra = (cell_extra_s or {}).get(r.backbone, 0.0)
        cell = preset.epochs * (epoch + epoch_overhead_s) + embed + overhead_s + extra
        out.append({"backbone": r.backbone, "loss": r.loss, "sim": r.sim, "step_s": step, "cell_s": cell,
                    "seeds": seeds, "row_s": cell * seeds})
    return pd.DataFrame(out)
