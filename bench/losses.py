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

Beyond the paper (extra rows, softmax-based, temperature ``tau``; the similarity's logit is
``cos(u_i, u_j)`` for ``cos`` and ``-||û_i - û_j||`` for ``l2``):

* ``rnc``:    Rank-N-Contrast (Zha et al., NeurIPS 2023): for each anchor i and each j != i,
  ``-log( exp(l_ij/tau) / sum_{k != i, d_ik >= d_ij} exp(l_ik/tau) )``, averaged over j
  (weight 1/(B-1) per anchor) and anchors; tau = 2 on ``-||û_i - û_j||`` in the original,
  here tau = ``TAU`` for both similarities.
* ``yaware``: y-aware InfoNCE (Dufumier et al., MICCAI 2021): RBF kernel
  ``w_ij = exp(-(y_i - y_j)^2 / (2 sigma^2))`` normalised over j != i per anchor, times
  ``-log softmax_{k != i}(l_ik / tau)_j``; sigma = ``SIGMA`` on standardised scores.
* ``supcon``: SupCon (Khosla et al., NeurIPS 2020) with the clinical score bins as classes
  (S/F bins of the paper; MMSE bins 0-17 / 18-23 / 24-26 / 27-30); an anchor with no
  other sample of its bin in the batch has no positive and is left out of the mean.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIM_FLOOR = 1e-4
TAU = 0.1
SIGMA = 1.0
SIMILARITIES = ("cos", "l2")
CONTRASTIVE = ("cl", "wcl", "wcl_out")
SOFTMAX_BASED = ("rnc", "yaware", "supcon")
LOSSES = ("mse",) + CONTRASTIVE + SOFTMAX_BASED
LOSS_LABELS = {"mse": "MSE", "cl": "MSE + CL", "wcl": "MSE + wCL", "wcl_out": "MSE + wCL(out)",
               "rnc": "MSE + RnC", "yaware": "MSE + y-aware InfoNCE", "supcon": "MSE + SupCon(bins)"}
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


def _logits(u: torch.Tensor, sim: str, tau: float) -> torch.Tensor:
    """Softmax logits: cosine, or minus the (safe) l2 distance of unit vectors, over tau."""
    z = F.normalize(u.float(), dim=1)
    if sim == "cos":
        return (z @ z.T) / tau
    if sim == "l2":
        return -(2.0 - 2.0 * (z @ z.T)).clamp_min(1e-12).sqrt() / tau
    raise ValueError(f"unknown similarity {sim!r}; valid: {', '.join(SIMILARITIES)}")


def _log_softmax_others(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise log-softmax over k != i (the diagonal gets -inf and must not be used)."""
    eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    return logits.masked_fill(eye, float("-inf")).log_softmax(dim=1)


def rnc_loss(u: torch.Tensor, y: torch.Tensor, sim: str = "l2", tau: float = TAU) -> torch.Tensor:
    b = u.shape[0]
    if b < 2:
        return u.sum() * 0.0
    logits = _logits(u, sim, tau)
    d = (y[:, None] - y[None, :]).abs().float()
    eye = torch.eye(b, dtype=torch.bool, device=u.device)
    # denominator set of (i, j): k != i with d_ik >= d_ij  ->  mask [i, j, k]
    allowed = (d[:, None, :] >= d[:, :, None]) & ~eye[:, None, :]
    denom = logits[:, None, :].expand(b, b, b).masked_fill(~allowed, float("-inf")).logsumexp(dim=2)
    log_prob = logits - denom
    return -(log_prob.masked_fill(eye, 0.0).sum(1) / (b - 1)).mean()


def yaware_loss(u: torch.Tensor, y: torch.Tensor, sim: str = "cos", tau: float = TAU,
                sigma: float = SIGMA) -> torch.Tensor:
    b = u.shape[0]
    if b < 2:
        return u.sum() * 0.0
    eye = torch.eye(b, dtype=torch.bool, device=u.device)
    w = torch.exp(-((y[:, None] - y[None, :]).float() ** 2) / (2 * sigma ** 2)).masked_fill(eye, 0.0)
    w = w / w.sum(1, keepdim=True)
    log_prob = _log_softmax_others(_logits(u, sim, tau)).masked_fill(eye, 0.0)
    return -(w * log_prob).sum(1).mean()


def supcon_loss(u: torch.Tensor, groups: torch.Tensor, sim: str = "cos", tau: float = TAU) -> torch.Tensor:
    b = u.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=u.device)
    if b < 2:
        return u.sum() * 0.0
    pos = (groups[:, None] == groups[None, :]) & ~eye
    has_pos = pos.any(1)
    log_prob = _log_softmax_others(_logits(u, sim, tau)).masked_fill(eye, 0.0)
    per_anchor = (log_prob * pos).sum(1) / pos.sum(1).clamp_min(1)
    # mean over anchors that have a positive, without a data-dependent branch (no host sync)
    return -(per_anchor * has_pos).sum() / has_pos.sum().clamp_min(1)


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

    def __call__(self, pred: torch.Tensor, u: torch.Tensor, y: torch.Tensor,
                 groups: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Returns ``{"loss", "mse", "contrastive"}``; ``pred [B]`` is the head's output,
        ``groups [B]`` the score bins (used by ``supcon`` only)."""
        mse = F.mse_loss(pred.float(), y.float())
        if self.name == "mse":
            con = mse.new_zeros(())
        elif self.name == "rnc":
            con = rnc_loss(u, y, self.sim)
        elif self.name == "yaware":
            con = yaware_loss(u, y, self.sim)
        elif self.name == "supcon":
            if groups is None:
                raise ValueError("supcon needs the score bins of the batch (groups)")
            con = supcon_loss(u, groups, self.sim)
        else:
            con = contrastive_loss(u, y, self.name, self.sim, self.eps)
        return {"loss": mse + self.lam * con, "mse": mse, "contrastive": con}
