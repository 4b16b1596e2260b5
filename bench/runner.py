"""One grid cell: data -> pretrain -> embeddings -> pairs -> classifier -> record.

A cell is claimed before it runs (:mod:`bench.claims`), checkpoints every epoch
(:mod:`bench.checkpoint`) and ends as one record under ``<out>/runs/<run_id>.json``
(:mod:`bench.records`): ``finished`` with metrics, or ``failed`` with the reason. Every
executor calls :func:`execute_cell`, so every executor runs a cell with the same numerics.
"""
from __future__ import annotations

import inspect
import os
import resource
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import backbones
from bench.data.pairs import label_counts, make_pairs, pairs_by_split, split_problem
from bench.data.store import DataStore
from bench.data.sources import DEFAULT_SOURCES, SOURCES, parse_spec
from bench.data.splits import cohorts, evaluation_scans, split_patients
from bench import claims
from bench.checkpoint import Checkpoint
from bench.code_version import code_version, source_digest
from bench.devices import resolve_device
from bench.grid import Row, RunSpec
from bench.losses import LOSSES, LossSpec
from bench.presets import Preset
from bench.distances import distance_score_spearman
from bench.records import RecordError, RunRecord, git_commit, library_versions, read_record, save_record
from bench.references import ANY, is_reference, majority_prediction, oracle_classifier
from bench.similarity import SIMILARITIES
from bench.train import (ClipBatcher, Diverged, DownstreamResult, PretrainResult, Regressor, classification_metrics,
                         embed, pair_features, pretrain, train_classifier)


@dataclass
class RunContext:
    """Everything a cell needs besides its spec; identical for every cell of a sweep."""

    out_dir: Path
    preset: Preset
    data_specs: dict[str, str] = field(default_factory=dict)
    pretrained: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    amp: bool = True
    cache_dir: Path | None = Path(".cache/clips")
    on_bad_input: str = "fail"
    compile: bool = False
    threads: int = 1  # torch CPU threads of each cell: part of the numerics, whichever executor runs it
    data_keys: dict[str, str] = field(default_factory=dict)  # dataset -> content key (set by the sweep)
    # The commit the sweep's code was loaded from, taken when it starts: a commit made while
    # it runs does not change the code that runs, so it must not change what records say.
    git_commit: str = field(default_factory=git_commit)

    def data_spec(self, dataset: str) -> str:
        return self.data_specs[dataset] if dataset in self.data_specs else DEFAULT_SOURCES[dataset]

    def numerics(self) -> dict:
        """What decides the floating-point results besides code and settings: bf16 autocast
        (CUDA only), torch.compile, and on a CPU the thread count (reductions split by
        thread sum in another order)."""
        device = self.torch_device()
        out = {"device_type": device.type,
               "precision": "bf16-autocast" if self.amp and device.type == "cuda" else "fp32",
               "compile": self.compile}
        if device.type == "cpu":
            out["cpu_threads"] = self.threads
        return out

    def settings_for(self, row: Row) -> dict:
        """What a cell's result depends on besides its row, seed and code (its fingerprint):
        the preset, the data (spec and content key), the weights (path, size, mtime), the
        skip policy and the numerics."""
        weights = self.pretrained.get(row.backbone)
        settings = {"preset": self.preset.to_dict(), "data": self.data_spec(row.dataset),
                    "data_key": self.data_keys.get(row.dataset), "pretrained": weights,
                    "on_bad_input": self.on_bad_input, "numerics": self.numerics()}
        if weights and Path(weights).exists():
            stat = Path(weights).stat()
            settings["pretrained_file"] = [stat.st_size, stat.st_mtime_ns]
        return settings

    def code_version(self, row: Row) -> str:
        return cell_code_version(row, self.data_spec(row.dataset))

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def run_path(self, spec: RunSpec) -> Path:
        return self.out_dir / "runs" / f"{spec.run_id}.json"

    def claim_path(self, spec: RunSpec) -> Path:
        return self.out_dir / "runs" / f"{spec.run_id}.claim"

    def checkpoint_path(self, spec: RunSpec) -> Path:
        return self.out_dir / "runs" / f"{spec.run_id}.ckpt"


# The result-affecting code this process imported (hashed once, at import).
CODE_VERSION = code_version()


def cell_code_version(row: Row, data_spec: str) -> str:
    """The code version of a cell: this package's, plus the module of each plugin the cell
    uses (backbone, loss, similarity, data source), so editing a plugin makes its cells
    stale and nothing else's."""
    digests = []
    if row.backbone != ANY:
        info = backbones.backbone_info(row.backbone)
        if info.source == "plugin":
            digests.append(source_digest(Path(inspect.getsourcefile(info.factory)).read_text())[:8])
    if not is_reference(row.loss):
        digests += [LOSSES.code_digest(row.loss), SIMILARITIES.code_digest(row.sim)]
    digests.append(SOURCES.code_digest(parse_spec(data_spec)[0]))
    return "+".join([CODE_VERSION, *filter(None, digests)])


