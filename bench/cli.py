"""Command line: subcommands through argparse; running a grid is the default.

    python run_all.py --grid table3 --preset quick --seeds 3        (= run --grid table3 ...)
    python run_all.py --grid table4 --set lr=5e-4 --set lam=0.5 --preset smoke
    python run_all.py --config results/table3/config.toml
    python run_all.py sensitivity --knob shortcut --values 0,0.5,1 --preset smoke
    python run_all.py describe synthetic-lus
    python run_all.py check-data adni:/data/ADNIMERGE.csv,/data/nifti
    python run_all.py export-tracker --out results
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tomllib
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from bench.files import DEFAULT_CACHE_DIR
from bench.options import add_arguments, config_defaults, config_fields, flagged, from_args
from bench.options import csv_list as _csv  # the bench command's --backbones
from bench.presets import PRESETS

COMMANDS_HELP = {
    "run": "run a grid and write its tables, figures and report (the default command)",
    "sensitivity": "sweep one synthetic-data knob and plot every loss against it",
    "describe": "print the figures that make a dataset a benchmark",
    "check-data": "validate a data source (decode every clip) without training",
    "bench": "training throughput, FLOPs and MFU of the backbones",
    "export-tracker": "log the run records under a results folder to MLflow",
}
class _Parser(argparse.ArgumentParser):
    """Argument errors are one line and exit with status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_sweep_arguments(p: argparse.ArgumentParser, **defaults) -> None:
    """The flags every sweep takes (``run`` and ``sensitivity``): the options declared in
    :mod:`bench.options` (``defaults``: the subcommand's own) and how the command runs."""
    add_arguments(p, **defaults)
    p.add_argument("--config", metavar="FILE.toml", help="preset, settings and grid axes from a TOML file "
                   "(e.g. a results folder's config.toml); flags given as well win")
    p.add_argument("--tables-only", action="store_true",
                   help="run nothing: rebuild tables and figures from the finished records")
    p.add_argument("--tracker", choices=("none", "mlflow"), default="none",
                   help="log finished cells and the figures to an experiment tracker")
    p.add_argument("--tracker-uri", help="tracker store (default: SQLite beside the results)")


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    from bench.grid import PAPER_BACKBONES
    p.add_argument("--backbones", type=_csv, default=list(PAPER_BACKBONES))
    p.add_argument("--preset", default="paper", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive baseline")
    p.add_argument("--peak-tflops", type=float, help="device peak for MFU where none is listed (CPUs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path's encoder")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="decoded-clip cache the fast path reads")
    p.add_argument("--out", default="results/benchmarks")


