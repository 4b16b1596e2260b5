"""One grid cell: data -> pretrain -> embeddings -> pairs -> classifier -> record.

A cell is claimed before it runs (:mod:`bench.claims`), checkpoints every epoch
(:mod:`bench.checkpoint`) and ends as one record under ``<out>/runs/<run_id>.json``
(:mod:`bench.records`): ``finished`` with metrics, or ``failed`` with the reason. Every
executor calls :func:`execute_cell`, so every executor runs a cell with the same numerics.
"""
from __future__ import annotations

import os
import resource
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import backbones
from bench.data.pairs import label_counts, make_pairs, pairs_by_split, split_problem
from bench.files import DEFAULT_CACHE_DIR
from bench.data.store import DataStore
from bench.data.sources import DEFAULT_SOURCES
from bench.data.splits import cell_splits, cohorts, evaluation_scans
from bench import claims
from bench.checkpoint import Checkpoint
from bench.cell import Cell, Numerics
from bench.devices import resolve_device
from bench.grid import Row
from bench.losses import LossSpec
from bench.presets import Preset
from bench.distances import distance_score_spearman
from bench.records import (DataPart, Downstream, Pretraining, RecordError, RunRecord, ScoredPairs, Timing, git_commit,
                           library_versions, read_record, save_record)
from bench.references import majority_prediction, oracle_classifier
from bench.classifier import Diverged, DownstreamResult, classification_metrics, pair_features, train_classifier
from bench.train import ClipBatcher, PretrainResult, Regressor, embed, pretrain


@dataclass
class RunContext:
    """The sweep-wide settings every cell shares (it builds the :class:`~bench.cell.Cell` values)
    and where cells write; identical for every cell of a sweep."""

    out_dir: Path
    preset: Preset
    data_specs: dict[str, str] = field(default_factory=dict)
    pretrained: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    amp: bool = True
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    on_bad_input: str = "fail"
    compile: bool = False
    threads: int = 1  # torch CPU threads of each cell: part of the numerics, whichever executor runs it
    data_keys: dict[str, str] = field(default_factory=dict)  # dataset -> content key (set by the sweep)
    folds: int | None = None  # cross-validation: K folds per repeat (the seed); None: one split per seed
    # The commit the sweep's code was loaded from, taken when it starts: a commit made while
    # it runs does not change the code that runs, so it must not change what records say.
    git_commit: str = field(default_factory=git_commit)

    def data_spec(self, dataset: str) -> str:
        return self.data_specs[dataset] if dataset in self.data_specs else DEFAULT_SOURCES[dataset]

    def numerics(self) -> Numerics:
        device = self.torch_device()
        return Numerics(device.type, "bf16-autocast" if self.amp and device.type == "cuda" else "fp32",
                        self.compile, self.threads if device.type == "cpu" else None)

    def cell(self, grid: str, row: Row, seed: int, fold: int | None = None) -> Cell:
        """The cell of ``row`` and ``seed`` (and cross-validation ``fold`` of :attr:`folds`) under
        this sweep's settings (weights are named by path, size and modification time)."""
        weights = self.pretrained.get(row.backbone)
        stat = Path(weights).stat() if weights and Path(weights).exists() else None
        return Cell(grid, row, seed, self.preset, self.data_spec(row.dataset), self.data_keys.get(row.dataset),
                    self.numerics(), weights, (stat.st_size, stat.st_mtime_ns) if stat else None, self.on_bad_input,
                    fold, None if fold is None else self.folds)

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def run_path(self, cell: Cell) -> Path:
        return self.out_dir / "runs" / f"{cell.run_id}.json"

    def claim_path(self, cell: Cell) -> Path:
        return self.out_dir / "runs" / f"{cell.run_id}.claim"

    def checkpoint_path(self, cell: Cell) -> Path:
        return self.out_dir / "runs" / f"{cell.run_id}.ckpt"


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


def _record(cell: Cell, ctx: RunContext, device: torch.device, status: str, **fields) -> RunRecord:
    r = cell.row
    return RunRecord(run_id=cell.run_id, grid=cell.grid, dataset=r.dataset, backbone=r.backbone, loss=r.loss,
                     sim=r.sim, seed=cell.seed, preset=cell.preset.name, fingerprint=cell.fingerprint(),
                     code_version=cell.code_version(), status=status, settings=cell.settings(),
                     numerics=cell.numerics.to_dict(), device=device_name(device), git_commit=ctx.git_commit,
                     finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), versions=library_versions(),
                     pretrained=cell.weights or "none",
                     worker=f"{socket.gethostname()}:{os.getpid()}", fold=cell.fold, folds=cell.folds, **fields)


