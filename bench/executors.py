"""Executors beyond the in-process loop: worker processes (one or more per GPU, or CPU
jobs) and Ray for clusters. Each yields ``(spec, record | exception)`` like
:func:`bench.runner.local_cells`; workers write the cell's files themselves, so the
results folder must be shared with them (it is, on one machine; on a cluster use a shared
filesystem, as Ray's own docs assume for outputs). The CLI decodes every clip into the
cache before it starts them (:func:`bench.data.store.warm_cache`), so workers only read it.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from functools import partial

import torch

from bench.data.store import DataStore
from bench.runner import RunContext, execute_cell, local_cells

# Per-process state of a worker: its device and its memo of datasets and clips.
_WORKER: dict = {}


def worker_devices(gpus: int, jobs_per_gpu: int, jobs: int) -> list[str]:
    """``--gpus 2 --jobs-per-gpu 2`` -> cuda:0, cuda:0, cuda:1, cuda:1; else ``jobs`` CPU slots."""
    if gpus:
        return [f"cuda:{g}" for g in range(gpus) for _ in range(jobs_per_gpu)]
    return ["cpu"] * max(1, jobs)


def _threads(n_workers: int, threads_per_cell: int | None) -> int:
    return threads_per_cell or max(1, (os.cpu_count() or 1) // n_workers)


def _init_worker(devices, threads: int) -> None:
    _WORKER["device"] = devices.get()
    _WORKER["store"] = DataStore()
    torch.set_num_threads(threads)


def _worker_cell(spec, ctx: RunContext) -> dict:
    return execute_cell(spec, replace(ctx, device=_WORKER["device"]), _WORKER["store"])


def process_cells(todo, ctx: RunContext, reporter=None, *, devices: list[str],
                  threads_per_cell: int | None = None):
    """One worker process per device slot; cells go to whichever slot is free."""
    mp = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    slots = mp.Queue()
    for d in devices:
        slots.put(d)
    with ProcessPoolExecutor(len(devices), mp_context=mp, initializer=_init_worker,
                             initargs=(slots, _threads(len(devices), threads_per_cell))) as pool:
        futures = {pool.submit(_worker_cell, spec, ctx): spec for spec in todo}
        for fut in as_completed(futures):
            exc = fut.exception()
            yield futures[fut], (exc if exc is not None else fut.result())


def _ray_cell(spec, ctx: RunContext, device: str, threads: int) -> dict:
    if "store" not in _WORKER:  # Ray reuses worker processes: keep their memo
        _WORKER["store"] = DataStore()
    torch.set_num_threads(threads)
    return execute_cell(spec, replace(ctx, device=device), _WORKER["store"])


def ray_cells(todo, ctx: RunContext, reporter=None, *, address: str | None = None,
              threads_per_cell: int | None = None):
    """Each cell is a Ray task needing one GPU when the cluster has GPUs, else CPUs."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("--executor ray needs Ray: pip install 'learner-bench[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    use_gpu = ray.cluster_resources().get("GPU", 0) >= 1 and (ctx.device == "auto" or ctx.device.startswith("cuda"))
    threads = threads_per_cell or 1
    task = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=threads, max_retries=0)(_ray_cell)
    refs = {task.remote(spec, ctx, "cuda" if use_gpu else "cpu", threads): spec for spec in todo}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            yield refs[done[0]], ray.get(done[0])
        except Exception as exc:  # a failed cell is reported; the sweep goes on
            yield refs[done[0]], exc


def make_executor(args, store: DataStore):
    """The ``cells`` callable for :func:`bench.runner.run_sweep` chosen by the CLI flags."""
    if args.executor == "ray":
        return partial(ray_cells, address=args.address, threads_per_cell=args.threads_per_cell)
    devices = worker_devices(args.gpus, args.jobs_per_gpu, args.jobs)
    if len(devices) > 1:
        return partial(process_cells, devices=devices, threads_per_cell=args.threads_per_cell)
    if args.threads_per_cell:
        torch.set_num_threads(args.threads_per_cell)
    return partial(local_cells, store=store)
