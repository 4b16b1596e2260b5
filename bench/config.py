"""``results/<grid>/config.toml``: the resolved settings of a sweep, as a file ``--config`` reads.

Every preset setting is written with its resolved value (not only the overrides), so the
file reproduces the sweep's cells even if a preset's defaults change later; so are the
seeds, the grid's axes as given, the data sources, weights and numerics. How the cells were
run (executor, jobs, folders) is not part of it: it does not change a number.
"""
from __future__ import annotations

from pathlib import Path

import tomli_w

from bench.presets import SETTABLE
from bench.records import atomic_write


def config_dict(plan) -> dict:
    o, preset = plan.options, plan.ctx.preset
    out = {"grid": o.grid, "preset": preset.name, "seed_list": list(plan.seeds)}
    for axis in ("datasets", "backbones", "losses", "sims"):
        if getattr(o, axis):
            out[axis] = list(getattr(o, axis))
    out.update(on_bad_input=o.on_bad_input, threads_per_cell=o.threads_per_cell, device=o.device, amp=o.amp,
               compile=o.compile, references=o.references)
    out["set"] = {k: getattr(preset, k) for k in SETTABLE}
    for table in ("data", "pretrained"):
        if getattr(o, table):
            out[table] = dict(getattr(o, table))
    return out


def write_config(plan, path: Path) -> Path:
    text = (f"# learner-bench settings of {plan.ctx.out_dir}; rerun with:\n"
            f"#   python run_all.py --config {path}\n" + tomli_w.dumps(config_dict(plan)))
    atomic_write(Path(path), lambda f: f.write(text.encode()))
    return Path(path)