def build_parser() -> argparse.ArgumentParser:
    from bench.sweep import KNOBS
    p = _Parser(prog="run_all.py", description="Regenerate the LEARNER paper's tables (and more) as CSV, LaTeX "
                "and Markdown, with the evidence to read them.",
                epilog="Running a grid is the default: `python run_all.py --grid table4` is "
                       "`python run_all.py run --grid table4`. `python run_all.py COMMAND --help` for each.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help=COMMANDS_HELP["run"], description=COMMANDS_HELP["run"])
    add_sweep_arguments(run)
    run.add_argument("--list-backbones", action="store_true", help="print the backbone registry and exit")
    for axis in REGISTRIES:
        run.add_argument(f"--list-{axis}", action="store_true", help=f"print the {axis} registry and exit")
    sens = sub.add_parser("sensitivity", help=COMMANDS_HELP["sensitivity"], description=COMMANDS_HELP["sensitivity"]
                          + ": writes <out>/sensitivity/<knob>/ (sensitivity.csv, summary.csv, sensitivity.png/.pdf)")
    sens.add_argument("--knob", required=True, help=f"one of {', '.join(KNOBS)}")
    sens.add_argument("--values", required=True, help="comma-separated knob values, e.g. 0,0.5,1")
    add_sweep_arguments(sens, grid="table3")  # the grid whose rows run at each value
    desc = sub.add_parser("describe", help=COMMANDS_HELP["describe"], description=COMMANDS_HELP["describe"]
                          + " (sizes, pair labels, nuisance vs signal, oracle, shortcut).")
    desc.add_argument("source", nargs="*", default=["synthetic-lus", "synthetic-mri"])
    desc.add_argument("--frames", type=int, default=8)
    desc.add_argument("--size", type=int, default=64)
    check = sub.add_parser("check-data", help=COMMANDS_HELP["check-data"], description=COMMANDS_HELP["check-data"]
                           + ": sizes, pairs per label, and every problem found with its row and file.")
    check.add_argument("source", help="e.g. lus-manifest:manifest.csv or adni:ADNIMERGE.csv,nifti_dir")
    check.add_argument("--quick", action="store_true", help="probe each file instead of decoding every clip")
    check.add_argument("--seeds", type=int, default=5, help="check the patient splits of seeds 0..N-1, as a sweep "
                       "with N seeds does (default 5, the paper preset's)")
    bench = sub.add_parser("bench", help=COMMANDS_HELP["bench"], description=COMMANDS_HELP["bench"])
    add_bench_arguments(bench)
    export = sub.add_parser("export-tracker", help=COMMANDS_HELP["export-tracker"],
                            description=COMMANDS_HELP["export-tracker"] + " (every <out>/<grid>/runs folder; "
                            "cells already logged are skipped).")
    export.add_argument("--out", default="results", help="results root to replay (default results/)")
    export.add_argument("--tracker-uri", help="tracker store (default: SQLite beside each grid's results)")
    return p


def _fail(message: str) -> int:
    sys.stderr.write(f"run_all.py: error: {message}\n")
    return 2


def _fail_sweep(args, message: str) -> int:
    """A sweep's usage error; one about a value the ``--config`` file set names the file and key
    (the user gave no such flag)."""
    key = getattr(args, "config_keys", {}).get(message.split(" ", 1)[0])
    return _fail(f"--config {args.config}, key {key}: {message}" if key else message)


def load_config(path: str) -> dict:
    """A ``--config`` TOML as argparse defaults; one line naming a bad file, key or value."""
    try:
        return config_defaults(tomllib.loads(Path(path).read_text()))
    except OSError as exc:
        raise ValueError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {path}: not valid TOML ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"--config {path}: {exc}") from None


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse with ``run`` as the default command and ``--config`` values as defaults."""
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        try:
            defaults = load_config(args.config)
        except ValueError as exc:
            parser.exit(2, f"run_all.py: error: {exc}\n")
        for flag, other in (("seeds", "seed_list"), ("seed_list", "seeds")):  # a flag wins over the file
            if getattr(args, flag) is not None:
                defaults.pop(other, None)
        if args.epochs is not None and "overrides" in defaults:  # --epochs is the file's [set] epochs
            defaults["overrides"] = [i for i in defaults["overrides"] if i.partition("=")[0] != "epochs"]
        sub = parser._subparsers._group_actions[0].choices[args.command]
        sub.set_defaults(**defaults)
        args = parser.parse_args(argv)
        args.config_keys = {f.metadata["flag"]: key for key, f in config_fields().items()  # values the file set
                            if f.name in defaults and getattr(args, f.name) is defaults[f.name]}
        appended = [f.name for f in flagged() if f.metadata.get("arg", {}).get("action") == "append"]
        for key in appended:  # an append action adds the file's items to the flags'
            given = getattr(args, key) or []
            if key in defaults and given is not defaults[key]:
                names = {g.partition("=")[0] for g in given[len(defaults[key]):]}
                setattr(args, key, [d for d in defaults[key] if d.partition("=")[0] not in names]
                        + given[len(defaults[key]):])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else list(argv))
    return COMMANDS[args.command](args)


def run_command(args) -> int:
    console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)  # messages stay one line
    if args.list_backbones:
        return list_backbones_command(console)
    for axis in REGISTRIES:
        if getattr(args, f"list_{axis}"):
            return list_registry_command(console, axis)
    from bench import sweep
    from bench.data.scans import DataError
    try:
        options = from_args(args)
        check_tracker_flags(args)
        with clip_progress(console) as on_clip:
            plan = sweep.plan(options, decode=not args.tables_only, on_clip=on_clip)
    except sweep.UsageError as exc:
        return _fail_sweep(args, str(exc))
    except DataError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return run_grid(plan, args, console)


def check_tracker_flags(args) -> None:
    """``--tracker-uri`` needs ``--tracker mlflow``, and the store must work before any cell runs."""
    from bench.sweep import UsageError
    from bench.tracking import check_uri
    if args.tracker_uri and args.tracker != "mlflow":
        raise UsageError(f"--tracker-uri {args.tracker_uri}: a tracker store, use it with --tracker mlflow")
    if args.tracker == "mlflow":
        try:
            check_uri(args.tracker_uri)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


def run_cells(plan, console: Console):
    """Run the plan's unfinished cells with a progress display and say what happened;
    returns the :class:`bench.sweep.SweepResult` (its failures already printed, once each)."""
    from bench import sweep
    from bench.progress import RichReporter
    ctx, o = plan.ctx, plan.options
    design = f"{len(plan.seeds)} repeats × {o.folds} folds" if o.folds else f"{len(plan.seeds)} seeds"
    console.print(f"{o.folder or 'grid ' + o.grid}, preset [bold]{ctx.preset.name}[/]: {len(plan.specs)} cells "
                  f"({len(plan.rows)} rows × {design}), {ctx.threads} CPU thread(s) per cell -> {ctx.out_dir}")
    cores = os.cpu_count() or 1
    if (o.executor == "local" and not o.gpus and ctx.torch_device().type == "cpu"
            and o.jobs * ctx.threads < cores and len(plan.specs) > 1):
        console.print(f"[dim]hint: {cores} CPU cores, {o.jobs} cell(s) at a time with {ctx.threads} thread(s) each; "
                      f"--jobs {cores // ctx.threads} runs more cells at once with the same numbers[/]")
    result = sweep.run(plan, RichReporter(console))
    for reason in result.unreadable.values():
        console.print(f"[yellow]unreadable record[/] {reason}")
    stale = sweep.describe_stale(result, len(plan.specs))
    if stale:
        console.print(f"[yellow]{stale}[/]")
    if result.claimed_elsewhere:
        console.print(f"[yellow]{len(result.claimed_elsewhere)} cells were left to another sweep[/] "
                      f"({', '.join(sorted({who for _, who in result.claimed_elsewhere}))}); a rerun "
                      "after it ends includes those it finished")
    failed_now = {run_id for run_id, _ in result.failed}
    kept_failed = sum(not r.finished and r.run_id not in failed_now for r in result.records)
    if kept_failed:
        console.print(f"[yellow]{kept_failed} cell(s) failed in an earlier run[/] (their records say why); "
                      "--retry-failed reruns them")
    if result.ran == 0 and not result.failed and not result.claimed_elsewhere and not kept_failed:
        console.print(f"all {len(plan.specs)} cells were already finished in {ctx.out_dir / 'runs'}: "
                      "nothing to run")
    elif result.skipped:
        console.print(f"resumed: {result.skipped - kept_failed} cells were already finished, {result.ran} ran now")
    return result


def collect_records(plan, tables_only: bool, console: Console, if_missing: str):
    """(failures of this run, the plan's records): with ``tables_only`` the records as they
    are, saying how many cells have none (``if_missing``: what that means), else after
    running the unfinished cells."""
    from bench import sweep
    for note in plan.notes:
        console.print(f"[yellow]warning[/] {note}")
    if not tables_only:
        result = run_cells(plan, console)
        return result.failed, result.records
    records, unreadable = sweep.read_cells(plan)
    for exc in unreadable:
        console.print(f"[yellow]unreadable record[/] {exc.path}: {exc.reason}; left out (a run without "
                      "--tables-only reruns the cell)")
    if missing := len(plan.specs) - len(records):
        console.print(f"[yellow]{missing} of {len(plan.specs)} cells have no readable record; {if_missing}[/]")
    return [], records


def run_grid(plan, args, console: Console) -> int:
    """Run (or with ``--tables-only`` just collect) the plan's cells, then write tables,
    figures, the report and the resolved ``config.toml``; log to the tracker if asked."""
    from bench.config import write_config
    from bench.progress import summary_table
    from bench.plots import curves_figure, effects_figure, figure1
    from bench.report import write_report
    from bench.cell import record_is_stale
    from bench.tables import summarize, write_tables

    ctx, o = plan.ctx, plan.options
    for ds in plan.datasets.values():
        for problem in ds.skipped:
            console.print(f"[yellow]skipped[/] {ds.name}: {problem}")
    failed, records = collect_records(plan, args.tables_only, console, "their table cells stay empty")
    summary = summarize(records, plan.rows, record_is_stale)
    paths = write_tables(summary, records, o.grid, ctx.out_dir)
    finished = [r for r in records if r.finished]
    score_names = {r.dataset: r.data.score for r in finished}
    figures = {"figure1": figure1(finished, ctx.out_dir / "runs", ctx.out_dir, score_names),
               "effects": effects_figure(summary, ctx.out_dir), "curves": curves_figure(finished, ctx.out_dir)}
    report = write_report(o.grid, ctx.out_dir, summary, records, len(plan.specs), paths["md"], figures)
    config = write_config(plan, ctx.out_dir / "config.toml")
    written = [*paths.values(), *sum(figures.values(), []), report, config]
    if args.tracker == "mlflow":
        from bench.tracking import log_records
        logged = log_records(records, o.grid, ctx.out_dir, written, args.tracker_uri)
        console.print(f"tracker: {logged} new cell(s) logged to MLflow ({args.tracker_uri or ctx.out_dir / 'mlflow.db'})")
    console.print(summary_table(summary, f"{o.grid} ({ctx.preset.name})"))
    console.print("wrote: " + ", ".join(map(str, written)))
    if failed:
        console.print(f"[red]{len(failed)} cell(s) failed[/] (reasons above and in their records)")
    return 1 if failed or any(not r.finished for r in records) else 0


def sensitivity_command(args) -> int:
    """One sweep per knob value into ``<out>/sensitivity/<knob>/``, then the study's CSVs and figure."""
    from bench import sensitivity, sweep
    from bench.data.scans import DataError
    from bench.tables import backbone_label, signed_interval
    console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)
    try:
        if args.tracker != "none" or args.tracker_uri:
            raise sweep.UsageError("--tracker/--tracker-uri: sensitivity logs to no tracker; after it, "
                                   f"export-tracker --out {args.out} logs its records")
        values = sweep.parse_values(args.knob, args.values)
        with clip_progress(console) as on_clip:
            plans = sweep.plan_study(from_args(args), args.knob, values, on_clip, decode=not args.tables_only)
    except sweep.UsageError as exc:
        return _fail_sweep(args, str(exc))
    except DataError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    failed, studied = [], []
    for value, plan in plans:
        console.print(f"[bold]{args.knob} = {value}[/]")
        failed_now, records = collect_records(plan, args.tables_only, console, "they are left out")
        failed += failed_now
        studied.append((value, plan, records))
    trends, paths = sensitivity.write_study(args.knob, studied)
    for t in trends[trends["quantity"] == "macro_f1_vs_mse"].itertuples():
        if t.n_seeds > 1:
            console.print(f"{t.dataset} {backbone_label(t.backbone)} {t.loss_label}: ΔF1 vs MSE changes by "
                          f"{signed_interval(t.change_over_range, t.change_lo, t.change_hi)} over the "
                          f"{args.knob} range (p = {t.p_value:.2f}, {t.n_seeds} seeds)")
    console.print("wrote: " + ", ".join(map(str, paths)))
    if failed:
        console.print(f"[red]{len(failed)} cell(s) failed[/] (reasons above and in their records)")
    return 1 if failed else 0


