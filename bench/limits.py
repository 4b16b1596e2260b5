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
MAX_EPOCHS = 10_000         # pretraining or classifier epochs (the paper trains 100)
MAX_STEPS = 100_000         # timed steps of one ``bench`` measurement
# Upper bounds of the preset settings (``--set``, a config file's [set], ``--epochs``): past them
# a cell does not fail, it runs for weeks or asks for more memory than any machine has. The
# presets module says what a setting must be to make sense; this says what size is refused.
SETTING_MAX = {"epochs": (MAX_EPOCHS, "epochs"), "ds_epochs": (MAX_EPOCHS, "epochs"),
               "batch_size": (4096, "clips per batch"), "ds_batch_size": (4096, "pairs per batch"),
               "head_hidden": (65_536, "units"), "ds_hidden": (65_536, "units"),
               "frames": (256, "frames per clip"), "cache_frames": (256, "frames per clip"),
               "seeds": (MAX_SEEDS, "seeds of one sweep"), "oracle_patients": (MAX_PATIENTS, "patients")}


def setting_problems(settings: dict) -> list[str]:
    """One line per setting above its :data:`SETTING_MAX`, e.g. ``setting epochs=100000: must be
    at most 10000 (epochs), got 100000``."""
    return [f"setting {key}={settings[key]}: {problem}" for key, (hi, why) in SETTING_MAX.items()
            if (problem := range_problem(settings[key], hi=hi, why=why))]


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