def _encoder_embeddings(cell: Cell, ctx: RunContext, ds, clips: list[torch.Tensor], splits: dict,
                        scores: np.ndarray, on_epoch, checkpoint) -> tuple[torch.Tensor, PretrainResult | None]:
    """Embeddings of every clip (``clips``: the dataset's, then its held-out cohort's) by the row's
    backbone: pretrained with the row's loss on the first, or (the ``untrained`` reference) at its
    random initialisation, the same as the method rows'."""
    p, row, device = cell.preset, cell.row, clips[0].device
    torch.manual_seed(cell.seed)
    encoder = backbones.create(row.backbone, num_frames=p.frames, img_size=p.img_size,
                               pretrained=cell.weights, variant=p.variant)
    model = fast_path_model(Regressor(encoder, p.head_hidden), device, ctx.compile)
    batcher = ClipBatcher(clips[0], p.frames)
    pre = None
    if row.loss != "untrained":
        mu, sd = scores[splits["train"]].mean(), scores[splits["train"]].std() + 1e-8
        y = torch.as_tensor((scores - mu) / sd, dtype=torch.float32, device=device)
        groups = torch.as_tensor(ds.rule.bins(scores), device=device)
        loss = LossSpec(row.loss, row.sim, p.lam, p.eps)
        pre = pretrain(model, batcher, y, groups, splits["train"], splits["val"], p, loss, cell.seed, ctx.amp,
                       on_epoch, checkpoint)
    u = torch.cat([embed(model.encoder, ClipBatcher(c, p.frames), ctx.amp) for c in clips])
    if not torch.isfinite(u).all():
        raise Diverged("the encoder gives non-finite embeddings")
    return u, pre


def run_cell(cell: Cell, ctx: RunContext, store: DataStore,
             on_epoch: Callable[[int, dict], None] | None = None,
             checkpoint: Checkpoint | None = None) -> tuple[RunRecord, dict[str, np.ndarray] | None]:
    """Run one cell end to end; returns its record and its test-scan embeddings (None for
    the references without an encoder); not yet written, see :func:`execute_cell`."""
    t_start = time.perf_counter()
    p, row = cell.preset, cell.row
    device = ctx.torch_device()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ds = store.dataset(cell.data_spec, cell.on_bad_input, p.data_defaults, ctx.cache_dir)
    scans = evaluation_scans(ds)  # with a held-out cohort, its rows follow and are the test split
    pairs = make_pairs(scans, ds.rule)
    splits = cell_splits(scans, pairs, cell.seed, cell.fold, cell.folds)
    scores = scans["score"].to_numpy(float)
    pair_split = pairs_by_split(pairs, splits, len(scans))
    if problem := split_problem(pair_split):
        raise RuntimeError(f"{row.dataset}, {cell.run_id}: {problem}; the dataset is too small for this split")
    labels = {k: v["label"].to_numpy() for k, v in pair_split.items()}
    t_data = time.perf_counter() - t_start

    pre, emb, metrics, oracle_trained_on = None, None, {}, None
    if row.loss == "majority":
        pred = majority_prediction(labels["train"], len(labels["test"]))
        down = DownstreamResult(classification_metrics(labels["test"], pred), -1, float("nan"), pred, labels["test"])
    elif row.loss == "oracle":
        down, oracle_trained_on = oracle_classifier(ds, pair_split, ds.rule, p, cell.seed, device)
    else:
        clips = [store.clips(c, p.cache_frames, p.img_size, ctx.cache_dir, device) for c in cohorts(ds)]
        t_data = time.perf_counter() - t_start
        u, pre = _encoder_embeddings(cell, ctx, ds, clips, splits, scores, on_epoch, checkpoint)
        test_idx = splits["test"]
        emb = {"u": u[torch.as_tensor(test_idx, device=device)].half().cpu().numpy(),
               "score": scores[test_idx],
               "patient_id": scans["patient_id"].iloc[test_idx].to_numpy(dtype=str),
               "visit": scans["visit"].iloc[test_idx].to_numpy(dtype=str)}
        metrics["spearman_within"] = distance_score_spearman(emb)
        feats = {k: pair_features(u, v["a"].to_numpy(), v["b"].to_numpy()) for k, v in pair_split.items()}
        down = train_classifier(feats, labels, p, cell.seed)
    timing = Timing(time.perf_counter() - t_start, t_data, peak_memory_mb(device),
                    "this cell" if device.type == "cuda" else "process so far (CPU maxrss)")
    if pre is not None:
        timing = replace(timing, pretrain_seconds=pre.seconds,
                         train_clips_per_second=pre.train_clips / max(pre.train_seconds, 1e-9))
    rec = _record(
        cell, ctx, device, "finished", metrics={**down.metrics, **metrics},
        test_pairs=ScoredPairs(down.test_true.tolist(), down.test_pred.tolist(),
                             pair_split["test"]["patient_id"].astype(str).tolist()),
        downstream=Downstream(down.best_epoch, down.best_val_macro_f1, oracle_trained_on or None),
        pretrain=None if pre is None else Pretraining(pre.best_epoch, pre.best_val_mse, pre.history,
                                                      pre.resumed_at_epoch),
        data=_data_part(cell.data_spec, ds, scans, splits, pair_split), timing=timing)
    return rec, emb