def export_tracker_command(args) -> int:
    """Replay the records of every ``<out>/<grid>/runs`` folder into MLflow."""
    from bench.records import read_records
    from bench.tracking import log_records
    from bench.tracking import check_uri
    folders = sorted(p.parent for p in Path(args.out).glob("**/runs") if p.is_dir())
    if not folders:
        return _fail(f"--out {args.out}: no runs/ folder with records under it")
    try:
        check_uri(args.tracker_uri)
    except ValueError as exc:
        return _fail(str(exc))
    for folder in folders:
        records = read_records(folder / "runs", skip=lambda exc: print(f"skipped: {exc}"))
        artifacts = sorted(p for p in folder.iterdir() if p.suffix in (".csv", ".md", ".tex", ".png", ".pdf", ".toml"))
        logged = log_records(records, folder.relative_to(args.out).as_posix(), folder, artifacts,
                             args.tracker_uri)
        print(f"{folder}: {logged} new cell(s) of {len(records)} logged")
    return 0


@contextmanager
def clip_progress(console: Console):
    """A progress bar for decoding clips into the cache; yields the ``on_clip`` callback."""
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        tasks = {}

        def on_clip(name: str, i: int, n: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"decoding {name} clips (cached for later runs)", total=n)
            progress.update(tasks[name], completed=i + 1)
        yield on_clip


