"""Command line: run a grid (default), or ``describe`` / ``check-data`` / ``bench``.

    python run_all.py --grid table3 --preset quick --seeds 3
    python run_all.py --grid table4 --backbones tsm_r18,vit --preset smoke
    python run_all.py --grid table3 --data lus=lus-manifest:/data/manifest.csv
    python run_all.py describe synthetic-lus
    python run_all.py check-data adni:/data/ADNIMERGE.csv,/data/nifti
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from bench.presets import PRESETS


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line and exit with status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _csv(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def _int_list(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid list of integers {value!r}; give e.g. 0,3,7") from None


def _assignments(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, eq, val = item.partition("=")
        if not eq or not key or not val:
            raise ValueError(f"{what} must look like NAME=VALUE, got {item!r}")
        out[key] = val
    return out


def build_parser() -> argparse.ArgumentParser:
    from bench.grid import GRIDS
    p = _Parser(prog="run_all.py", description="Regenerate the LEARNER paper's tables (and more) as "
                "CSV, LaTeX and Markdown. Subcommands: describe, check-data, bench (see README).")
    p.add_argument("--grid", default="table4", help=f"one of {', '.join(GRIDS)} (default table4)")
    p.add_argument("--preset", default="paper", help=f"one of {', '.join(PRESETS)} (default paper)")
    p.add_argument("--seeds", type=int, help="number of seeds 0..N-1 (default: the preset's)")
    p.add_argument("--seed-list", type=_int_list, help="explicit seeds, e.g. 0,3,7")
    p.add_argument("--backbones", type=_csv, help="filter or add backbones (comma separated)")
    p.add_argument("--losses", type=_csv, help="filter or add losses: mse, cl, wcl, wcl_out, ...")
    p.add_argument("--sims", type=_csv, help="filter or add similarities: cos, l2")
    p.add_argument("--datasets", type=_csv, help="filter or add datasets: lus, adni")
    p.add_argument("--data", action="append", metavar="DATASET=SOURCE",
                   help="data source per dataset, e.g. lus=lus-manifest:manifest.csv (default synthetic)")
    p.add_argument("--pretrained", action="append", metavar="BACKBONE=PATH",
                   help="local weights for a backbone (file or save_pretrained directory)")
    p.add_argument("--on-bad-input", choices=("fail", "skip"), default="fail",
                   help="fail listing every bad row (default), or drop bad rows and report them")
    p.add_argument("--epochs", type=int, help="override the preset's pretraining epochs")
    p.add_argument("--out", default="results", help="results root (default results/)")
    p.add_argument("--cache-dir", default=".cache/clips", help="decoded-clip cache (default .cache/clips)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: this machine (see --gpus/--jobs); ray: one Ray task per cell")
    p.add_argument("--address", help="Ray cluster address (default: start or join a local one)")
    p.add_argument("--gpus", type=int, default=0, help="local: one worker process per GPU (0..N-1)")
    p.add_argument("--jobs-per-gpu", type=int, default=1, help="local: cells run at once on each GPU")
    p.add_argument("--jobs", type=int, default=1, help="local without --gpus: cells run at once on the CPU")
    p.add_argument("--threads-per-cell", type=int, default=1,
                   help="torch CPU threads of each cell (default 1); part of the numerics, so a cell's "
                        "numbers are the same whichever executor runs it")
    p.add_argument("--rerun-stale", action="store_true",
                   help="recompute finished cells made by other result-affecting code (default: keep them, marked)")
    p.add_argument("--retry-failed", action="store_true", help="rerun cells whose record says they failed")
    p.add_argument("--no-references", action="store_true",
                   help="leave out the majority / untrained / oracle reference rows")
    p.add_argument("--tables-only", action="store_true", help="rebuild tables from finished run JSONs")
    p.add_argument("--list-backbones", action="store_true", help="print the backbone registry and exit")
    return p


def _fail(message: str) -> int:
    sys.stderr.write(f"run_all.py: error: {message}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)  # messages stay one line
    if args.list_backbones:
        return list_backbones_command(console)
    from bench import sweep
    from bench.data.scans import DataError
    try:
        options = sweep_options(args)
        with clip_progress(console) as on_clip:
            plan = sweep.plan(options, decode=not args.tables_only, on_clip=on_clip)
    except sweep.UsageError as exc:
        return _fail(str(exc))
    except DataError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return run_grid(plan, args.tables_only, console)


def sweep_options(args):
    """The parsed flags as :class:`bench.sweep.SweepOptions` (NAME=VALUE lists checked)."""
    from bench.sweep import SweepOptions, UsageError
    try:
        data = _assignments(args.data, "--data")
        pretrained = _assignments(args.pretrained, "--pretrained")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return SweepOptions(
        grid=args.grid, preset=args.preset, seeds=args.seeds, seed_list=args.seed_list, backbones=args.backbones,
        losses=args.losses, sims=args.sims, datasets=args.datasets, data=data, pretrained=pretrained,
        on_bad_input=args.on_bad_input, epochs=args.epochs, out=args.out, cache_dir=args.cache_dir,
        device=args.device, amp=not args.no_amp, compile=args.compile, executor=args.executor,
        address=args.address, gpus=args.gpus, jobs_per_gpu=args.jobs_per_gpu, jobs=args.jobs,
        threads_per_cell=args.threads_per_cell, rerun_stale=args.rerun_stale, retry_failed=args.retry_failed,
        references=not args.no_references)


def run_grid(plan, tables_only: bool, console: Console) -> int:
    """Run (or with ``tables_only`` just collect) the plan's cells, then write tables,
    Figure 1 and the report."""
    from bench import sweep
    from bench.progress import RichReporter, summary_table
    from bench.plots import effects_figure, figure1
    from bench.report import write_report
    from bench.runner import CODE_VERSION
    from bench.tables import summarize, write_tables

    ctx, o = plan.ctx, plan.options
    for ds in plan.datasets.values():
        for problem in ds.skipped:
            console.print(f"[yellow]skipped[/] {ds.name}: {problem}")
    failed: list = []
    if tables_only:
        records = sweep.records_of(plan)
        missing = len(plan.specs) - len(records)
        if missing:
            console.print(f"[yellow]{missing} of {len(plan.specs)} cells have no readable record; "
                          "their table cells stay empty[/]")
    else:
        console.print(f"grid [bold]{o.grid}[/], preset [bold]{ctx.preset.name}[/]: {len(plan.specs)} cells "
                      f"({len(plan.rows)} rows × {len(plan.seeds)} seeds), {ctx.threads} CPU thread(s) per cell "
                      f"-> {ctx.out_dir}")
        result = sweep.run(plan, RichReporter(console))
        records, failed = result.records, result.failed
        for run_id, reason in result.unreadable.items():
            console.print(f"[yellow]unreadable record[/] {reason}")
        stale = sweep.describe_stale(result, len(plan.specs))
        if stale:
            console.print(f"[yellow]{stale}[/]")
        if result.claimed_elsewhere:
            console.print(f"[yellow]{len(result.claimed_elsewhere)} cells were left to another sweep[/] "
                          f"({', '.join(sorted({who for _, who in result.claimed_elsewhere}))}); a rerun "
                          "after it ends includes those it finished")
        if result.ran == 0 and not failed and not result.claimed_elsewhere:
            console.print(f"all {len(plan.specs)} cells were already finished in {ctx.out_dir / 'runs'}: "
                          "nothing to run; tables rebuilt from them")
        elif result.skipped:
            console.print(f"resumed: {result.skipped} cells were already finished, {result.ran} ran now")
    paths = write_tables(records, plan.rows, o.grid, ctx.out_dir, CODE_VERSION)
    summary = summarize(records, plan.rows, CODE_VERSION)
    finished = [r for r in records if r.finished]
    score_names = {r.dataset: r.data["score"] for r in finished}
    figure = figure1(finished, ctx.out_dir / "runs", ctx.out_dir, score_names)
    effects = effects_figure(summary, ctx.out_dir)
    report = write_report(o.grid, ctx.out_dir, summary, records, len(plan.specs), paths["md"], figure, effects)
    console.print(summary_table(summary, f"{o.grid} ({ctx.preset.name})"))
    console.print("wrote: " + ", ".join(str(p) for p in [*paths.values(), *figure, *effects, report]))
    if failed:
        console.print(f"[red]{len(failed)} cell(s) failed[/] (reasons above and in their records)")
    return 1 if failed else 0


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


def describe_command(argv: list[str]) -> int:
    p = _Parser(prog="run_all.py describe", description="Print the figures that make a dataset a "
                "meaningful benchmark (sizes, pair labels, nuisance vs signal).")
    p.add_argument("source", nargs="*", default=["synthetic-lus", "synthetic-mri"])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    args = p.parse_args(argv)
    from bench.data import load_dataset
    from bench.data.describe import describe, format_description
    try:
        for spec in args.source:
            print(format_description(describe(load_dataset(spec), frames=args.frames, size=args.size)))
    except (KeyError, ValueError) as exc:
        return _fail(str(exc))
    return 0


def check_data_command(argv: list[str]) -> int:
    p = _Parser(prog="run_all.py check-data", description="Validate a data source without training: "
                "sizes, pairs per label, and every problem found with its row and file.")
    p.add_argument("source", help="e.g. lus-manifest:manifest.csv or adni:ADNIMERGE.csv,nifti_dir")
    args = p.parse_args(argv)
    from bench.data.check import check_data, format_report
    try:
        report = check_data(args.source)
    except (KeyError, ValueError) as exc:
        return _fail(str(exc))
    print(format_report(report))
    return 1 if report.problems else 0


def _bench_parser(prog: str) -> argparse.ArgumentParser:
    from bench.grid import PAPER_BACKBONES
    p = _Parser(prog=prog)
    p.add_argument("--backbones", type=_csv, default=list(PAPER_BACKBONES))
    p.add_argument("--preset", default="paper", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive baseline")
    p.add_argument("--peak-tflops", type=float, help="device peak for MFU where none is listed (CPUs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path's encoder")
    p.add_argument("--out", default="results/benchmarks")
    return p


def _bench_setup(args):
    import torch

    import backbones
    from bench.grid import validate_axis
    from bench.presets import get_preset
    validate_axis("backbone", args.backbones, backbones.list_backbones())
    preset = get_preset(args.preset)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    return preset, device


def bench_command(argv: list[str]) -> int:
    """Throughput benchmark: writes ``<out>/<device>.csv`` and prints fast/naive ratios."""
    args = _bench_parser("run_all.py bench").parse_args(argv)
    try:
        preset, device = _bench_setup(args)
    except (KeyError, ValueError) as exc:
        return _fail(str(exc.args[0]))
    from bench.benchmark import BenchConfig, bench_csv, run_benchmark
    cfg = BenchConfig(preset, steps=args.steps, warmup=args.warmup, workers=args.workers,
                      peak_tflops=args.peak_tflops, compile=args.compile)
    df = run_benchmark(args.backbones, cfg, device)
    path = bench_csv(args.out, device, preset, args.compile)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format="%.4g")
    _print_frame(df, f"throughput ({preset.name} preset, {df['device'].iloc[0]})")
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
        preset, device = _bench_setup(args)
    except (KeyError, ValueError) as exc:
        return _fail(str(exc.args[0]))
    import time

    import pandas as pd

    from bench.benchmark import BenchConfig, bench_csv, estimate_grid_seconds, run_benchmark, train_flops_per_clip
    from bench.data import load_dataset
    from bench.data.splits import split_patients
    from bench.grid import grid_rows
    rows = grid_rows(args.grid)
    names = sorted({r.backbone for r in rows})
    if args.assume_mfu:
        peak = args.peak_tflops or 989.0
        step_s = {n: train_flops_per_clip(n, preset) * preset.batch_size / (peak * 1e12 * args.assume_mfu)
                  for n in names}
        source = f"FLOPs at {args.assume_mfu:.0%} MFU of {peak:g} TFLOP/s"
    else:
        csv = bench_csv(args.out, device, preset, args.compile)
        bench = pd.read_csv(csv) if csv.exists() else run_benchmark(
            names, BenchConfig(preset, steps=args.steps, warmup=args.warmup, compile=args.compile), device)
        fast = bench[bench["mode"] == "fast"].set_index("backbone")
        step_s = {n: fast.loc[n, "step_ms"] / 1000 for n in names}
        source = f"step times measured on {bench['device'].iloc[0]}"
    ds = load_dataset("synthetic-lus", **preset.data_defaults)
    n_train = len(split_patients(ds.scans, 0)["train"])
    est = estimate_grid_seconds(step_s, rows, args.seeds, preset, n_train, len(ds))
    _print_frame(est, f"estimated {args.grid} ({preset.name}, {args.seeds} seeds): {source}")
    print(f"estimated total: {est['row_s'].sum() / 60:.1f} min, one cell at a time ({source})")
    if args.measure:
        t0 = time.perf_counter()
        code = main(["--grid", args.grid, "--preset", preset.name, "--seeds", str(args.seeds),
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


SUBCOMMANDS = {"describe": describe_command, "check-data": check_data_command, "bench": bench_command}
