"""A sweep's options, declared once: each field of :class:`SweepOptions` carries its flag,
default, help, ``--config`` type and checks, and what handles options is generated from
those fields — the sweep's flags (:func:`add_arguments`, :func:`from_args`), the
``--config`` reader (:func:`config_defaults`), the resolved ``config.toml``
(:func:`bench.config.config_dict`) and :func:`check_options`. So a new option is one field,
and the CLI, the config file and the Python API cannot disagree about it.

A field's metadata (:func:`option`): ``flag`` (None: Python API only) and ``help``; ``arg``,
argparse keywords (type, action, choices, metavar); ``parse``, from the parsed flag to the
value, for what argparse cannot (NAME=VALUE lists); ``toml``, its type in a config file
(absent: it says how cells run, not what they compute, so it is no config key), ``key``
(the config key, if not the field's name) and ``write`` (its value in ``config.toml``, from
the plan); ``executor``, the one executor it belongs to (refused with another); ``range``,
``(lo, hi, why)`` or a function of the options giving it; ``check``, a function of
``(flag, value)`` raising :class:`UsageError`.
"""
from __future__ import annotations

import argparse
import importlib.util
import socket
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path


from bench.files import DEFAULT_CACHE_DIR
from bench.grid import GRIDS
from bench.limits import MAX_EPOCHS, MAX_REMOTE_THREADS, MAX_SEED, MAX_SEEDS, cpu_cores, range_problem
from bench.presets import PRESETS, SETTABLE


class UsageError(ValueError):
    """A setting that cannot work: one line naming the value and what is valid."""


def check_range(flag: str, value, lo=None, hi=None, why: str = "") -> None:
    """A flag's number in ``[lo, hi]`` or :class:`UsageError` naming the flag (None: not given)."""
    if value is not None and (problem := range_problem(value, lo, hi, why)):
        raise UsageError(f"{flag} {problem}")


# --- how a flag's text becomes a value -------------------------------------------------------