def list_backbones_command(console: Console) -> int:
    from rich.table import Table

    from backbones.listing import backbone_rows
    rows = backbone_rows()
    table = Table(title="registered backbones")
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(f"{v / 1e6:.2f} M" if k.startswith("params") and isinstance(v, int) else str(v)
                        for k, v in r.items()))
    console.print(table)
    return 0


# --list-AXIS: the registries of the other open axes (bench.plugins)
REGISTRIES = {"losses": ("bench.losses", "LOSSES"), "sims": ("bench.similarity", "SIMILARITIES"),
              "sources": ("bench.data.sources", "SOURCES")}


def list_registry_command(console: Console, axis: str) -> int:
    """Name, source (built-in or plugin), where it comes from, and its table label."""
    import importlib

    from rich.table import Table

    from bench.plugins import PluginError
    module, attr = REGISTRIES[axis]
    registry = getattr(importlib.import_module(module), attr)
    try:
        entries = registry.entries()
    except PluginError as exc:
        return _fail(str(exc))
    table = Table(title=f"registered {axis}")
    for col in ("name", "source", "from", "label"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.name, e.source, e.origin, getattr(e.obj, "label", ""))
    console.print(table)
    return 0


def describe_command(args) -> int:
    from bench.data import load_dataset
    from bench.data.describe import describe, format_description
    from bench.references import oracle_figures
    try:
        for spec in args.source:
            dataset = load_dataset(spec)
            figures = describe(dataset, frames=args.frames, size=args.size)
            print(format_description({**figures, "oracle": oracle_figures(dataset)}))
    except (KeyError, ValueError) as exc:
        return _fail(str(exc))
    return 0


