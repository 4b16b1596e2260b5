"""Pretraining: the encoder with its MLP regression head (the downstream classifier is
:mod:`bench.classifier`).

Clips live in one ``uint8[N, F, H, W]`` tensor on the training device; a batch is an index
tensor, so the step loop does no host-side decoding and, on CUDA, no host syncs (losses
are accumulated on the device and read once per epoch).
"""
from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from bench.checkpoint import Checkpoint
from bench.classifier import Diverged
from bench.presets import Preset

# A bench.losses.LossSpec: (pred, u, y, groups) -> {"loss", "mse", "contrastive"}
LossFn = Callable[..., dict[str, torch.Tensor]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ClipBatcher:
    """Index batch -> normalised ``float[B, T, 3, H, W]`` with equi-temporal sampling.

    The cached clip has ``F = stride * T`` frames; training takes one frame at a random
    offset inside each stride, evaluation the centre of each stride. The gray channel is
    replicated to three and ImageNet-normalised so that ImageNet/Kinetics weights load
    unchanged.
    """

    def __init__(self, clips: torch.Tensor, frames: int):
        if clips.shape[1] % frames:
            raise ValueError(f"cached frames ({clips.shape[1]}) must be a multiple of model frames ({frames})")
        self.clips, self.frames = clips, frames
        self.stride = clips.shape[1] // frames
        dev = clips.device
        self.base = torch.arange(frames, device=dev) * self.stride
        self.mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=dev).view(1, 1, 3, 1, 1)

    def __call__(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            offsets = torch.full((1, self.frames), self.stride // 2, device=self.clips.device)
        else:
            offsets = torch.randint(0, self.stride, (len(idx), self.frames), generator=generator,
                                    device=self.clips.device)
        x = self.clips[idx[:, None], self.base + offsets]  # [B, T, H, W] uint8
        x = x.unsqueeze(2).float().div_(255.0)
        return (x - self.mean) / self.std


class Regressor(nn.Module):
    """Encoder + MLP head predicting the standardised score; returns (prediction, embedding)."""

    def __init__(self, encoder: nn.Module, hidden: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(encoder.embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.encoder(x)
        return self.head(u).squeeze(-1), u


def autocast(device: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else nullcontext()


@dataclass
class PretrainResult:
    best_epoch: int
    best_val_mse: float
    history: list[dict] = field(default_factory=list)
    train_clips: int = 0
    train_seconds: float = 0.0  # training steps only (clips/s); ``seconds`` adds validation
    seconds: float = 0.0
    resumed_at_epoch: int | None = None  # the first epoch run after resuming from a checkpoint


def train_step(model: Regressor, opt: torch.optim.Optimizer, loss: LossFn, batcher: ClipBatcher,
               idx: torch.Tensor, y: torch.Tensor, groups: torch.Tensor, gen: torch.Generator | None,
               amp: bool) -> torch.Tensor:
    """One optimisation step on the clips ``idx``; returns ``[loss, mse, contrastive]`` on the
    device (detached, no host sync). The runner and the benchmark both train with it."""
    with autocast(y.device, amp):
        pred, u = model(batcher(idx, gen))
    parts = loss(pred, u, y[idx], groups[idx])
    opt.zero_grad(set_to_none=True)
    parts["loss"].backward()
    opt.step()
    return torch.stack([parts["loss"], parts["mse"], parts["contrastive"]]).detach()


def _rng_states(gen: torch.Generator) -> dict:
    out = {"batches": gen.get_state(), "torch": torch.get_rng_state()}
    if gen.device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(gen.device)
    return out


def _set_rng_states(gen: torch.Generator, states: dict) -> None:
    gen.set_state(states["batches"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], gen.device)


def pretrain(model: Regressor, batcher: ClipBatcher, y: torch.Tensor, groups: torch.Tensor,
             train_idx: np.ndarray, val_idx: np.ndarray, preset: Preset, loss: LossFn, seed: int,
             amp: bool = True, on_epoch: Callable[[int, dict], None] | None = None,
             checkpoint: Checkpoint | None = None) -> PretrainResult:
    """Table 2 protocol; keeps (in ``model``) the weights of the epoch with the lowest val MSE.

    ``y`` are standardised scores, ``groups`` their coarse bins (for SupCon), both per clip.
    With ``checkpoint``, the state is saved after every epoch and a saved state of this cell
    is resumed from. A non-finite loss or validation MSE raises :class:`Diverged`.
    """
    device = y.device
    gen = torch.Generator(device=device).manual_seed(seed)
    train_t = torch.as_tensor(train_idx, device=device)
    val_t = torch.as_tensor(val_idx, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=preset.lr, fused=device.type == "cuda")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=preset.epochs)
    bs = preset.batch_size
    n_batches = max(1, len(train_t) // bs)  # drop the ragged last batch: the loss needs B/2 pairs
    best, best_state, first_epoch = float("inf"), None, 0
    result = PretrainResult(best_epoch=-1, best_val_mse=float("inf"))
    saved = checkpoint.load() if checkpoint else None
    if saved is not None:
        best, best_state, first_epoch, result = _resume(saved, model, opt, sched, gen)
    start = time.perf_counter() - result.seconds
    for epoch in range(first_epoch, preset.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = train_t[torch.randperm(len(train_t), generator=gen, device=device)]
        steps = torch.stack([train_step(model, opt, loss, batcher, perm[b * bs:(b + 1) * bs], y, groups, gen, amp)
                             for b in range(n_batches)])
        row = _epoch_losses(steps, epoch, preset.epochs)
        row.update(epoch=epoch, lr=opt.param_groups[0]["lr"], train_seconds=time.perf_counter() - t0)
        result.train_seconds += row["train_seconds"]
        result.train_clips += n_batches * min(bs, len(train_t))
        sched.step()
        row["val_mse"] = val_mse = evaluate_mse(model, batcher, y, val_t, amp)
        if len(val_t) and not math.isfinite(val_mse):
            raise Diverged(f"diverged at epoch {epoch + 1} of {preset.epochs} (validation MSE = {val_mse:g})")
        row["seconds"] = time.perf_counter() - t0
        result.history.append(row)
        if val_mse < best:
            best, result.best_epoch = val_mse, epoch
            best_state = copy.deepcopy(model.state_dict())
        result.best_val_mse = best
        result.seconds = time.perf_counter() - start
        if checkpoint:
            checkpoint.save({"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "rng": _rng_states(gen), "best": best,
                             "best_state": best_state, "result": asdict(result)})
        if on_epoch:
            on_epoch(epoch, row)
    result.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return result


def _resume(saved: dict, model: Regressor, opt, sched, gen: torch.Generator) -> tuple:
    """Restore the model, optimizer, schedule and RNGs a checkpoint saved; return its best val
    MSE and weights so far, the epoch to go on from and the result so far."""
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    _set_rng_states(gen, saved["rng"])
    result = PretrainResult(**saved["result"])
    result.resumed_at_epoch = saved["epoch"] + 1
    return saved["best"], saved["best_state"], saved["epoch"] + 1, result


def _epoch_losses(steps: torch.Tensor, epoch: int, epochs: int) -> dict:
    """Mean loss, MSE and contrastive term of an epoch's steps (the epoch's one host sync); a
    non-finite one raises :class:`Diverged` naming the first bad step."""
    row = dict(zip(("loss", "mse", "contrastive"), steps.mean(0).tolist()))
    if not all(map(math.isfinite, row.values())):
        step = int(torch.nonzero(~torch.isfinite(steps).all(1))[0])
        raise Diverged(f"diverged at epoch {epoch + 1} of {epochs}, step {step + 1} of {len(steps)} "
                       f"(loss = {steps[step, 0].item():g})")
    return row


@torch.no_grad()
def evaluate_mse(model: Regressor, batcher: ClipBatcher, y: torch.Tensor, idx: torch.Tensor,
                 amp: bool, batch: int = 32) -> float:
    if len(idx) == 0:
        return float("nan")
    model.eval()
    total = torch.zeros((), device=y.device)
    for s in range(0, len(idx), batch):
        part = idx[s:s + batch]
        with autocast(y.device, amp):
            pred, _ = model(batcher(part))
        total += ((pred.float() - y[part]) ** 2).sum()
    return (total / len(idx)).item()


@torch.no_grad()
def embed(encoder: nn.Module, batcher: ClipBatcher, amp: bool, batch: int = 32) -> torch.Tensor:
    """Embeddings ``float32[N, D]`` of every cached clip (centred frames, eval mode)."""
    encoder.eval()
    n = batcher.clips.shape[0]
    out = []
    for s in range(0, n, batch):
        idx = torch.arange(s, min(n, s + batch), device=batcher.clips.device)
        with autocast(idx.device, amp):
            out.append(encoder(batcher(idx)).float())
    return torch.cat(out)