def _data_part(source: str, ds, scans, splits: dict, pair_split: dict) -> DataPart:
    """The record's ``data`` part: sizes, the held-out cohort, split sizes and pair counts."""
    scores = scans["score"].to_numpy(float)
    return DataPart(source=source, kind=ds.kind, score=ds.score_name, pair_rule=ds.rule.describe(),
                    patients=ds.n_patients, scans=len(ds), skipped=[str(x) for x in ds.skipped],
                    heldout_patients=0 if ds.heldout is None else ds.heldout.n_patients,
                    split_patients={k: int(scans["patient_id"].iloc[v].nunique()) for k, v in splits.items()},
                    split_scans={k: len(v) for k, v in splits.items()},
                    pairs={k: label_counts(v) for k, v in pair_split.items()},
                    score_standardisation={"mean": scores[splits["train"]].mean(),
                                           "std": scores[splits["train"]].std() + 1e-8})


def execute_cell(cell: Cell, ctx: RunContext, store: DataStore,
                 on_epoch: Callable[[int, dict], None] | None = None) -> RunRecord:
    """Claim a cell, run it with this sweep's numerics, and write its record; what every
    executor calls, in whatever process. A failure (a divergence included) writes a
    ``failed`` record without metrics and is raised again for the sweep to report.
    Raises :class:`~bench.claims.ClaimedElsewhere` if another live process runs the cell."""
    torch.set_num_threads(ctx.threads)
    path, claim = ctx.run_path(cell), ctx.claim_path(cell)
    claims.acquire(claim, cell.run_id)
    try:
        try:
            done = read_record(path)
        except RecordError:
            done = None
        if done is not None and done.finished and not cell.is_stale(done):
            raise claims.ClaimedElsewhere(cell.run_id, done.worker, finished=True)  # after this sweep planned it
        checkpoint = Checkpoint(ctx.checkpoint_path(cell), {"run_id": cell.run_id,
                                                             "code": cell.code_version()})

        first_epoch = None  # of this run: > 0 when resumed from the checkpoint

        def epoch_done(epoch: int, row: dict) -> None:
            nonlocal first_epoch
            first_epoch = epoch if first_epoch is None else first_epoch
            claims.refresh(claim, {"epoch": epoch + 1, "epochs": cell.preset.epochs, "loss": row["loss"],
                                   "val_mse": row["val_mse"], "resumed_from": first_epoch})
            if on_epoch:
                on_epoch(epoch, row)
        try:
            rec, emb = run_cell(cell, ctx, store, epoch_done, checkpoint)
        except Exception as exc:
            save_record(path, _record(cell, ctx, ctx.torch_device(), "failed", error=f"{type(exc).__name__}: {exc}"))
            checkpoint.remove()
            raise
        save_record(path, rec, emb)
        checkpoint.remove()
        return rec
    finally:
        claims.release(claim)
