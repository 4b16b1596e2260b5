"""The data a sweep's cells read: validated datasets and their decoded clips, memoised per process.

Every executor's process (the driver, ``--jobs`` workers, Ray tasks) builds its own
:class:`DataStore` and asks it for the same things, so each arrives at the same dataset
and the same clip tensor; only the driver decodes (:meth:`DataStore.warm`), workers read the
on-disk cache. Datasets are values: a row whose clip fails to decode (``--on-bad-input
skip``) leaves a *new* dataset — fewer ``scans``, more ``skipped``, another ``cache_key`` —
which the warm-up hands back and memoises, before any cell's splits are made. The cache
records the verdict, so a worker's :meth:`DataStore.dataset` (given the cache folder) drops
the same rows from what it loads, without decoding.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from bench.data.cache import apply_verdicts, cache_path, load_clips
from bench.data.scans import DataError, LongitudinalDataset
from bench.data.sources import load_dataset
from bench.data.splits import map_cohorts


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
            self._datasets[key] = map_cohorts(ds, lambda c: apply_verdicts(
                replace(c, on_bad_input=on_bad_input, origin=c.origin or spec), cache_dir))
        return self._datasets[key]

    def warm(self, datasets: list[LongitudinalDataset], frames: int, size: int, cache_dir: Path | None,
             on_clip: Callable[[str, int, int], None] | None = None) -> list[LongitudinalDataset]:
        """Decode every clip of ``datasets`` (held-out cohorts too) into the on-disk cache once,
        before any cell runs, so cells (in this process or in workers) only read it;
        ``on_clip(name, i, n)`` reports. Returns each dataset as its cells will read it — less
        the rows that failed to decode under ``skip`` (listed in its ``skipped``) — and this
        store hands out those from now on. Under ``fail`` one :class:`DataError` lists every
        such row of every dataset."""
        if cache_dir is None:
            return list(datasets)
        errors: list[DataError] = []

        def decoded(c: LongitudinalDataset) -> LongitudinalDataset:
            try:
                return load_clips(c, frames, size, cache_dir, on_clip and (lambda i: on_clip(c.name, i, len(c))))[0]
            except DataError as e:
                errors.append(e)
                return c
        warmed = [map_cohorts(ds, decoded) for ds in datasets]
        if errors:
            raise DataError("; ".join(e.origin for e in errors), [p for e in errors for p in e.problems])
        for key, ds in self._datasets.items():
            for before, after in zip(datasets, warmed):
                if ds is before:
                    self._datasets[key] = after
        return warmed

    def clips(self, ds: LongitudinalDataset, frames: int, size: int, cache_dir: Path | None,
              device: torch.device) -> torch.Tensor:
        """The clips of ``ds`` on ``device``, one per row. A row that fails to decode now — the
        dataset was not warmed — is a :class:`DataError`: the cell's splits, made from ``ds``,
        would no longer match its clips."""
        key = (str(cache_path(ds, frames, size, Path("."))), str(device))
        if key not in self._clips:
            read, clips = load_clips(ds, frames, size, cache_dir)
            if len(read) != len(ds):
                raise DataError(f"{ds.origin or ds.name} (after its splits were made; warm the data first: "
                                f"DataStore.warm, as sweep.plan does)", read.skipped[len(ds.skipped):])
            self._clips[key] = torch.from_numpy(clips).to(device)
        return self._clips[key]