def check_data_command(args) -> int:
    from bench.data.check import check_data, format_report
    from bench.limits import MAX_SEEDS
    from bench.options import check_range
    try:
        check_range("--seeds", args.seeds, 1, MAX_SEEDS, "seeds of one sweep")
        report = check_data(args.source, quick=args.quick, seeds=args.seeds)
    except (KeyError, ValueError) as exc:
        return _fail(str(exc))
    print(format_report(report))
    return 0 if report.ok else 1


def _bench_parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog)
    add_bench_arguments(p)
    return p


def _bench_setup(args):
    """The benchmark's settings and device of ``bench`` / ``time_to_table.py``, every flag
    checked first."""
    import backbones
    from bench.benchmark import BenchConfig
    from bench.devices import resolve_device
    from bench.grid import validate_axis
    from bench.limits import MAX_STEPS, cpu_cores
    from bench.presets import get_preset
    from bench.options import UsageError, check_device, check_range
    from bench.sweep import writable_dir
    validate_axis("backbone", args.backbones, backbones.list_backbones())
    if not args.backbones:
        raise UsageError("--backbones is empty: give at least one name")
    preset = get_preset(args.preset)
    check_range("--steps", args.steps, 1, MAX_STEPS, "timed steps")
    check_range("--warmup", args.warmup, 0, MAX_STEPS, "untimed steps")
    check_range("--workers", args.workers, 0, cpu_cores(), "CPU cores here")
    if args.peak_tflops is not None and not 0 < args.peak_tflops < math.inf:
        raise UsageError(f"--peak-tflops {args.peak_tflops}: must be a finite number > 0 (TFLOP/s)")
    check_device(args.device, 0)
    writable_dir("--out", Path(args.out), 2**20)
    writable_dir("--cache-dir", Path(args.cache_dir), 2**20)
    cfg = BenchConfig(preset, steps=args.steps, warmup=args.warmup, workers=args.workers,
                      peak_tflops=args.peak_tflops, compile=args.compile, cache_dir=Path(args.cache_dir))
    return cfg, resolve_device(args.device)


