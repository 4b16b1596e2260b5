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

Similarities (:mod:`bench.similarity`) map into (0, 1] so the log is defined.

Beyond the paper (extra rows, softmax-based, temperature ``tau``, on the similarity's logit:
``cos(u_i, u_j)`` for ``cos``, ``-||û_i - û_j||`` for ``l2``):

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

Every loss is a name in :data:`LOSSES`, the built-ins and the plugins of the entry-point
group ``learner_bench.losses`` alike (see the contract above :func:`mse_only`).
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.plugins import LOSSES, SIMILARITIES, PluginError
from bench.similarity import logits, similarity

TAU = 0.1
SIGMA = 1.0


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


CONTRASTIVE = ("cl", "wcl", "wcl_out")


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


def _log_softmax_others(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise log-softmax over k != i (the diagonal gets -inf and must not be used)."""
    eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    return logits.masked_fill(eye, float("-inf")).log_softmax(dim=1)


def rnc_loss(u: torch.Tensor, y: torch.Tensor, sim: str = "l2", tau: float = TAU) -> torch.Tensor:
    b = u.shape[0]
    if b < 2:
        return u.sum() * 0.0
    lg = logits(u, sim) / tau
    d = (y[:, None] - y[None, :]).abs().float()
    eye = torch.eye(b, dtype=torch.bool, device=u.device)
    # denominator set of (i, j): k != i with d_ik >= d_ij  ->  mask [i, j, k]
    allowed = (d[:, None, :] >= d[:, :, None]) & ~eye[:, None, :]
    denom = lg[:, None, :].expand(b, b, b).masked_fill(~allowed, float("-inf")).logsumexp(dim=2)
    log_prob = lg - denom
    return -(log_prob.masked_fill(eye, 0.0).sum(1) / (b - 1)).mean()


def yaware_loss(u: torch.Tensor, y: torch.Tensor, sim: str = "cos", tau: float = TAU,
                sigma: float = SIGMA) -> torch.Tensor:
    b = u.shape[0]
    if b < 2:
        return u.sum() * 0.0
    eye = torch.eye(b, dtype=torch.bool, device=u.device)
    w = torch.exp(-((y[:, None] - y[None, :]).float() ** 2) / (2 * sigma ** 2)).masked_fill(eye, 0.0)
    w = w / w.sum(1, keepdim=True)
    log_prob = _log_softmax_others(logits(u, sim) / tau).masked_fill(eye, 0.0)
    return -(w * log_prob).sum(1).mean()


def supcon_loss(u: torch.Tensor, groups: torch.Tensor, sim: str = "cos", tau: float = TAU) -> torch.Tensor:
    b = u.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=u.device)
    if b < 2:
        return u.sum() * 0.0
    pos = (groups[:, None] == groups[None, :]) & ~eye
    has_pos = pos.any(1)
    log_prob = _log_softmax_others(logits(u, sim) / tau).masked_fill(eye, 0.0)
    per_anchor = (log_prob * pos).sum(1) / pos.sum(1).clamp_min(1)
    # mean over anchors that have a positive, without a data-dependent branch (no host sync)
    return -(per_anchor * has_pos).sum() / has_pos.sum().clamp_min(1)


# The registered terms. The contract (plugins too): ``term(u [B, D], y [B], sim: str) -> scalar``,
# added to MSE as ``MSE + lam * term``; a term may also declare keyword arguments ``eps`` (the
# preset's epsilon) and ``groups`` (the batch's coarse score bins), which the suite then passes.
# ``term.label`` names its table row.
def _labelled(label: str):
    def wrap(term):
        term.label = label
        return term
    return wrap


@LOSSES.register("mse")
@_labelled("MSE")
def mse_only(u: torch.Tensor, y: torch.Tensor, sim: str) -> None:
    """No term: the paper's baseline (Eq. 1)."""


def _weighted(kind: str, label: str):
    """Register the CL family member ``kind`` (they differ only in the weights, see above)."""
    def term(u, y, sim, *, eps):
        return contrastive_loss(u, y, kind, sim, eps)
    term.label = label
    return LOSSES.register(kind, term)


cl, wcl, wcl_out = (_weighted(k, label) for k, label in (("cl", "MSE + CL"), ("wcl", "MSE + wCL"),
                                                         ("wcl_out", "MSE + wCL(out)")))


@LOSSES.register("rnc")
@_labelled("MSE + RnC")
def rnc(u, y, sim):
    return rnc_loss(u, y, sim)


@LOSSES.register("yaware")
@_labelled("MSE + y-aware InfoNCE")
def yaware(u, y, sim):
    return yaware_loss(u, y, sim)


@LOSSES.register("supcon")
@_labelled("MSE + SupCon(bins)")
def supcon(u, y, sim, *, groups):
    return supcon_loss(u, groups, sim)


def label(name: str) -> str:
    """The table label of a loss: its ``term.label``, or ``MSE + <name>``."""
    return getattr(LOSSES.get(name).obj, "label", f"MSE + {name}")


@functools.lru_cache(maxsize=None)
def _extras(term) -> frozenset[str]:
    """The optional inputs (``eps``, ``groups``) a term declares."""
    return frozenset(inspect.signature(term).parameters) & {"eps", "groups"}


def _checked(entry, value, u: torch.Tensor) -> torch.Tensor:
    """A plugin's term must be a finite scalar tensor; anything else fails the cell naming it."""
    if not isinstance(value, torch.Tensor) or value.shape != ():
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise PluginError(f"loss {entry.describe()} returned {shape}; it must return a scalar tensor")
    if not bool(torch.isfinite(value)):
        raise PluginError(f"loss {entry.describe()} returned {value.item()} for a batch of {u.shape[0]}")
    return value


@dataclass(frozen=True)
class LossSpec:
    """``mse`` alone or ``mse + lam * term`` with a similarity, by registered names."""

    name: str = "mse"
    sim: str = "cos"
    lam: float = 1.0
    eps: float = 0.1

    def __post_init__(self) -> None:
        for registry, value in ((LOSSES, self.name), (SIMILARITIES, self.sim)):
            try:
                registry.get(value)
            except KeyError as exc:
                raise ValueError(exc.args[0]) from None

    def __call__(self, pred: torch.Tensor, u: torch.Tensor, y: torch.Tensor,
                 groups: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Returns ``{"loss", "mse", "contrastive"}``; ``pred [B]`` is the head's output,
        ``groups [B]`` the coarse score bins (for terms that declare ``groups``)."""
        mse = F.mse_loss(pred.float(), y.float())
        entry = LOSSES.get(self.name)
        if entry.obj is mse_only:
            return {"loss": mse, "mse": mse, "contrastive": mse.new_zeros(())}
        extras = {"eps": self.eps, "groups": groups}
        wanted = {k: extras[k] for k in _extras(entry.obj)}
        if "groups" in wanted and groups is None:
            raise ValueError(f"{self.name} needs the score bins of the batch (groups)")
        con = entry.obj(u, y, self.sim, **wanted)
        if entry.source == "plugin":
            con = _checked(entry, con, u)
        return {"loss": mse + self.lam * con, "mse": mse, "contrastive": con}
