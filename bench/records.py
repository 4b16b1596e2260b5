"""Run records: one JSON per finished cell, written atomically, plus provenance."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("torch", "torchvision", "timm", "transformers", "numpy", "scikit-learn", "learner-bench")


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write to a temp file in the same folder, then rename: a killed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_run(path: Path, rec: dict) -> None:
    """Write the embedding sidecar (``.npz``) first, then the JSON that marks the cell done."""
    arrays = rec.pop("embeddings", None)
    if arrays is not None:
        npz = path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=npz.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, npz)
        rec["embeddings_file"] = npz.name
    write_json_atomic(path, rec)


def load_embeddings(json_path: Path) -> dict[str, np.ndarray] | None:
    npz = Path(json_path).with_suffix(".npz")
    if not npz.exists():
        return None
    with np.load(npz, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def read_record(path: Path) -> dict | None:
    """A finished cell's record, or None if absent or unreadable (then the cell reruns)."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and "metrics" in rec else None


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str:
    """HEAD of the checkout this code runs from, with ``-dirty`` for uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