def bench_command(args) -> int:
    """Throughput benchmark: writes ``<out>/<device>.csv`` and prints fast/naive ratios."""
    try:
        cfg, device = _bench_setup(args)
    except (KeyError, ValueError) as exc:
        return _fail(str(exc.args[0]))
    from bench.benchmark import bench_csv, run_benchmark
    df = run_benchmark(args.backbones, cfg, device)
    path = bench_csv(args.out, device, cfg.preset, args.compile)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format="%.4g")
    _print_frame(df, f"throughput ({cfg.preset.name} preset, {df['device'].iloc[0]})")
    print(f"wrote {path}")
    return 0


def time_to_table_command(argv: list[str]) -> int:
    """Estimate (and with --measure, run and time) a grid.

    Step times come from this device's throughput CSV (measured now if absent) or, with
    ``--assume-mfu``, from FLOPs per clip at the given peak and MFU — the way to estimate a
    GPU's time from a machine without one.
    """
    p = _bench_parser("time_to_table.py")
    p.add_argument("--grid", default="table4")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--assume-mfu", type=float, help="derive step times from FLOPs at this MFU "
                   "(with --peak-tflops, default 989 = H100 dense bf16)")
    p.add_argument("--measure", action="store_true", help="also run the grid and time it")
    args = p.parse_args(argv)
    try:
        cfg, device = _bench_setup(args)
        from bench.limits import MAX_SEEDS
        from bench.options import check_range
        check_range("--seeds", args.seeds, 1, MAX_SEEDS)
        check_range("--assume-mfu", args.assume_mfu, 1e-3, 1.0, "a fraction of the peak")
    except (KeyError, ValueError) as exc:
        return _fail(str(exc.args[0]))
    import time

    import pandas as pd

    from bench.benchmark import (bench_csv, estimate_grid_seconds, flops_step_seconds, lus_cell_sizes,
                                 run_benchmark, step_seconds)
    from bench.grid import grid_rows
    preset = cfg.preset
    rows = grid_rows(args.grid)
    names = sorted({r.backbone for r in rows})
    if args.assume_mfu:
        peak = args.peak_tflops or 989.0
        step_s = {n: flops_step_seconds(n, preset, peak * args.assume_mfu) for n in names}
        source = f"FLOPs at {args.assume_mfu:.0%} MFU of {peak:g} TFLOP/s"
    else:
        csv = bench_csv(args.out, device, preset, args.compile)
        bench = pd.read_csv(csv) if csv.exists() else run_benchmark(names, cfg, device)
        step_s = step_seconds(bench[bench["mode"] == "fast"])
        source = f"step times measured on {bench['device'].iloc[0]}"
    est = estimate_grid_seconds(step_s, rows, args.seeds, preset, *lus_cell_sizes(preset))
    _print_frame(est, f"estimated {args.grid} ({preset.name}, {args.seeds} seeds): {source}")
    print(f"estimated total: {est['row_s'].sum() / 60:.1f} min, one cell at a time ({source})")
    if args.measure:
        t0 = time.perf_counter()
        code = main(["--grid", args.grid, "--preset", preset.name, "--seeds", str(args.seeds),
                     "--device", args.device, "--cache-dir", args.cache_dir,
                     "--out", "results/time_to_table", *(["--compile"] if args.compile else [])])
        print(f"measured wall time: {(time.perf_counter() - t0) / 60:.1f} min (exit {code})")
    return 0


def _print_frame(df, title: str) -> None:
    from rich.table import Table
    table = Table(title=title)
    for col in df.columns:
        table.add_column(col)
    for row in df.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    Console(width=200).print(table)


COMMANDS = {"run": run_command, "sensitivity": sensitivity_command, "describe": describe_command,
            "check-data": check_data_command, "bench": bench_command, "export-tracker": export_tracker_command}
