"""The data a sweep's cells read: validated datasets and their decoded clips, memoised per process.

Every executor's process (the driver, ``--jobs`` workers, Ray tasks) builds its own
:class:`DataStore` and asks it for the same things, so each arrives at the same dataset
and the same clip tensor; only the driver decodes (:func:`warm_cache`), workers read the
on-disk cache. A row whose clip fails to decode is dropped (``--on-bad-input skip``) from
the dataset *in place* during the warm-up — its ``scans``, ``skipped`` and ``cache_key``
change before any cell's fingerprint is computed — and the cache records the verdict, so
a worker's :meth:`DataStore.dataset` (given the cache folder) drops the same rows from its
own copy without decoding, before the cell computes its splits.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from bench.data.cache import apply_verdicts, cache_path, load_clips
from bench.data.scans import DataError, LongitudinalDataset, Problem
from bench.data.sources import load_dataset
from bench.data.splits import cohorts


class DataStore:
    """Per-process memo of datasets and device-resident clip tensors (shared by cells)."""

    def __init__(self):
        self._datasets: dict[tuple, LongitudinalDataset] = {}
        self._clips: dict[tuple, torch.Tensor] = {}

    def dataset(self, spec: str, on_bad_input: str, defaults: dict,
                cache_dir: Path | None = None) -> LongitudinalDataset:
        """The validated dataset of ``spec``; with ``cache_dir``, less the rows the clip cache
        records as undecodable (dropped under ``skip``; ``fail`` raises :class:`DataError`)."""
        key = (spec, on_bad_input, tuple(sorted(defaults.items())), str(cache_dir))
        if key not in self._datasets:
            ds = load_dataset(spec, on_bad_input=on_bad_input, **defaults)
            for cohort in cohorts(ds):
                cohort.on_bad_input, cohort.origin = on_bad_input, cohort.origin or spec
                apply_verdicts(cohort, cache_dir)
            self._datasets[key] = ds
        return self._datasets[key]

    def clips(self, ds: LongitudinalDataset, frames: int, size: int, cache_dir: Path | None,
              device: torch.device) -> torch.Tensor:
        """The clips of ``ds`` on ``device`` (rows that fail to decode leave ``ds`` first)."""
        key = (str(cache_path(ds, frames, size, Path("."))), str(device))
        if key not in self._clips:
            clips = torch.from_numpy(load_clips(ds, frames, size, cache_dir)).to(device)
            key = (str(cache_path(ds, frames, size, Path("."))), str(device))  # ds may have lost rows
            self._clips[key] = clips
        return self._clips[key]


def warm_cache(datasets: list[LongitudinalDataset], frames: int, size: int, cache_dir: Path | None,
               on_clip: Callable[[str, int, int], None] | None = None) -> list[Problem]:
    """Decode every clip of ``datasets`` into the on-disk cache once, before any cell runs,
    so cells (in this process or in workers) only read it; ``on_clip(name, i, n)`` reports.

    Rows that fail to decode leave their dataset in place under the ``skip`` policy (the
    returned problems, also appended to each ``dataset.skipped``); under ``fail`` one
    :class:`DataError` lists every such row of every dataset.
    """
    if cache_dir is None:
        return []
    dropped: list[Problem] = []
    errors: list[DataError] = []
    for ds in (c for d in datasets for c in cohorts(d)):  # held-out cohorts too
        before = len(ds.skipped)
        try:
            load_clips(ds, frames, size, cache_dir, on_clip and (lambda i, ds=ds: on_clip(ds.name, i, len(ds))))
        except DataError as e:
            errors.append(e)
            continue
        dropped += ds.skipped[before:]
    if errors:
        raise DataError("; ".join(e.origin for e in errors), [p for e in errors for p in e.problems])
    return dropped
