"""``results/<grid>/config.toml``: the resolved settings of a sweep, as a file ``--config`` reads.

Every preset setting is written with its resolved value (not only the overrides), so the
file reproduces the sweep's cells even if a preset's defaults change later; so are the
seeds, the grid's axes as given, the data sources, weights and numerics. How the cells were
run (executor, jobs, folders) is not part of it: it does not change a number. Which option
is a key, with which type, is declared with the option (:mod:`bench.options`).
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import tomli_w

from bench.files import atomic_write


def config_dict(plan) -> dict:
    """The plan's value of every option that is a config key (:mod:`bench.options`: its
    ``toml`` and ``write``); an option not given is left out."""
    out = {}
    for f in fields(plan.options):
        if "toml" in f.metadata:
            write = f.metadata.get("write")
            value = write(plan) if write else getattr(plan.options, f.name)
            if value is not None and value != {}:
                out[f.metadata.get("key", f.name)] = list(value) if isinstance(value, tuple) else value
    return out


def write_config(plan, path: Path) -> Path:
    text = (f"# learner-bench settings of {plan.ctx.out_dir}; rerun with:\n"
            f"#   python run_all.py --config {path}\n" + tomli_w.dumps(config_dict(plan)))
    atomic_write(Path(path), lambda f: f.write(text.encode()))
    return Path(path)
