"""In-cell resume: a cell's pretraining state, saved atomically after every epoch.

The checkpoint holds everything the rest of pretraining depends on (model, optimizer,
scheduler, the batch generator's and torch's RNG states, the history and the best-so-far
weights), so on a CPU a resumed cell ends with the same numbers as an uninterrupted one.
It names the cell and the code that wrote it; a checkpoint of another cell or of other
result-affecting code is never resumed from. It is removed when the cell finishes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.files import atomic_write


@dataclass
class Checkpoint:
    path: Path
    identity: dict  # run_id and code version: what a resumable checkpoint must match

    def save(self, state: dict) -> None:
        buf = io.BytesIO()
        torch.save({"identity": self.identity, "state": state}, buf)
        atomic_write(self.path, lambda f: f.write(buf.getbuffer()))

    def load(self) -> dict | None:
        """The saved state, or None (no checkpoint, another cell's or code's, or unreadable:
        then the cell starts from its first epoch)."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # truncated or foreign file: not resumable
            return None
        if not isinstance(saved, dict) or saved.get("identity") != self.identity:
            return None
        return saved["state"]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
