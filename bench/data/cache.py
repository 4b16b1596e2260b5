"""Decoded, resized clips as one ``uint8[N, frames, size, size]`` array, cached on disk and
verified on every read.

The key covers the source content (``dataset.cache_key``), the exact scan list (a skip
policy may drop rows) and the preprocessing (frames, size), so a stale cache is never
read. Each cache file carries what it must hold — its key, the scan ids in row order, the
array's shape and dtype, and a SHA-256 over all of it — so a truncated, garbled or
tampered file is detected, named in one line (logger ``bench.data.cache``), removed and
decoded again. Files are written to a temporary name and renamed; temporary files of
writers that were killed are removed. Concurrent workers at worst decode twice.

Decoding is also where some bad input first shows (a corrupt middle of a video, NaN in an
array): such rows are dropped or fail by the dataset's policy (:func:`~bench.data.scans.
without_bad_rows`), and the cache records them in a *verdict* file (``.verdict``) under the
key of the dataset as it was before the drop. Another process that loads the same dataset
(a ``--jobs`` worker, a Ray task, ``--tables-only``) applies the verdict
(:func:`apply_verdicts`, called by :meth:`~bench.data.store.DataStore.dataset`), drops the
same rows without decoding, and reads the clips of the surviving rows — so every process
arrives at the same dataset, with the same content key. Datasets are values here: a drop
returns a new dataset, the one passed in is never changed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from bench.data.readers import ClipReadError
from bench.data.scans import LongitudinalDataset, Problem, without_bad_rows
from bench.watchdog import process_alive

log = logging.getLogger(__name__)


MAGIC = b"LBCLIPS\x01"
SUFFIX = ".clips"
_ALIGN = 64
_ORPHAN_AGE_S = 24 * 3600  # a temp file of another host (shared filesystem) this old is dead
_swept: set[Path] = set()


class CacheFileError(ValueError):
    """A cache file that does not hold what its header says (or has no valid header)."""


def _key(dataset: LongitudinalDataset, frames: int, size: int) -> str:
    ids = "\n".join(map(str, dataset.scans["scan_id"]))
    return hashlib.sha256(f"{dataset.cache_key}\n{ids}\nf{frames}-s{size}".encode()).hexdigest()


def cache_path(dataset: LongitudinalDataset, frames: int, size: int, cache_dir: Path) -> Path:
    return Path(cache_dir) / f"{dataset.name}-{_key(dataset, frames, size)[:12]}-f{frames}-s{size}{SUFFIX}"


# ----------------------------------------------------------------------------- file format

def _bytes(array: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, without a copy (an empty array: none)."""
    return memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(bytearray())


def _checksum(header: dict, data: memoryview | bytes) -> str:
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    h.update(data)
    return h.hexdigest()