def uses_channels_last(model: torch.nn.Module) -> bool:
    """2D CNNs gain from channels_last; a model with 5-D conv weights cannot be converted."""
    convs = [type(m) for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    return torch.nn.Conv2d in convs and all(c is torch.nn.Conv2d for c in convs)


def fast_path_model(model: Regressor, device: torch.device, compile: bool) -> Regressor:
    """The model on ``device`` as the fast path trains it: channels_last convolutions on CUDA
    where they can be converted, and the encoder under ``torch.compile`` if asked."""
    model = model.to(device)
    if device.type == "cuda" and uses_channels_last(model):
        model = model.to(memory_format=torch.channels_last)  # faster bf16 convolutions
    if compile:
        model.encoder = torch.compile(model.encoder)
    return model


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, process-wide


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def _record(spec: RunSpec, ctx: RunContext, device: torch.device, status: str, **fields) -> RunRecord:
    r = spec.row
    return RunRecord(run_id=spec.run_id, grid=spec.grid, dataset=r.dataset, backbone=r.backbone, loss=r.loss,
                     sim=r.sim, seed=spec.seed, preset=spec.preset, fingerprint=spec.fingerprint,
                     code_version=ctx.code_version(r), status=status, settings=ctx.settings_for(r),
                     numerics=ctx.numerics(), device=device_name(device), git_commit=ctx.git_commit,
                     finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), versions=library_versions(),
                     pretrained=ctx.pretrained.get(r.backbone) or "none",
                     worker=f"{socket.gethostname()}:{os.getpid()}", **fields)


def _encoder_embeddings(spec: RunSpec, ctx: RunContext, ds, clips: list[torch.Tensor], splits: dict,
                        scores: np.ndarray, on_epoch, checkpoint) -> tuple[torch.Tensor, PretrainResult | None]:
    """Embeddings of every clip (``clips``: the dataset's, then its held-out cohort's) by the row's
    backbone: pretrained with the row's loss on the first, or (the ``untrained`` reference) at its
    random initialisation, the same as the method rows'."""
    p, row, device = ctx.preset, spec.row, clips[0].device
    torch.manual_seed(spec.seed)
    encoder = backbones.create(row.backbone, num_frames=p.frames, img_size=p.img_size,
                               pretrained=ctx.pretrained.get(row.backbone), variant=p.variant)
    model = fast_path_model(Regressor(encoder, p.head_hidden), device, ctx.compile)
    batcher = ClipBatcher(clips[0], p.frames)
    pre = None
    if row.loss != "untrained":
        mu, sd = scores[splits["train"]].mean(), scores[splits["train"]].std() + 1e-8
        y = torch.as_tensor((scores - mu) / sd, dtype=torch.float32, device=device)
        groups = torch.as_tensor(ds.rule.bins(scores), device=device)
        loss = LossSpec(row.loss, row.sim, p.lam, p.eps)
        pre = pretrain(model, batcher, y, groups, splits["train"], splits["val"], p, loss, spec.seed, ctx.amp,
                       on_epoch, checkpoint)
    u = torch.cat([embed(model.encoder, ClipBatcher(c, p.frames), ctx.amp) for c in clips])
    if not torch.isfinite(u).all():
        raise Diverged("the encoder gives non-finite embeddings")
    return u, pre