def csv_list(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def int_list(value: str) -> list[int]:
    try:
        return [int(v) for v in csv_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid list of integers {value!r}; give e.g. 0,3,7") from None


def assignments(flag: str, items: list[str] | None) -> dict[str, str]:
    """Repeated ``NAME=VALUE`` flags as a dict (the last of a name wins)."""
    out = {}
    for item in items or []:
        key, eq, val = item.partition("=")
        if not eq or not key or not val:
            raise UsageError(f"{flag} must look like NAME=VALUE, got {item!r}")
        out[key] = val
    return out


def count_or_auto(flag: str, value: int | str) -> int | str:
    if value == "auto" or isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r}: give a number of cells or auto") from None


# --- checks of one value ----------------------------------------------------------------------

def not_empty(flag: str, names: list[str]) -> None:
    if not names:
        raise UsageError(f"{flag} is empty: give at least one name (leave the flag out for the grid's own)")


def check_seed_list(flag: str, seeds: list[int]) -> None:
    if not seeds:
        raise UsageError(f"{flag} is empty; give seeds like 0,1,2")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UsageError(f"{flag} repeats seed(s) {', '.join(map(str, repeated))}: each seed is one cell")
    if min(seeds) < 0:
        raise UsageError(f"{flag}: seeds must be >= 0, got {min(seeds)}")
    check_range(f"{flag}: a seed", max(seeds), 0, MAX_SEED)
    check_range(f"{flag}: the number of seeds", len(seeds), 1, MAX_SEEDS, "seeds of one sweep")


def _threads_range(o: SweepOptions) -> tuple:
    """Threads of a local cell share this machine's cores; Ray and SLURM place cells elsewhere."""
    return (1, cpu_cores(), "CPU cores here") if o.executor == "local" else (1, MAX_REMOTE_THREADS)


def _resolved_preset(plan) -> dict:
    """Every preset setting as the plan resolved it, so the file outlives the preset's defaults."""
    return {k: getattr(plan.ctx.preset, k) for k in SETTABLE}


# Who runs the cells, and the one line refusing a flag of one executor given with another.
EXECUTORS = {"local": "{flags}: settings of the local executor; {executor} places cells itself",
             "ray": "{flags}: a Ray cluster address, use it with --executor ray",
             "submitit": "{flags}: SLURM settings, use them with --executor submitit"}


def option(default=None, flag: str | None = None, help: str = "", **meta):
    """A field of :class:`SweepOptions` with its declaration (the module says which keys)."""
    default_kw = {"default_factory": dict} if default == {} else {"default": default}  # a fresh dict each
    return field(**default_kw, metadata={"flag": flag, "help": help, **meta})


def _names(flag: str, what: str) -> Field:
    return option(None, flag, f"filter or add {what} (comma separated)", arg={"type": csv_list},
                  toml=("list", str), check=not_empty)


def _table(flag: str, metavar: str, help: str) -> Field:
    return option({}, flag, help, arg={"action": "append", "metavar": metavar}, parse=assignments,
                  toml=("table", str))


@dataclass
class SweepOptions:
    """Everything a user chooses for a sweep; each field declares its flag and checks."""

    grid: str = option("table4", "--grid", f"one of {', '.join(GRIDS)} (default %(default)s)", toml=str)
    preset: str = option("paper", "--preset", f"one of {', '.join(PRESETS)} (default %(default)s)", toml=str)
    overrides: dict = option({}, "--set", "override a preset setting, e.g. --set lr=5e-4 --set lam=0.5 (repeatable)",
                             arg={"action": "append", "metavar": "KEY=VALUE"}, parse=assignments,
                             toml=("table", object), key="set", write=_resolved_preset)
    seeds: int | None = option(None, "--seeds", "number of seeds 0..N-1 (default: the preset's)", arg={"type": int},
                               toml=int, range=(1, MAX_SEEDS, "seeds of one sweep"),
                               write=lambda plan: None)  # config.toml has the seed_list
    seed_list: list[int] | None = option(None, "--seed-list", "explicit seeds, e.g. 0,3,7", arg={"type": int_list},
                                         toml=("list", int), check=check_seed_list,
                                         write=lambda plan: None if plan.options.folds else list(plan.seeds))
    folds: int | None = option(None, "--folds", "patient-level K-fold cross-validation, stratified by the patients' "
                               "pair labels (real data; synthetic with test_patients=0): K cells per row and repeat",
                               arg={"type": int, "metavar": "K"}, toml=int, range=(2, MAX_SEEDS, "folds"))
    repeats: int | None = option(None, "--repeats", "with --folds: repeat the cross-validation R times, repeat r "
                                 "shuffled by seed r (default 1); the seeds are the repeats",
                                 arg={"type": int, "metavar": "R"}, toml=int, range=(1, MAX_SEEDS, "repeats of one sweep"))
    datasets: list[str] | None = _names("--datasets", "datasets: lus, adni")
    backbones: list[str] | None = _names("--backbones", "backbones")
    losses: list[str] | None = _names("--losses", "losses: mse, cl, wcl, wcl_out, ...")
    sims: list[str] | None = _names("--sims", "similarities: cos, l2")
    data: dict[str, str] = _table("--data", "DATASET=SOURCE",
                                  "data source per dataset, e.g. lus=lus-manifest:manifest.csv (default synthetic)")
    pretrained: dict[str, str] = _table("--pretrained", "BACKBONE=PATH",
                                        "local weights for a backbone (file or save_pretrained directory)")
    on_bad_input: str = option("fail", "--on-bad-input", "fail listing every bad row (default), or drop bad rows and "
                               "report them", arg={"choices": ("fail", "skip")}, toml=str)
    epochs: int | None = option(None, "--epochs", "the preset's pretraining epochs (same as --set epochs=N)",
                                arg={"type": int}, range=(1, MAX_EPOCHS, "epochs"))  # config.toml has it in [set]
    references: bool = option(True, "--no-references", "leave out the majority / untrained / oracle reference rows",
                              arg={"action": "store_false"}, toml=bool)
    out: str | Path = option("results", "--out", "results root (default results/)")
    folder: str | None = option(None, None, "results go to <out>/<folder> (default: the grid's name; sensitivity)")
    cache_dir: str | Path = option(DEFAULT_CACHE_DIR, "--cache-dir", "decoded-clip cache (default %(default)s)")
    device: str = option("auto", "--device", "auto, cpu, cuda, cuda:1 ...", toml=str)
    amp: bool = option(True, "--no-amp", "disable bf16 autocast on CUDA", arg={"action": "store_false"}, toml=bool)
    compile: bool = option(False, "--compile", "torch.compile the encoder", arg={"action": "store_true"}, toml=bool)
    threads_per_cell: int = option(1, "--threads-per-cell", "torch CPU threads of each cell (default 1); part of the "
                                   "numerics, so a cell's numbers are the same whichever executor runs it",
                                   arg={"type": int}, toml=int, range=_threads_range)
    executor: str = option("local", "--executor", "local: this machine (see --gpus/--jobs); ray: one Ray task per "
                           "cell; submitit: a SLURM job array", arg={"choices": tuple(EXECUTORS)})
    address: str | None = option(None, "--address", "Ray cluster address (default: start or join a local one)",
                                 executor="ray")
    gpus: int = option(0, "--gpus", "one worker process per GPU (0..N-1)", arg={"type": int}, range=(0,),
                       executor="local")
    jobs_per_gpu: int | str = option(1, "--jobs-per-gpu", "cells run at once on each GPU, or auto (from the model's "
                                     "measured memory and the GPU's free memory)", parse=count_or_auto,
                                     range=lambda o: (1, cpu_cores(), "one worker process per slot, CPU cores here"),
                                     executor="local")
    jobs: int = option(1, "--jobs", "cells run at once on the CPU (without --gpus)", arg={"type": int}, range=(1,),
                       executor="local")
    slurm_partition: str | None = option(None, "--slurm-partition", "SLURM partition", executor="submitit")
    slurm_time: int = option(240, "--slurm-time", "minutes per cell (default %(default)s)", arg={"type": int},
                             range=(1,), executor="submitit")
    slurm_gpus_per_task: int = option(1, "--slurm-gpus-per-task", "GPUs per cell (default %(default)s)",
                                      arg={"type": int}, range=(0,), executor="submitit")
    slurm_cpus_per_task: int | None = option(None, "--slurm-cpus-per-task", "CPUs per cell (default: "
                                             "--threads-per-cell)", arg={"type": int}, range=(1,), executor="submitit")
    slurm_folder: str | None = option(None, "--slurm-folder", "job logs (default <out>/<grid>/slurm)",
                                      executor="submitit")
    rerun_stale: bool = option(False, "--rerun-stale", "recompute finished cells made by other result-affecting code "
                               "(default: keep them, marked)", arg={"action": "store_true"})
    retry_failed: bool = option(False, "--retry-failed", "rerun cells whose record says they failed",
                                arg={"action": "store_true"})


def flagged() -> list[Field]:
    """The options that have a flag, in declaration order."""
    return [f for f in fields(SweepOptions) if f.metadata["flag"]]


def default_of(f: Field):
    return f.default_factory() if f.default is MISSING else f.default


def add_arguments(p: argparse.ArgumentParser, **defaults) -> None:
    """One flag per option (``dest`` is the field's name); ``defaults`` are a subcommand's own."""
    for f in flagged():
        m = f.metadata
        default = defaults.get(f.name, None if f.default is MISSING else f.default)  # appended: a fresh list
        help = f"{m['executor']}: {m['help']}" if "executor" in m else m["help"]
        p.add_argument(m["flag"], dest=f.name, default=default, help=help, **m.get("arg", {}))


def from_args(args: argparse.Namespace) -> SweepOptions:
    """The flags parsed by :func:`add_arguments` as options (UsageError: a bad NAME=VALUE)."""
    values = {}
    for f in flagged():
        parse, value = f.metadata.get("parse"), getattr(args, f.name)
        values[f.name] = parse(f.metadata["flag"], value) if parse else value
    return SweepOptions(**values)


# --- config files -------------------------------------------------------------------------------

_TYPE_NAMES = {str: ("a string", "strings"), int: ("an integer", "integers"), bool: ("true or false", ""),
               object: ("a value", "values")}


def config_fields() -> dict[str, Field]:
    """The options a config file holds, by key: what a cell's numbers depend on."""
    return {f.metadata.get("key", f.name): f for f in fields(SweepOptions) if "toml" in f.metadata}


def _toml_type_ok(value, kind) -> bool:
    """``value`` (from TOML) is of ``kind``, a type or ("list" | "table", item type); a bool
    is not an integer and a string is not a bool."""
    if isinstance(kind, tuple):
        container, item = kind
        items = value if container == "list" and isinstance(value, list) else \
            value.values() if container == "table" and isinstance(value, dict) else None
        return items is not None and all(_toml_type_ok(v, item) for v in items)
    return kind is object or (isinstance(value, kind) and not (kind is int and isinstance(value, bool)))


def _type_name(kind) -> str:
    if isinstance(kind, tuple):
        return f"a {'list of' if kind[0] == 'list' else 'table of NAME ='} {_TYPE_NAMES[kind[1]][1]}"
    return _TYPE_NAMES[kind][0]


def config_defaults(raw: dict) -> dict:
    """A config file's values as argparse defaults by ``dest`` (a table as NAME=VALUE items,
    as its flag gives them); ValueError naming an unknown key or a value of another type."""
    keyed = config_fields()
    unknown = sorted(set(raw) - set(keyed))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(keyed)}")
    out = {}
    for key, value in raw.items():
        kind = keyed[key].metadata["toml"]
        if not _toml_type_ok(value, kind):
            raise ValueError(f"{key} must be {_type_name(kind)}, got {value!r}")
        out[keyed[key].name] = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else value
    return out


