"""Files every output shares: strict JSON, written atomically with the folder's permissions;
and the clip cache's default folder (light to import: the CLI reads it before any heavy import).

A file is written to a temp file beside it and renamed over it, so a killed writer leaves no
half file; it gets the permissions the folder's other outputs get (``0666 & ~umask``), so a
shared results folder stays readable. Strict JSON has no NaN/Infinity (written as ``null``).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_CACHE_DIR = Path(".cache/clips")  # every command's --cache-dir default, so they share one cache
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def strict_json(obj):
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to ``None``."""
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict_json(obj.tolist())
    if isinstance(obj, np.generic):
        return strict_json(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def atomic_write(path: Path, write) -> None:
    """``write(file)`` into a temp file in ``path``'s folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: dict) -> None:
    text = json.dumps(strict_json(obj), indent=1, allow_nan=False)
    atomic_write(Path(path), lambda f: f.write(text.encode()))
