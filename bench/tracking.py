"""Experiment tracker: finished cells to MLflow (the optional ``tracker`` extra, mlflow-skinny).

Each finished cell becomes one MLflow run named by its ``run_id``: params (row, seed, preset,
the preset's settings, numerics, fingerprint, code version), per-epoch metrics (training
loss, its MSE and contrastive parts, validation MSE) and final metrics; the grid's tables
and figures are artifacts of one more run named after the grid. Logging is idempotent: a
cell already logged with the same code version is not logged again, so a rerun or
``export-tracker`` over old results adds only what is new. The default store is a local
SQLite file beside the results (``<out>/<grid>/mlflow.db``, artifacts in ``mlartifacts/``);
``--tracker-uri`` points at a team server instead.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.records import RunRecord

HISTORY_METRICS = ("loss", "mse", "contrastive", "val_mse")
FINAL_METRICS = ("accuracy", "macro_f1", "weighted_f1", "spearman_within")


STORE_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "file", "")


def check_uri(uri: str | None, timeout_s: float = 3.0) -> None:
    """Before any cell runs: MLflow is installed and can use ``uri`` (a server answers
    within ``timeout_s``); else ``ValueError``, one line. The default store (None) is a
    SQLite file in the results folder, which the sweep checks is writable."""
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ValueError("--tracker mlflow needs MLflow: pip install 'learner-bench[tracker]'") from None
    if uri is None:
        return
    parts = urlsplit(uri)
    scheme = parts.scheme.partition("+")[0]
    if scheme not in STORE_SCHEMES:
        raise ValueError(f"--tracker-uri {uri}: MLflow has no store for {scheme or 'a plain path'!r}; "
                         "valid: http(s)://HOST:PORT, sqlite:///FILE.db, postgresql://, mysql://, mssql://, databricks")
    if scheme in ("http", "https"):
        try:
            socket.create_connection((parts.hostname, parts.port or (443 if scheme == "https" else 80)),
                                     timeout=timeout_s).close()
        except (OSError, TypeError) as exc:
            raise ValueError(f"--tracker-uri {uri}: nothing answers there within {timeout_s:g} s "
                             f"({getattr(exc, 'strerror', None) or exc}); is the MLflow server running?") from None
        return
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # MLflow's own reasons (driver missing, file store retired, bad path)
        reason = str(exc).strip().split(". ")[0].splitlines()[0][:200]
        raise ValueError(f"--tracker-uri {uri}: MLflow cannot use it ({reason})") from None


def _client(uri: str | None, out_dir: Path):
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise RuntimeError("--tracker mlflow needs MLflow: pip install 'learner-bench[tracker]'") from None
    return MlflowClient(tracking_uri=uri or f"sqlite:///{(out_dir / 'mlflow.db').resolve()}")


def _experiment(client, name: str, out_dir: Path) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=(out_dir / "mlartifacts").resolve().as_uri())


def _params(rec: RunRecord) -> dict[str, str]:
    out = {"dataset": rec.dataset, "backbone": rec.backbone, "loss": rec.loss, "sim": rec.sim,
           "seed": rec.seed, "preset": rec.preset, "fingerprint": rec.fingerprint,
           "code_version": rec.code_version, "data": rec.data.source if rec.data else "",
           "pretrained": rec.pretrained, "device": rec.device}
    out.update({f"preset.{k}": v for k, v in rec.settings.get("preset", {}).items()})
    out.update({f"numerics.{k}": v for k, v in rec.numerics.items()})
    return {k: str(v)[:500] for k, v in out.items()}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and v == v and abs(v) != float("inf")


def log_records(records: list[RunRecord], grid: str, out_dir: Path, artifacts: list[Path],
                uri: str | None = None) -> int:
    """Log the finished cells not logged yet, then the grid's artifacts; returns how many
    cells were logged now."""
    from mlflow.entities import Metric, Param
    client = _client(uri, out_dir)
    exp = _experiment(client, f"learner-bench/{grid}", out_dir)
    now = int(time.time() * 1000)
    logged = 0
    for rec in (r for r in records if r.finished):
        query = f"tags.run_id = '{rec.run_id}' and tags.code_version = '{rec.code_version}'"
        if client.search_runs([exp], filter_string=query, max_results=1):
            continue
        run = client.create_run(exp, run_name=rec.run_id, tags={"run_id": rec.run_id, "code_version": rec.code_version,
                                                                 "kind": "cell"})
        metrics = [Metric(k, float(v), now, 0) for k, v in (rec.metrics or {}).items()
                   if k in FINAL_METRICS and _finite(v)]
        for h in (rec.pretrain.history if rec.pretrain else []):
            metrics += [Metric(f"epoch_{k}", float(h[k]), now, int(h["epoch"])) for k in HISTORY_METRICS
                        if _finite(h.get(k))]
        params = [Param(k, v) for k, v in _params(rec).items()]
        for i in range(0, len(params), 100):  # MLflow's limits per batch
            client.log_batch(run.info.run_id, params=params[i:i + 100])
        for i in range(0, len(metrics), 1000):
            client.log_batch(run.info.run_id, metrics=metrics[i:i + 1000])
        client.set_terminated(run.info.run_id)
        logged += 1
    grid_runs = client.search_runs([exp], filter_string="tags.kind = 'grid'", max_results=1)
    grid_run = grid_runs[0] if grid_runs else client.create_run(exp, run_name=f"{grid}: tables and figures",
                                                                tags={"kind": "grid"})
    for path in artifacts:  # a rerun replaces them
        if Path(path).exists():
            client.log_artifact(grid_run.info.run_id, str(path))
    client.set_terminated(grid_run.info.run_id)
    return logged