# --- checks ---------------------------------------------------------------------------------------

def check_device(device: str, gpus: int) -> None:
    import torch  # here, not at the top: the CLI imports this module before any heavy one
    if device not in ("auto", "cpu") and not (device == "cuda" or device.startswith("cuda:")):
        raise UsageError(f"--device {device!r} is not a device; valid: auto, cpu, cuda, cuda:N")
    index = device.partition(":")[2]
    if index and not index.isdigit():
        raise UsageError(f"--device {device!r}: the GPU index must be a number, as in cuda:0")
    if (device.startswith("cuda") or gpus) and not torch.cuda.is_available():
        what = f"--device {device}" if device.startswith("cuda") else f"--gpus {gpus}"
        raise UsageError(f"{what}: no CUDA device here (torch {torch.__version__}); use --device cpu or auto")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index and int(index) >= count:
        raise UsageError(f"--device {device}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    if gpus > count:
        raise UsageError(f"--gpus {gpus}: this machine has {count} CUDA device(s)")


def check_ray(address: str | None, timeout_s: float = 3.0) -> None:
    """Ray is installed and, for an explicit ``host:port``, something answers there."""
    if importlib.util.find_spec("ray") is None:
        raise UsageError("--executor ray needs Ray: pip install 'learner-bench[ray]'")
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r} must look like HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"--address {address}: nothing answers there within {timeout_s:g} s "
                         f"({exc.strerror or exc}); is the Ray head running?") from None


