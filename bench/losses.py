"""Pretraining losses: MSE on the score plus a contrastive term on encoder embeddings.

Notation (Algorithm 1, Eq. 1-3 of the paper): ``u`` are encoder embeddings (before the
MLP head), ``y`` standardised scores, ``d_ij = |y_i - y_j|``. For each anchor ``i`` the
other samples are sorted by ``d_ij`` (ties by index); with ``k = B // 2`` the ``k - 1``
nearest form the positives ``P(i)`` and the ``k`` farthest the negatives ``N(i)`` (the
paper's "first B/2 / last B/2" counted with the self-pair, which contributes
``log 1 = 0``). Sums of the paper become means so that the scale does not depend on B.

* ``cl``:      mean_i [ mean_{N(i)} log s_ij - mean_{P(i)} log s_ij ]
* ``wcl``:     mean_i [ mean_{N(i)} log(s_ij (d_ij + eps)) - mean_{P(i)} log(s_ij) / (d_ij + eps) ]
  (Eq. 2-3 as printed; the factor inside the log on negatives adds a constant
  ``log(d_ij + eps)``, so the gradient equals plain CL on negatives)
* ``wcl_out``: the same with the weight outside the log on negatives,
  ``(d_ij + eps) log s_ij``, so farther negatives are pushed harder (our variant)

Similarities map into (0, 1] so the log is defined, and are clamped at ``SIM_FLOOR``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIM_FLOOR = 1e-4
SIMILARITIES = ("cos", "l2")
CONTRASTIVE = ("cl", "wcl", "wcl_out")
LOSSES = ("mse",) + CONTRASTIVE
LOSS_LABELS = {"mse": "MSE", "cl": "MSE + CL", "wcl": "MSE + wCL", "wcl_out": "MSE + wCL(out)"}
SIM_LABELS = {"cos": "cosSim", "l2": "l2Sim"}


def similarity(u: torch.Tensor, kind: str) -> torch.Tensor:
    """``[B, D] -> [B, B]`` similarity in (0, 1].

    ``cos``: ``(1 + cos(u_i, u_j)) / 2``; ``l2``: ``1 - ||û_i - û_j|| / 2`` on unit vectors.
    The l2 distance is a square root clamped away from 0, so identical embeddings give a
    zero (not NaN) gradient.
    """
    z = F.normalize(u.float(), dim=1)
    if kind == "cos":
        s = (1.0 + z @ z.T) / 2.0
    elif kind == "l2":
        sq = (2.0 - 2.0 * (z @ z.T)).clamp_min(1e-12)
        s = 1.0 - sq.sqrt() / 2.0
    else:
        raise ValueError(f"unknown similarity {kind!r}; valid: {', '.join(SIMILARITIES)}")
    return s.clamp(SIM_FLOOR, 1.0)


def positive_negative_masks(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean ``[B, B]`` masks of P(i) (k-1 nearest others) and N(i) (k farthest), k = B // 2."""
    b = y.shape[0]
    k = b // 2
    d = (y[:, None] - y[None, :]).abs()
    d = d.masked_fill(torch.eye(b, dtype=torch.bool, device=y.device), -1.0)  # self sorts first
    order = torch.sort(d, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(b, device=y.device).expand(b, b).contiguous())
    pos = (rank >= 1) & (rank < k)
    neg = rank >= b - k
    return pos, neg


def _masked_row_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each row's masked entries; an empty row contributes 0."""
    total = (values * mask).sum(1)
    return total / mask.sum(1).clamp_min(1)


def contrastive_loss(u: torch.Tensor, y: torch.Tensor, kind: str, sim: str = "cos",
                     eps: float = 0.1) -> torch.Tensor:
    """The contrastive term on embeddings ``u [B, D]`` and standardised scores ``y [B]``."""
    if kind not in CONTRASTIVE:
        raise ValueError(f"unknown contrastive loss {kind!r}; valid: {', '.join(CONTRASTIVE)}")
    if u.shape[0] < 2:
        return u.sum() * 0.0
    y = y.detach().float()
    log_s = similarity(u, sim).log()
    pos, neg = positive_negative_masks(y)
    w = (y[:, None] - y[None, :]).abs() + eps
    if kind == "cl":
        neg_terms, pos_terms = log_s, log_s
    elif kind == "wcl":
        neg_terms, pos_terms = log_s + w.log(), log_s / w
    else:  # wcl_out
        neg_terms, pos_terms = w * log_s, log_s / w
    return (_masked_row_mean(neg_terms, neg) - _masked_row_mean(pos_terms, pos)).mean()


@dataclass(frozen=True)
class LossSpec:
    """``mse`` alone or ``mse + lam * <contrastive>`` with a similarity."""

    name: str = "mse"
    sim: str = "cos"
    lam: float = 1.0
    eps: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r}; valid: {', '.join(LOSSES)}")
        if self.sim not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.sim!r}; valid: {', '.join(SIMILARITIES)}")

    def __call__(self, pred: torch.Tensor, u: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``{"loss", "mse", "contrastive"}``; ``pred [B]`` is the head's output."""
        mse = F.mse_loss(pred.float(), y.float())
        if self.name == "mse":
            con = mse.new_zeros(())
        else:
            con = contrastive_loss(u, y, self.name, self.sim, self.eps)
        return {"loss": mse + self.lam * con, "mse": mse, "contrastive": con}
