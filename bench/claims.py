"""Cell claims: a cell is claimed before it runs, so concurrent sweeps into one results
folder, and cluster workers on a shared filesystem, run each cell once.

A claim is a file ``runs/<run_id>.claim``, written atomically under a lock, holding
the claimant's host, pid and start time. A claim is *stale*, and is taken over, when its
process is gone (same host: the pid no longer runs) or when it has not been refreshed for
``STALE_AFTER_S`` (another host, whose processes we cannot see; a running cell refreshes
its claim every epoch).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.files import write_json_atomic
from bench.watchdog import process_alive

STALE_AFTER_S = 2 * 3600.0


@dataclass(frozen=True)
class Claim:
    host: str
    pid: int
    since: float

    def __str__(self) -> str:
        return f"{self.host}:{self.pid} since {time.strftime('%H:%M:%S', time.localtime(self.since))}"


class ClaimedElsewhere(RuntimeError):
    """The cell is being run (or was just finished) by another process: not this one's work."""

    def __init__(self, run_id: str, by: str, finished: bool = False):
        super().__init__(f"{run_id} {'was finished' if finished else 'is being run'} by {by}")
        self.run_id, self.by, self.finished = run_id, by, finished

    def __reduce__(self):  # crosses process boundaries (workers, Ray, submitit) intact
        return type(self), (self.run_id, self.by, self.finished)


def this_process() -> tuple[str, int]:
    """(host, pid) of this process: who holds a claim, or which driver a worker watches."""
    return socket.gethostname(), os.getpid()


def read_claim(path: Path) -> Claim | None:
    try:
        raw = json.loads(Path(path).read_text())
        return Claim(str(raw["host"]), int(raw["pid"]), float(raw["since"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):  # half-written or foreign: treat as dead
        return Claim("?", -1, 0.0)


def is_stale(path: Path, claim: Claim) -> bool:
    if claim.host == socket.gethostname():
        return claim.pid <= 0 or not process_alive(claim.pid)
    try:
        age = time.time() - Path(path).stat().st_mtime
    except FileNotFoundError:
        return True
    return age > STALE_AFTER_S


def acquire(path: Path, run_id: str) -> None:
    """Claim the cell at ``path`` for this process or raise :class:`ClaimedElsewhere`.

    Check and take-over happen under an exclusive ``flock`` on the folder's one lock file,
    ``.claims.lock``, so two sweeps that both find a claim stale cannot both take it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / ".claims.lock"
    with open(lock, "a") as lf:
        fcntl.flock(lf, fcntl.LOCK_EX)
        held = read_claim(path)
        if held is not None:
            if (held.host, held.pid) == this_process():
                return  # ours already (a retried cell in the same process)
            if not is_stale(path, held):
                raise ClaimedElsewhere(run_id, str(held))
        write_json_atomic(path, asdict(Claim(*this_process(), time.time())))


def refresh(path: Path, progress: dict | None = None) -> None:
    """Mark a running cell's claim as alive (its mtime is the heartbeat) and, with
    ``progress`` (epoch, epochs, loss, val_mse), say how far it is: the sweep's driver reads
    it to show the progress of cells running in other processes."""
    held = read_claim(path)
    if held is None or (held.host, held.pid) != this_process():
        return  # released, or taken over: not ours to touch
    write_json_atomic(path, {**asdict(held), "progress": progress or {}})


def read_progress(path: Path) -> dict | None:
    """The progress a running cell last wrote into its claim, or None."""
    try:
        return json.loads(Path(path).read_text()).get("progress") or None
    except (OSError, ValueError, AttributeError):
        return None


def release(path: Path) -> None:
    Path(path).unlink(missing_ok=True)