def _check_executor_flags(o: SweepOptions) -> None:
    """An option of another executor than the chosen one would do nothing: refused, before
    its value is checked (a value other than the default counts as given)."""
    for executor, message in EXECUTORS.items():
        given = [f.metadata["flag"] for f in fields(o)
                 if f.metadata.get("executor") == executor and getattr(o, f.name) != default_of(f)]
        if given and o.executor != executor:
            raise UsageError(message.format(flags=", ".join(given), executor=o.executor))


def _check_value(o: SweepOptions, f: Field) -> None:
    """One option's own checks and range (None: not given)."""
    flag, value, bounds = f.metadata["flag"], getattr(o, f.name), f.metadata.get("range")
    if value is None:
        return
    if "check" in f.metadata:
        f.metadata["check"](flag, value)
    if bounds and isinstance(value, int):  # --jobs-per-gpu may be auto
        check_range(flag, value, *(bounds(o) if callable(bounds) else bounds))


def _check_overrides(o: SweepOptions) -> None:
    """``--epochs`` is ``--set epochs``: both at once would silently drop one (a config file's
    ``[set] epochs`` yields to the flag before this, as a file does to any flag)."""
    if o.epochs is not None and "epochs" in o.overrides:
        raise UsageError(f"--epochs {o.epochs} and --set epochs={o.overrides['epochs']} both choose the epochs: "
                         "give one of them")


def _check_cv(o: SweepOptions) -> None:
    """Under cross-validation the seeds are the repeats (repeat r: seed r), so --repeats is the
    one way to choose them, and it means nothing without --folds."""
    if o.repeats is not None and o.folds is None:
        raise UsageError(f"--repeats {o.repeats} repeats the cross-validation: use it with --folds K")
    if o.folds is not None and (o.seeds is not None or o.seed_list is not None):
        given = "--seeds" if o.seeds is not None else "--seed-list"
        raise UsageError(f"--folds {o.folds} with {given}: under cross-validation the seeds are the repeats "
                         "(repeat r uses seed r); give --repeats R instead")


def check_options(o: SweepOptions) -> None:
    """Every option on its own and against the others (no data, no files): one line per
    problem, the first raised. Options that conflict or do nothing here are refused."""
    for f in fields(o):
        choices = f.metadata.get("arg", {}).get("choices")
        if choices and getattr(o, f.name) not in choices:
            raise UsageError(f"{f.metadata['flag']} {getattr(o, f.name)!r}; valid: {', '.join(choices)}")
    _check_executor_flags(o)
    for f in fields(o):
        _check_value(o, f)
    if o.seeds is not None and o.seed_list is not None:
        raise UsageError(f"--seeds {o.seeds} and --seed-list {','.join(map(str, o.seed_list))} both choose the "
                         "seeds: give one of them")
    _check_overrides(o)
    _check_cv(o)
    for flag, path in (("--out", o.out), ("--cache-dir", o.cache_dir)):
        if not str(path).strip():
            raise UsageError(f"{flag} {str(path)!r}: give a folder")
    if o.jobs_per_gpu != 1 and not o.gpus:
        raise UsageError(f"--jobs-per-gpu {o.jobs_per_gpu} packs cells on GPUs: use it with --gpus N")
    if o.gpus and o.jobs > 1:
        raise UsageError("--jobs is for CPU cells; with --gpus use --jobs-per-gpu")
    check_device(o.device, o.gpus)
    if o.executor == "ray":
        check_ray(o.address)
    if o.executor == "submitit" and importlib.util.find_spec("submitit") is None:
        raise UsageError("--executor submitit needs submitit: pip install 'learner-bench[slurm]'")
