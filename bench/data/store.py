"""The data a sweep's cells read: validated datasets and their decoded clips, memoised per process.

Every executor's process (the driver, ``--jobs`` workers, Ray tasks) builds its own
:class:`DataStore` and asks it for the same things, so each arrives at the same dataset
and the same clip tensor; only the driver decodes (:func:`warm_cache`), workers read the
on-disk cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from bench.data.cache import cache_path, load_clips
from bench.data.scans import LongitudinalDataset
from bench.data.sources import load_dataset


class DataStore:
    """Per-process memo of datasets and device-resident clip tensors (shared by cells)."""

    def __init__(self):
        self._datasets: dict[tuple, LongitudinalDataset] = {}
        self._clips: dict[tuple, torch.Tensor] = {}

    def dataset(self, spec: str, on_bad_input: str, defaults: dict) -> LongitudinalDataset:
        key = (spec, on_bad_input, tuple(sorted(defaults.items())))
        if key not in self._datasets:
            self._datasets[key] = load_dataset(spec, on_bad_input=on_bad_input, **defaults)
        return self._datasets[key]

    def clips(self, ds: LongitudinalDataset, frames: int, size: int, cache_dir: Path | None,
              device: torch.device) -> torch.Tensor:
        key = (str(cache_path(ds, frames, size, Path("."))), str(device))
        if key not in self._clips:
            self._clips[key] = torch.from_numpy(load_clips(ds, frames, size, cache_dir)).to(device)
        return self._clips[key]


def warm_cache(datasets: list[LongitudinalDataset], frames: int, size: int, cache_dir: Path | None,
               on_clip: Callable[[str, int, int], None] | None = None) -> None:
    """Decode every clip of ``datasets`` into the on-disk cache once, before any cell runs,
    so cells (in this process or in workers) only read it; ``on_clip(name, i, n)`` reports."""
    if cache_dir is None:
        return
    for ds in datasets:
        load_clips(ds, frames, size, cache_dir, on_clip and (lambda i, ds=ds: on_clip(ds.name, i, len(ds))))
