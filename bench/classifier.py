"""The downstream task: a 3-way MLP that tells, from the embeddings of two consecutive scans
of one patient, whether the patient improved, stayed the same or deteriorated.

Its input is :func:`pair_features`; it is selected on validation macro-F1 and scored on the
test pairs (:func:`classification_metrics`, as the paper reports them). It knows nothing of
encoders or losses: the oracle ceiling (:mod:`bench.references`) trains it on severities.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn


class Diverged(RuntimeError):
    """Pretraining or this classifier went non-finite (or the classifier collapsed to one
    class): the cell fails and records no metrics."""


def pair_features(u: torch.Tensor, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """``[u_a, u_b, u_b - u_a]`` for each pair (the classifier's input)."""
    ua, ub = u[torch.tensor(a, device=u.device)], u[torch.tensor(b, device=u.device)]
    return torch.cat([ua, ub, ub - ua], dim=1)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy in percent (as the paper prints it), macro- and weighted-F1 in [0, 1]."""
    labels = [0, 1, 2]
    return {
        "accuracy": 100.0 * accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "weighted_f1": f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0),
    }


@dataclass
class DownstreamResult:
    metrics: dict[str, float]
    best_epoch: int
    best_val_macro_f1: float
    test_pred: np.ndarray
    test_true: np.ndarray


def train_classifier(x: dict[str, torch.Tensor], y: dict[str, np.ndarray], preset, seed: int) -> DownstreamResult:
    """3-way MLP on pair features; selected on val macro-F1, reported on test pairs.
    ``preset`` gives ``ds_hidden``, ``ds_lr``, ``ds_epochs`` and ``ds_batch_size`` (a Preset).

    Features are standardised with train-pair statistics (embedding scales differ wildly
    between backbones and losses). Like pretraining, a classifier that diverges (a
    non-finite loss) or collapses (one class for every train pair at every epoch, though
    they hold several) raises :class:`Diverged`: its test scores would be a failure
    recorded as a result.
    """
    torch.manual_seed(seed)
    device = x["train"].device
    mu, sd = x["train"].mean(0), x["train"].std(0, correction=0).clamp_min(1e-6)
    x = {k: (v - mu) / sd for k, v in x.items()}
    clf = nn.Sequential(nn.Linear(x["train"].shape[1], preset.ds_hidden), nn.ReLU(), nn.Dropout(0.2),
                        nn.Linear(preset.ds_hidden, 3)).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=preset.ds_lr)
    y_train = torch.tensor(y["train"], device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    best_f1, best_epoch, best_state = -1.0, -1, None

    def predict(split: str) -> np.ndarray:
        clf.eval()
        with torch.no_grad():
            return clf(x[split]).argmax(1).cpu().numpy()

    collapsed = len(np.unique(y["train"])) > 1  # until an epoch predicts more than one class
    for epoch in range(preset.ds_epochs):
        clf.train()
        perm = torch.randperm(len(y_train), generator=gen, device=device)
        losses = []
        for s in range(0, len(perm), preset.ds_batch_size):
            idx = perm[s:s + preset.ds_batch_size]
            loss = nn.functional.cross_entropy(clf(x["train"][idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        losses = torch.stack(losses)
        if not torch.isfinite(losses).all():  # the epoch's one sync
            raise Diverged(f"downstream classifier diverged at epoch {epoch + 1} of {preset.ds_epochs} "
                           f"(loss = {losses[~torch.isfinite(losses)][0].item():g}, ds_lr = {preset.ds_lr:g})")
        collapsed = collapsed and len(np.unique(predict("train"))) == 1
        if len(y["val"]):
            f1 = f1_score(y["val"], predict("val"), labels=[0, 1, 2], average="macro", zero_division=0)
        else:
            f1 = 0.0  # no validation pairs: the last epoch is kept
        if f1 > best_f1 or not len(y["val"]):
            best_f1, best_epoch, best_state = f1, epoch, copy.deepcopy(clf.state_dict())
    if collapsed:
        raise Diverged(f"downstream classifier collapsed: it predicted one class for every train pair at every "
                       f"one of {preset.ds_epochs} epochs (ds_lr = {preset.ds_lr:g})")
    clf.load_state_dict(best_state)
    pred = predict("test")
    return DownstreamResult(classification_metrics(y["test"], pred), best_epoch, best_f1, pred, y["test"])
