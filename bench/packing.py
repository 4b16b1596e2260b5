"""Cells per GPU: how many grid cells to run at once on one GPU (``--jobs-per-gpu auto``).

A paper-preset cell trains with batch 8, which leaves a large GPU mostly idle, so running
several cells side by side on one GPU raises its throughput (the GPU check measures by how
much for 1, 2 and 4 TSM-R18 cells). The limit is memory: every cell is its own process with
its own model, optimizer, activations and clip cache on the device.

The rule (:func:`auto_jobs_per_gpu`)::

    per_cell = cell_peak_bytes * (1 + margin) + process_bytes
    usable   = free_bytes - reserve_bytes
    jobs     = clamp(floor(usable / per_cell), 1, cap)

* ``cell_peak_bytes``: the peak device memory of one cell of the model, as measured
  (``torch.cuda.max_memory_allocated`` over the cell): a finished record's
  ``timing.peak_memory_mb``, the benchmark's fast-path ``peak_memory_mb`` (it keeps the
  preset's clips resident as a cell does), or :func:`bench.benchmark.measure_cell_peak_bytes`,
  which runs a few of those steps now. Measurements come in as numbers: this module trains
  nothing.
* ``margin`` (default 25 %): what the caching allocator holds beyond the allocated peak
  (fragmentation, blocks freed but kept), run-to-run variation (cuDNN algorithm choice,
  ``torch.compile`` workspaces), and, for a peak taken from training steps alone, what a
  cell adds to them (the best epoch's weights kept on the device, evaluation batches).
* ``process_bytes`` (default 1 GiB): per-process memory that ``max_memory_allocated`` does
  not see: the CUDA context, cuBLAS / cuDNN workspaces.
* ``reserve_bytes`` (default 2 GiB): left free for whatever else shares the GPU
  (the driver process of the sweep, a monitoring tool).
* ``cap`` (default 4): beyond a few cells per GPU the gain stops (cells contend for the
  SMs and each needs a CPU core to launch its kernels) and it has not been measured; a
  caller with more CPU cores per GPU and a measurement may raise it.
* At least one cell always runs: packing cannot make a cell fit that does not fit alone.

A sweep over several backbones runs one packing for all its cells: pass the largest
``cell_peak_bytes`` of its backbones.
"""
from __future__ import annotations

import math

import torch

GiB = 2**30
MARGIN = 0.25
PROCESS_BYTES = 1 * GiB
RESERVE_BYTES = 2 * GiB
CAP = 4


def auto_jobs_per_gpu(cell_peak_bytes: float, free_bytes: float, *, margin: float = MARGIN,
                      process_bytes: float = PROCESS_BYTES, reserve_bytes: float = RESERVE_BYTES,
                      cap: int = CAP) -> int:
    """Cells to run at once on a GPU with ``free_bytes`` free, one cell peaking at
    ``cell_peak_bytes`` (the module docstring gives the rule and the defaults)."""
    if not cell_peak_bytes > 0:
        raise ValueError(f"cell_peak_bytes must be positive, got {cell_peak_bytes}")
    if free_bytes < 0 or margin < 0 or process_bytes < 0 or reserve_bytes < 0:
        raise ValueError("free_bytes, margin, process_bytes and reserve_bytes must not be negative")
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    per_cell = cell_peak_bytes * (1 + margin) + process_bytes
    return max(1, min(cap, math.floor((free_bytes - reserve_bytes) / per_cell)))


def free_device_bytes(device: torch.device | str) -> int:
    """Free memory of a CUDA device now (``cudaMemGetInfo``), in bytes."""
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return free
