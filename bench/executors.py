"""Executors: who runs a sweep's cells. Each yields ``(spec, record | exception)`` as cells
finish, and every one of them runs a cell through :func:`bench.runner.execute_cell`, so a
cell's numbers do not depend on the executor (same thread count, same code path).

* :func:`local_cells` — one cell after another in this process;
* :func:`process_cells` — worker processes (``--jobs`` on a CPU, ``--gpus``/``--jobs-per-gpu``);
* :func:`ray_cells` — one Ray task per cell, for clusters;
* :func:`submitit_cells` — one SLURM job array per sweep (submitit; its local executor
  where there is no SLURM).

Cells in other processes report their epochs through their claim files
(:func:`bench.claims.refresh`); while waiting, an executor passes them to the reporter's
``workers_progress`` about once a second, so the console shows every running cell.

Workers write the cell's files themselves, so the results folder must be shared with them
(it is, on one machine; on a cluster use a shared filesystem). The sweep decodes every clip
into the cache before it starts them, so workers only read it. A worker whose driver dies
(even by ``kill -9``, even while the worker is still starting) stops instead of computing
records nobody collects (:mod:`bench.watchdog`).
"""
from __future__ import annotations

import multiprocessing
import pickle
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace

from bench import claims, watchdog
from bench.data.store import DataStore
from bench.devices import resolve_device
from bench.runner import RunContext, execute_cell

POLL_S = 1.0
ARRAY_PARALLELISM = 64  # SLURM jobs of a sweep's array running at once

# Per-process state of a worker: its device and its memo of datasets and clips.
_WORKER: dict = {}


def local_cells(todo, ctx: RunContext, reporter=None, store: DataStore | None = None):
    """Sequential executor in this process."""
    store = store or DataStore()
    for spec in todo:
        if reporter:
            reporter.cell_started(spec)
        try:
            yield spec, execute_cell(spec, ctx, store, reporter.epoch_done if reporter else None)
        except Exception as exc:  # one broken cell must not stop the sweep
            yield spec, exc


def report_progress(reporter, ctx: RunContext, running) -> None:
    """Pass the progress that running cells wrote into their claims to the reporter."""
    if reporter is None or not hasattr(reporter, "workers_progress"):
        return
    reporter.workers_progress({s.run_id: p for s in running
                               if (p := claims.read_progress(ctx.claim_path(s))) is not None})


def worker_devices(gpus: int, jobs_per_gpu: int, jobs: int) -> list[str]:
    """``--gpus 2 --jobs-per-gpu 2`` -> cuda:0, cuda:0, cuda:1, cuda:1; else ``jobs`` CPU slots."""
    if gpus:
        return [f"cuda:{g}" for g in range(gpus) for _ in range(jobs_per_gpu)]
    return ["cpu"] * max(1, jobs)


def _init_worker(devices) -> None:
    _WORKER["device"] = devices.get()
    _WORKER["store"] = DataStore()


def _worker_cell(spec, ctx: RunContext) -> dict:
    return execute_cell(spec, replace(ctx, device=_WORKER["device"]), _WORKER["store"])


def process_cells(todo, ctx: RunContext, reporter=None, *, devices: list[str]):
    """One worker process per device slot; cells go to whichever slot is free."""
    if not todo:
        return
    devices = devices[:len(todo)]  # a slot no worker takes would stay in the queue at exit
    mp = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    slots = mp.Queue()
    for d in devices:
        slots.put(d)
    try:
        with ProcessPoolExecutor(len(devices), mp_context=mp, initializer=watchdog.init_worker,
                                 initargs=(claims.this_process(), "bench.executors:_init_worker", slots)) as pool:
            futures = {pool.submit(_worker_cell, spec, ctx): spec for spec in todo}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                report_progress(reporter, ctx, [futures[f] for f in pending])
                for fut in done:
                    exc = fut.exception()
                    yield futures[fut], (exc if exc is not None else fut.result())
    finally:
        slots.close()
        slots.cancel_join_thread()  # never wait at exit to hand out a slot nobody asked for


def _ray_cell(spec, ctx: RunContext, device: str) -> dict:
    if "store" not in _WORKER:  # Ray reuses worker processes: keep their memo
        _WORKER["store"] = DataStore()
    return execute_cell(spec, replace(ctx, device=device), _WORKER["store"])


def ray_cells(todo, ctx: RunContext, reporter=None, *, address: str | None = None):
    """Each cell is a Ray task needing one GPU when the cluster has GPUs, else
    ``ctx.threads`` CPUs (the cell's thread count, as in every executor)."""
    import ray
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    use_gpu = ray.cluster_resources().get("GPU", 0) >= 1 and (ctx.device == "auto" or ctx.device.startswith("cuda"))
    task = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=ctx.threads, max_retries=0)(watchdog.run_watched)
    device = "cuda" if use_gpu else "cpu"  # inside a task, its one GPU is cuda
    driver = claims.this_process()
    refs = {task.remote(driver, pickle.dumps((_ray_cell, (spec, ctx, device)))): spec for spec in todo}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
        report_progress(reporter, ctx, [refs[r] for r in pending])
        for ref in done:
            try:
                yield refs[ref], ray.get(ref)
            except Exception as exc:  # a failed cell is reported; the sweep goes on
                yield refs[ref], getattr(exc, "cause", None) or exc


def _submitit_cell(spec, ctx: RunContext):
    """A cell in a submitit job; its error is returned, not raised, so that it arrives as
    itself rather than inside submitit's job-failure text."""
    device = str(resolve_device(ctx.device))
    try:
        return execute_cell(spec, replace(ctx, device=device), DataStore())
    except Exception as exc:
        return exc


def submitit_cells(todo, ctx: RunContext, reporter=None, *, slurm: dict):
    """One job array for the sweep's cells: on SLURM (``slurm``: the ``--slurm-*`` options
    of :class:`bench.options.SweepOptions` without the prefix), else submitit's local
    executor. CPUs per cell default to the cell's threads, job logs go to
    ``slurm["folder"]`` (default ``<out>/<grid>/slurm``)."""
    import submitit
    if not todo:
        return
    executor = submitit.AutoExecutor(folder=slurm["folder"] or ctx.out_dir / "slurm")
    params = {"timeout_min": slurm["time"], "cpus_per_task": slurm["cpus_per_task"] or ctx.threads,
              "name": f"learner-bench-{ctx.out_dir.name}"}
    if executor.cluster == "slurm":
        params.update(slurm_gpus_per_task=slurm["gpus_per_task"], slurm_array_parallelism=ARRAY_PARALLELISM)
        if slurm["partition"]:
            params["slurm_partition"] = slurm["partition"]
    executor.update_parameters(**params)
    driver = claims.this_process()
    jobs = executor.map_array(watchdog.run_watched, [driver] * len(todo),
                              [pickle.dumps((_submitit_cell, (spec, ctx))) for spec in todo])
    pending = dict(zip(jobs, todo))
    while pending:
        time.sleep(POLL_S)
        report_progress(reporter, ctx, list(pending.values()))
        for job in [j for j in pending if j.done()]:
            spec = pending.pop(job)
            try:
                yield spec, job.result()
            except Exception as exc:  # the job itself died (time limit, node failure): its last line
                lines = str(exc).strip().splitlines()
                yield spec, RuntimeError(f"job {job.job_id}: {lines[-1] if lines else type(exc).__name__}")