def run_cell(spec: RunSpec, ctx: RunContext, store: DataStore,
             on_epoch: Callable[[int, dict], None] | None = None,
             checkpoint: Checkpoint | None = None) -> tuple[RunRecord, dict[str, np.ndarray] | None]:
    """Run one cell end to end; returns its record and its test-scan embeddings (None for
    the references without an encoder); not yet written, see :func:`execute_cell`."""
    t_start = time.perf_counter()
    p, row = ctx.preset, spec.row
    device = ctx.torch_device()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ds = store.dataset(ctx.data_spec(row.dataset), ctx.on_bad_input, p.data_defaults, ctx.cache_dir)
    scans = evaluation_scans(ds)  # with a held-out cohort, its rows follow and are the test split
    splits = split_patients(scans, spec.seed)
    scores = scans["score"].to_numpy(float)
    pair_split = pairs_by_split(make_pairs(scans, ds.rule), splits, len(scans))
    problem = split_problem(pair_split)
    if problem:
        raise RuntimeError(f"{row.dataset}, seed {spec.seed}: {problem}; the dataset is too small for this split")
    labels = {k: v["label"].to_numpy() for k, v in pair_split.items()}
    t_data = time.perf_counter() - t_start

    pre, emb, metrics, oracle_trained_on = None, None, {}, None
    if row.loss == "majority":
        pred = majority_prediction(labels["train"], len(labels["test"]))
        down = DownstreamResult(classification_metrics(labels["test"], pred), -1, float("nan"), pred, labels["test"])
    elif row.loss == "oracle":
        down, oracle_trained_on = oracle_classifier(ds, pair_split, ds.rule, p, spec.seed, device)
    else:
        clips = [store.clips(c, p.cache_frames, p.img_size, ctx.cache_dir, device) for c in cohorts(ds)]
        t_data = time.perf_counter() - t_start
        u, pre = _encoder_embeddings(spec, ctx, ds, clips, splits, scores, on_epoch, checkpoint)
        test_idx = splits["test"]
        emb = {"u": u[torch.as_tensor(test_idx, device=device)].half().cpu().numpy(),
               "score": scores[test_idx],
               "patient_id": scans["patient_id"].iloc[test_idx].to_numpy(dtype=str),
               "visit": scans["visit"].iloc[test_idx].to_numpy(dtype=str)}
        metrics["spearman_within"] = distance_score_spearman(emb)
        feats = {k: pair_features(u, v["a"].to_numpy(), v["b"].to_numpy()) for k, v in pair_split.items()}
        down = train_classifier(feats, labels, p, spec.seed)
    timing = {"wall_seconds": time.perf_counter() - t_start, "data_seconds": t_data,
              "peak_memory_mb": peak_memory_mb(device),
              "peak_memory_scope": "this cell" if device.type == "cuda" else "process so far (CPU maxrss)"}
    if pre is not None:
        timing.update(pretrain_seconds=pre.seconds,
                      train_clips_per_second=pre.train_clips / max(pre.train_seconds, 1e-9))
    rec = _record(
        spec, ctx, device, "finished", metrics={**down.metrics, **metrics},
        test_pairs={"true": down.test_true.tolist(), "pred": down.test_pred.tolist(),
                    "patient": pair_split["test"]["patient_id"].astype(str).tolist()},
        downstream={"best_epoch": down.best_epoch, "best_val_macro_f1": down.best_val_macro_f1,
                    **({"oracle_trained_on": oracle_trained_on} if oracle_trained_on else {})},
        pretrain=None if pre is None else {"best_epoch": pre.best_epoch, "best_val_mse": pre.best_val_mse,
                                           "history": pre.history, "resumed_at_epoch": pre.resumed_at_epoch},
        data=_data_record(ctx.data_spec(row.dataset), ds, scans, splits, pair_split), timing=timing)
    return rec, emb


def _data_record(source: str, ds, scans, splits: dict, pair_split: dict) -> dict:
    """The record's ``data`` part: sizes, the held-out cohort, split sizes and pair counts."""
    scores = scans["score"].to_numpy(float)
    return {"source": source, "kind": ds.kind, "score": ds.score_name, "pair_rule": ds.rule.describe(),
            "patients": ds.n_patients, "scans": len(ds), "skipped": [str(x) for x in ds.skipped],
            "heldout_patients": 0 if ds.heldout is None else ds.heldout.n_patients,
            "split_patients": {k: int(scans["patient_id"].iloc[v].nunique()) for k, v in splits.items()},
            "split_scans": {k: len(v) for k, v in splits.items()},
            "pairs": {k: label_counts(v) for k, v in pair_split.items()},
            "score_standardisation": {"mean": scores[splits["train"]].mean(),
                                      "std": scores[splits["train"]].std() + 1e-8}}


def execute_cell(spec: RunSpec, ctx: RunContext, store: DataStore,
                 on_epoch: Callable[[int, dict], None] | None = None) -> RunRecord:
    """Claim a cell, run it with this sweep's numerics, and write its record; what every
    executor calls, in whatever process. A failure (a divergence included) writes a
    ``failed`` record without metrics and is raised again for the sweep to report.
    Raises :class:`~bench.claims.ClaimedElsewhere` if another live process runs the cell."""
    torch.set_num_threads(ctx.threads)
    path, claim = ctx.run_path(spec), ctx.claim_path(spec)
    claims.acquire(claim, spec.run_id)
    try:
        try:
            done = read_record(path)
        except RecordError:
            done = None
        if done is not None and done.finished and done.code_version == ctx.code_version(spec.row):
            raise claims.ClaimedElsewhere(spec.run_id, done.worker, finished=True)  # after this sweep planned it
        checkpoint = Checkpoint(ctx.checkpoint_path(spec), {"run_id": spec.run_id,
                                                             "code": ctx.code_version(spec.row)})

        first_epoch = None  # of this run: > 0 when resumed from the checkpoint

        def epoch_done(epoch: int, row: dict) -> None:
            nonlocal first_epoch
            first_epoch = epoch if first_epoch is None else first_epoch
            claims.refresh(claim, {"epoch": epoch + 1, "epochs": ctx.preset.epochs, "loss": row["loss"],
                                   "val_mse": row["val_mse"], "resumed_from": first_epoch})
            if on_epoch:
                on_epoch(epoch, row)
        try:
            rec, emb = run_cell(spec, ctx, store, epoch_done, checkpoint)
        except Exception as exc:
            save_record(path, _record(spec, ctx, ctx.torch_device(), "failed", error=f"{type(exc).__name__}: {exc}"))
            checkpoint.remove()
            raise
        save_record(path, rec, emb)
        checkpoint.remove()
        return rec
    finally:
        claims.release(claim)
