"""The sizes the suite refuses, and the one check of a number against its valid range.

Why bounds at all: a size nobody can run (a hundred million seeds or patients, more torch
threads than the machine has) does not fail, it hangs or crashes the interpreter after a
long silence. Such a value is refused in one line, before anything is loaded or trained.
The bounds are generous (the paper's cohort has 189 patients, its tables 5 seeds) and the
README lists them under "Bad input on the command line".
"""
from __future__ import annotations

import math
import os

MAX_SEEDS = 1000            # seeds of one sweep
MAX_SEED = 2**31 - 1        # a seed value (numpy, torch and the split generator all take it)
MAX_PATIENTS = 20_000       # synthetic cohorts: about 100 x the paper's
MAX_REMOTE_THREADS = 256    # torch threads of a cell run by Ray or SLURM (not this machine's)


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def range_problem(value, lo=None, hi=None, why: str = "") -> str | None:
    """``None`` if ``lo <= value <= hi`` (either may be None), else what is valid, e.g.
    ``must be at least 1, got 0``; NaN and infinity are never valid."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if lo is not None and value < lo:
        return f"must be at least {_num(lo)}, got {_num(value)}"
    if hi is not None and value > hi:
        return f"must be at most {_num(hi)}{f' ({why})' if why else ''}, got {_num(value)}"
    return None


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
