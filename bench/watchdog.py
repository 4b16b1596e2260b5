"""A worker stops when its driver dies, from its first instant on.

Why a module of its own, with nothing but the standard library: a worker (a ``--jobs`` /
``--gpus`` pool process, a Ray task, a SLURM job on the driver's host) spends seconds
importing torch and unpickling its cell before it can run it. Had it started watching its
driver only after that, a driver killed in those seconds (even by ``kill -9``) would leave
it running. So the workers' entry points live here: they start the watch, and only then
import and unpickle the heavy part.
"""
from __future__ import annotations

import importlib
import os
import pickle
import socket
import threading
import time

EVERY_S = 0.25
_watching: set[tuple[str, int]] = set()


def process_alive(pid: int) -> bool:
    """The process runs (a zombie, dead but not yet reaped by its parent, does not). The one
    liveness check: of a worker's driver, a claim's holder, a cache writer."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):  # no /proc here: trust kill
        return True


def watch_driver(host: str, pid: int, every_s: float = EVERY_S) -> None:
    """Exit this process as soon as the driver ``host:pid`` is gone (a daemon thread; only
    on the driver's host, where its pid can be seen)."""
    if host != socket.gethostname() or (host, pid) in _watching:
        return
    _watching.add((host, pid))

    def loop():
        while process_alive(pid):
            time.sleep(every_s)
        os._exit(3)
    threading.Thread(target=loop, daemon=True, name="watch-driver").start()


def init_worker(driver: tuple[str, int], then: str, *args) -> None:
    """Pool initializer: watch ``driver``, then import ``then`` ("module:function") and call
    it with ``args``."""
    watch_driver(*driver)
    module, _, name = then.partition(":")
    getattr(importlib.import_module(module), name)(*args)


def run_watched(driver: tuple[str, int], payload: bytes):
    """A Ray task or SLURM job: watch ``driver``, then unpickle ``(function, args)`` from
    ``payload`` (importing torch and the cell's code) and return ``function(*args)``."""
    watch_driver(*driver)
    function, args = pickle.loads(payload)
    return function(*args)
