"""Executing grid cells: data -> pretrain -> embeddings -> pairs -> classifier -> record.

Each finished cell is one JSON under ``<out>/runs/<run_id>.json`` (written atomically,
after the cell's embedding sidecar), so a rerun skips finished cells and a killed sweep
resumes where it stopped. A failed cell is reported and the sweep goes on.
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import backbones
from bench.data.pairs import label_counts, label_rule, make_pairs, score_bins
from bench.data.store import DataStore
from bench.data.sources import DEFAULT_SOURCES
from bench.data.splits import SPLITS, split_patients
from bench.grid import Row, RunSpec, spec_dict
from bench.losses import LossSpec
from bench.presets import Preset
from bench.stats import bootstrap_ci, distance_score_spearman
from bench.records import git_commit, library_versions, read_record, save_run
from bench.train import ClipBatcher, Regressor, embed, pair_features, pretrain, train_classifier


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
    data_keys: dict[str, str] = field(default_factory=dict)  # dataset -> content key (set by the CLI)
    # The commit the sweep's code was loaded from, taken when it starts: a commit made while
    # it runs does not change the code that runs, so it must not change what records say.
    code_version: str = field(default_factory=git_commit)

    def data_spec(self, dataset: str) -> str:
        return self.data_specs.get(dataset, DEFAULT_SOURCES[dataset])

    def settings_for(self, row: Row) -> dict:
        """What a cell's result depends on besides its row and seed (its fingerprint): the
        preset, the data (spec and content key), the weights (path, size, mtime), the skip
        policy and the numerics (bf16 autocast only acts on CUDA; torch.compile)."""
        weights = self.pretrained.get(row.backbone)
        signature = None
        if weights and Path(weights).exists():
            stat = Path(weights).stat()
            signature = [stat.st_size, stat.st_mtime_ns]
        settings = {"preset": self.preset.to_dict(), "data": self.data_spec(row.dataset),
                    "data_key": self.data_keys.get(row.dataset), "pretrained": weights,
                    "on_bad_input": self.on_bad_input,
                    "precision": "bf16-autocast" if self.amp and self.torch_device().type == "cuda" else "fp32"}
        if signature:
            settings["pretrained_file"] = signature
        if self.compile:
            settings["compile"] = True
        return settings

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def run_path(self, spec: RunSpec) -> Path:
        return self.out_dir / "runs" / f"{spec.run_id}.json"


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


def run_cell(spec: RunSpec, ctx: RunContext, store: DataStore,
             on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Run one cell end to end and return its record (not yet written; see ``save_run``)."""
    t_start = time.perf_counter()
    p, row = ctx.preset, spec.row
    device = ctx.torch_device()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ds = store.dataset(ctx.data_spec(row.dataset), ctx.on_bad_input, p.data_defaults)
    clips = store.clips(ds, p.cache_frames, p.img_size, ctx.cache_dir, device)
    t_data = time.perf_counter() - t_start

    splits = split_patients(ds.scans, spec.seed)
    scores = ds.scans["score"].to_numpy(float)
    mu, sd = scores[splits["train"]].mean(), scores[splits["train"]].std() + 1e-8
    y = torch.as_tensor((scores - mu) / sd, dtype=torch.float32, device=device)
    groups = torch.as_tensor(score_bins(ds.kind, scores), device=device)

    torch.manual_seed(spec.seed)
    weights = ctx.pretrained.get(row.backbone)
    encoder = backbones.create(row.backbone, num_frames=p.frames, img_size=p.img_size,
                               pretrained=weights, variant=p.variant)
    model = fast_path_model(Regressor(encoder, p.head_hidden), device, ctx.compile)
    batcher = ClipBatcher(clips, p.frames)
    loss = LossSpec(row.loss, row.sim, p.lam, p.eps)
    pre = pretrain(model, batcher, y, groups, splits["train"], splits["val"], p, loss, spec.seed, ctx.amp, on_epoch)

    u = embed(model.encoder, batcher, ctx.amp)
    pairs = make_pairs(ds.scans, label_rule(ds.kind, p.mmse_threshold))
    split_of = np.empty(len(ds.scans), dtype=object)
    for name in SPLITS:
        split_of[splits[name]] = name
    pair_split = {name: pairs[split_of[pairs["a"].to_numpy()] == name] for name in SPLITS}
    feats = {k: pair_features(u, v["a"].to_numpy(), v["b"].to_numpy()) for k, v in pair_split.items()}
    labels = {k: v["label"].to_numpy() for k, v in pair_split.items()}
    if not len(labels["train"]) or not len(labels["test"]):
        raise RuntimeError(f"{row.dataset}: no {'train' if not len(labels['train']) else 'test'} pairs "
                           f"with seed {spec.seed}; the dataset is too small for a 3-way split")
    down = train_classifier(feats, labels, p, spec.seed)

    test_idx = splits["test"]
    emb = {"u": u[torch.as_tensor(test_idx, device=device)].half().cpu().numpy(),
           "score": scores[test_idx],
           "patient_id": ds.scans["patient_id"].iloc[test_idx].to_numpy(dtype=str),
           "visit": ds.scans["visit"].iloc[test_idx].to_numpy(dtype=str)}
    metrics = dict(down.metrics)
    for m in ("accuracy", "macro_f1"):
        metrics[f"{m}_ci95"] = bootstrap_ci(down.test_true, down.test_pred, m, seed=spec.seed)
    metrics["spearman_within"] = distance_score_spearman(emb)
    return {
        **spec_dict(spec),
        "fingerprint": spec.fingerprint,
        "settings": ctx.settings_for(row),
        "metrics": metrics,
        "test_pairs": {"true": down.test_true.tolist(), "pred": down.test_pred.tolist()},
        "downstream": {"best_epoch": down.best_epoch, "best_val_macro_f1": down.best_val_macro_f1},
        "pretrain": {"best_epoch": pre.best_epoch, "best_val_mse": pre.best_val_mse, "history": pre.history},
        "data": {
            "source": ctx.data_spec(row.dataset), "kind": ds.kind, "score": ds.score_name,
            "patients": ds.n_patients, "scans": len(ds),
            "skipped": [str(x) for x in ds.skipped],
            "split_patients": {k: int(ds.scans["patient_id"].iloc[v].nunique()) for k, v in splits.items()},
            "split_scans": {k: len(v) for k, v in splits.items()},
            "pairs": {k: label_counts(v) for k, v in pair_split.items()},
            "score_standardisation": {"mean": mu, "std": sd},
        },
        "embeddings": emb,  # test-scan embeddings for Figure 1, saved beside the JSON as .npz
        "pretrained": weights or "none",
        "timing": {
            "wall_seconds": time.perf_counter() - t_start, "data_seconds": t_data,
            "pretrain_seconds": pre.seconds,
            "train_clips_per_second": pre.train_clips / max(pre.train_seconds, 1e-9),
            "peak_memory_mb": peak_memory_mb(device),
            "peak_memory_scope": "this cell" if device.type == "cuda" else "process so far (CPU maxrss)",
        },
        "device": device_name(device),
        "versions": library_versions(),
        "git_commit": ctx.code_version,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def execute_cell(spec: RunSpec, ctx: RunContext, store: DataStore,
                 on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Run a cell and write its record; what every executor calls (in whatever process)."""
    rec = run_cell(spec, ctx, store, on_epoch)
    save_run(ctx.run_path(spec), rec)
    return rec


def local_cells(todo: list[RunSpec], ctx: RunContext, reporter=None, store: DataStore | None = None):
    """Sequential executor: yields ``(spec, record | exception)`` as cells finish."""
    store = store or DataStore()
    for spec in todo:
        if reporter:
            reporter.cell_started(spec)
        try:
            yield spec, execute_cell(spec, ctx, store, reporter.epoch_done if reporter else None)
        except Exception as exc:  # one broken cell must not stop the sweep
            yield spec, exc


@dataclass
class SweepResult:
    records: list[dict]
    skipped: int      # already finished before this call
    ran: int
    failed: list[tuple[str, str]]  # (run_id, error)


def run_sweep(specs: list[RunSpec], ctx: RunContext, cells=local_cells, reporter=None) -> SweepResult:
    """Skip finished cells, run the rest with the executor ``cells``, collect the records.

    ``cells(todo, ctx, reporter)`` yields ``(spec, record | exception)``; the executors are
    :func:`local_cells` here and those of :mod:`bench.executors`.
    """
    finished = {s.run_id: read_record(ctx.run_path(s)) for s in specs}
    todo = [s for s in specs if finished[s.run_id] is None]
    skipped = len(specs) - len(todo)
    failed, ran = [], 0
    if reporter:
        reporter.start(len(specs), skipped, ctx.preset.epochs)
    for spec, outcome in cells(todo, ctx, reporter):
        if isinstance(outcome, BaseException):
            failed.append((spec.run_id, f"{type(outcome).__name__}: {outcome}"))
            if reporter:
                reporter.cell_failed(spec, outcome)
            continue
        finished[spec.run_id] = outcome
        ran += 1
        if reporter:
            reporter.cell_done(spec, outcome)
    if reporter:
        reporter.stop()
    records = [finished[s.run_id] for s in specs if finished[s.run_id] is not None]
    return SweepResult(records, skipped, ran, failed)
