"""Decoded, resized clips as one ``uint8[N, frames, size, size]`` array, cached on disk.

The key covers the source content (``dataset.cache_key``), the exact scan list (a skip
policy may drop rows) and the preprocessing (frames, size), so a stale cache is never
read. Files are written atomically; concurrent workers at worst decode twice.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from bench.data.scans import LongitudinalDataset


def cache_path(dataset: LongitudinalDataset, frames: int, size: int, cache_dir: Path) -> Path:
    ids = "\n".join(map(str, dataset.scans["scan_id"]))
    digest = hashlib.sha1(f"{dataset.cache_key}\n{ids}".encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{dataset.name}-{digest}-f{frames}-s{size}.npy"


def load_clips(dataset: LongitudinalDataset, frames: int, size: int, cache_dir: Path | None = None,
               on_clip: Callable[[int], None] | None = None) -> np.ndarray:
    """All clips of ``dataset`` in row order; decodes only on a cache miss."""
    path = cache_path(dataset, frames, size, cache_dir) if cache_dir else None
    if path is not None and path.exists():
        clips = np.load(path)
        if clips.shape == (len(dataset), frames, size, size):
            return clips
    clips = np.empty((len(dataset), frames, size, size), dtype=np.uint8)
    for i, (_, row) in enumerate(dataset.scans.iterrows()):
        clip = dataset.load_clip(row, frames, size)
        if clip.shape != clips.shape[1:] or clip.dtype != np.uint8:
            raise ValueError(f"{dataset.name}: source returned {clip.dtype}{list(clip.shape)} for scan "
                             f"{row['scan_id']!r} ({row['source']}), expected uint8{list(clips.shape[1:])}")
        clips[i] = clip
        if on_clip:
            on_clip(i)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, clips)
        os.replace(tmp, path)
    return clips