def write_entry(path: Path, header: dict, array: np.ndarray | None = None) -> None:
    """``MAGIC | u64 header length | JSON header | pad to 64 | raw array``, written atomically.

    The header gets the array's shape and dtype and a ``sha256`` over header and data.
    """
    data = np.ascontiguousarray(array if array is not None else np.zeros(0, np.uint8))
    header = {**header, "shape": list(data.shape), "dtype": data.dtype.str}
    header["sha256"] = _checksum(header, _bytes(data))
    blob = json.dumps(header).encode()
    pad = -(len(MAGIC) + 8 + len(blob)) % _ALIGN
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + len(blob).to_bytes(8, "little") + blob + b"\0" * pad)
            f.write(_bytes(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_entry(path: Path) -> tuple[dict, np.ndarray]:
    """Header and array of a cache file; :class:`CacheFileError` unless it is whole and intact."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise CacheFileError("not a clip cache file (unknown format or garbled start)")
        n = int.from_bytes(f.read(8), "little")
        if not 0 < n <= min(size, 1 << 26):
            raise CacheFileError("garbled header (impossible length)")
        try:
            header = json.loads(f.read(n))
            shape, dtype, checksum = tuple(header["shape"]), np.dtype(header["dtype"]), header["sha256"]
            if not all(isinstance(d, int) and d >= 0 for d in shape) or not isinstance(checksum, str):
                raise TypeError("shape or checksum")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CacheFileError(f"garbled header ({type(e).__name__})") from None
        offset = len(MAGIC) + 8 + n + (-(len(MAGIC) + 8 + n) % _ALIGN)
        need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if size != need:
            raise CacheFileError(f"truncated: {size} bytes, {need} expected" if size < need
                                 else f"{size - need} bytes more than its header describes")
        f.seek(offset)
        array = np.empty(shape, dtype)
        buf = _bytes(array)
        if f.readinto(buf) != len(buf):
            raise CacheFileError("truncated while reading")
    if _checksum({k: v for k, v in header.items() if k != "sha256"}, buf) != checksum:
        raise CacheFileError("checksum mismatch: its content changed after it was written")
    return header, array


def _read_verified(path: Path, key: str) -> dict | None:
    """The entry at ``path`` if present, intact and made for ``key``; a bad file is named,
    removed, and treated as absent (so its clips are decoded again)."""
    try:
        header, array = read_entry(path)
        if header.get("key") != key:
            raise CacheFileError("it was written for other data (key mismatch)")
    except FileNotFoundError:
        return None
    except (CacheFileError, OSError) as e:
        log.warning("clip cache: %s is unusable (%s); removed, decoding again", path, e)
        _remove(path)
        return None
    header["array"] = array
    return header


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _store(path: Path, header: dict, array: np.ndarray | None = None) -> None:
    """:func:`write_entry`, or a warning when the cache folder cannot take it (the clips
    are then decoded again next time; nothing else changes)."""
    try:
        write_entry(path, header, array)
    except OSError as e:
        log.warning("clip cache: cannot write %s (%s); continuing without caching it", path, e.strerror or e)


def sweep_temp_files(cache_dir: Path) -> list[Path]:
    """Remove temporary files of killed writes: this host's whose writer process is gone,
    any host's untouched for a day (and the unnamed ones of older versions after an hour)."""
    removed = []
    host = socket.gethostname()
    for tmp in Path(cache_dir).glob("*.tmp"):
        rest, _, pid = tmp.name[:-len(".tmp")].rpartition(".")  # .<name>.<host>.<pid>.tmp
        try:
            age = time.time() - tmp.stat().st_mtime
            if tmp.name.startswith(".") and pid.isdigit():
                dead = age > _ORPHAN_AGE_S or (rest.endswith(f".{host}") and not process_alive(int(pid)))
            else:
                dead = age > 3600
            if dead:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    if removed:
        log.warning("clip cache: removed %d temporary file(s) of interrupted writes in %s",
                    len(removed), cache_dir)
    return removed


# ----------------------------------------------------------------------------- clips

def _problem(row, source: str, reason: str) -> Problem:
    line = row.get("row")
    return Problem(reason, None if line is None or line != line else int(line), source, str(row["scan_id"]))


def _decode(dataset: LongitudinalDataset, frames: int, size: int,
            on_clip: Callable[[int], None] | None) -> tuple[np.ndarray, list[Problem]]:
    """Every row's clip (rows that fail to decode stay zero) and one problem per such row."""
    clips = np.zeros((len(dataset), frames, size, size), dtype=np.uint8)
    failed = []
    for i, (_, row) in enumerate(dataset.scans.iterrows()):
        try:
            clip = dataset.load_clip(row, frames, size)
        except ClipReadError as e:
            failed.append(_problem(row, str(row["source"]), e.reason))
        else:
            if clip.shape != clips.shape[1:] or clip.dtype != np.uint8:
                raise ValueError(f"{dataset.name}: source returned {clip.dtype}{list(clip.shape)} for scan "
                                 f"{row['scan_id']!r} ({row['source']}), expected uint8{list(clips.shape[1:])}")
            clips[i] = clip
        if on_clip:
            on_clip(i)
    return clips, failed


def verdict_path(dataset: LongitudinalDataset, cache_dir: Path) -> Path:
    """Where the rows of ``dataset`` (as it is now) that failed to decode are recorded. The
    checks that fail a decode do not depend on the preset's frames or size, so one verdict
    serves every preset."""
    return Path(cache_dir) / f"{dataset.name}-{_key(dataset, 0, 0)[:12]}.verdict"


def apply_verdicts(dataset: LongitudinalDataset, cache_dir: Path | None) -> LongitudinalDataset:
    """``dataset`` less (``skip``) the rows the cache records as undecodable, or a
    :class:`~bench.data.scans.DataError` naming them (``fail``), without decoding. What every
    process calls after loading a dataset, so each arrives at the dataset the driver's warm-up
    left."""
    for _ in range(len(dataset) + 1):  # each verdict drops rows: the chain ends
        if cache_dir is None:
            break
        entry = _read_verified(verdict_path(dataset, cache_dir), _key(dataset, 0, 0))
        if entry is None or not entry.get("failed"):
            break
        dataset = without_bad_rows(dataset, [Problem(**p) for p in entry["failed"]])
    return dataset


def load_clips(dataset: LongitudinalDataset, frames: int, size: int, cache_dir: Path | None = None,
               on_clip: Callable[[int], None] | None = None) -> tuple[LongitudinalDataset, np.ndarray]:
    """All clips of ``dataset`` in row order, decoded only on a cache miss, and the dataset
    they are the rows of.

    Rows that fail to decode (now, or earlier in any process, as the cache records) are
    handled by the dataset's policy: ``skip`` leaves them out of the returned dataset (its
    ``scans``, ``skipped`` and ``cache_key`` differ from ``dataset``'s), ``fail`` raises a
    :class:`~bench.data.scans.DataError` listing every one of them.
    """
    if cache_dir is not None:
        if Path(cache_dir) not in _swept and Path(cache_dir).is_dir():
            _swept.add(Path(cache_dir))
            sweep_temp_files(Path(cache_dir))
        dataset = apply_verdicts(dataset, cache_dir)
        path = cache_path(dataset, frames, size, cache_dir)
        entry = _read_verified(path, _key(dataset, frames, size))
        if entry is not None:
            if entry.get("scan_ids") == list(map(str, dataset.scans["scan_id"])) \
                    and entry["array"].shape == (len(dataset), frames, size, size):
                return dataset, entry["array"]
            log.warning("clip cache: %s does not match the dataset's rows; decoding again", path)

    clips, failed = _decode(dataset, frames, size, on_clip)
    if failed:
        if cache_dir is not None:  # the verdict, under the key of the dataset before the drop
            _store(verdict_path(dataset, cache_dir), {"key": _key(dataset, 0, 0), "failed": [asdict(p) for p in failed]})
        position = {scan_id: i for i, scan_id in enumerate(dataset.scans["scan_id"])}
        dataset = without_bad_rows(dataset, failed)  # raises DataError under the fail policy
        clips = clips[[position[s] for s in dataset.scans["scan_id"]]]
    if cache_dir is not None:
        _store(cache_path(dataset, frames, size, cache_dir),
               {"key": _key(dataset, frames, size), "scan_ids": list(map(str, dataset.scans["scan_id"]))}, clips)
    return dataset, clips
