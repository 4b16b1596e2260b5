"""Downstream pairs: consecutive visits of one patient, labelled by the change in score.

Labels: 0 = deteriorated, 1 = same, 2 = improved. Within each patient (and zone, when the
table has one) scans are ordered by visit; every scan of a visit is paired with every scan
of the next visit that has scans.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

LABELS = ("deteriorated", "same", "improved")


@dataclass(frozen=True)
class BinRule:
    """A pair is labelled by a move between score bins: to a healthier bin = improved.

    ``edges`` are right-closed, (a, b]; ``bins`` are the coarse classes of the score
    (SupCon's labels). The paper's LUS rule: S/F bins [<=180, 180-275, 275-430, >430]
    (430 is in 275-430, as the paper writes ">430"), higher S/F healthier.
    """

    edges: tuple[float, ...]
    higher_is_better: bool = True

    def bins(self, scores: np.ndarray) -> np.ndarray:
        return np.digitize(np.asarray(scores, float), self.edges, right=True)

    def labels(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        move = np.sign(self.bins(after) - self.bins(before))
        return ((move if self.higher_is_better else -move) + 1).astype(np.int64)

    def describe(self) -> str:
        way = "up" if self.higher_is_better else "down"
        return f"score bins {'|'.join(f'{e:g}' for e in self.edges)} (right-closed), better {way}"


@dataclass(frozen=True)
class DeltaRule:
    """A pair is labelled by the change of score: ``>= +threshold`` in the better direction
    is improved, ``>= threshold`` in the worse one deteriorated, else same. ``coarse`` are
    the score's coarse bin edges (SupCon's classes). The paper's MMSE rule: change >= 2 points,
    with the clinical bands 0-17 / 18-23 / 24-26 / 27-30 as coarse bins."""

    threshold: float
    higher_is_better: bool = True
    coarse: tuple[float, ...] = ()

    def bins(self, scores: np.ndarray) -> np.ndarray:
        return np.digitize(np.asarray(scores, float), self.coarse, right=True)

    def labels(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        d = np.asarray(after, float) - np.asarray(before, float)
        d = d if self.higher_is_better else -d
        return np.where(d >= self.threshold, 2, np.where(d <= -self.threshold, 0, 1)).astype(np.int64)

    def describe(self) -> str:
        return f"score change of at least {self.threshold:g}, better {'up' if self.higher_is_better else 'down'}"


PairRule = BinRule | DeltaRule
SF_RULE = BinRule((180.0, 275.0, 430.0))
MMSE_RULE = DeltaRule(2.0, coarse=(17.0, 23.0, 26.0))
RULE_OPTIONS = ("bins", "delta", "higher_is_better")


def rule_from_options(options: dict[str, str], default: PairRule | None, origin: str) -> PairRule:
    """The pair rule a source spec asks for (``bins=E1|E2|…``, ``delta=X``,
    ``higher_is_better=true|false``) over the source's ``default``; ``ValueError`` (one line,
    naming ``origin``) for a bad or missing rule. With ``delta`` the coarse bins are kept from
    the default rule, or are the score's quartiles of ``None`` (set by the caller)."""
    if "bins" in options and "delta" in options:
        raise ValueError(f"{origin}: give bins= or delta=, not both")
    better = options.get("higher_is_better")
    if better is not None and better.lower() not in ("true", "false"):
        raise ValueError(f"{origin}: higher_is_better={better!r}; valid: true, false")
    rule = default
    if "bins" in options:
        rule = BinRule(_edges(options["bins"], origin))
    elif "delta" in options:
        rule = DeltaRule(_positive(options["delta"], origin), coarse=getattr(default, "coarse", ()))
    if rule is None:
        raise ValueError(f"{origin}: needs its pair-label rule: bins=E1|E2|… (a move between score bins) "
                         "or delta=X (a change of at least X)")
    return replace(rule, higher_is_better=better.lower() == "true") if better is not None else rule


def _edges(text: str, origin: str) -> tuple[float, ...]:
    try:
        edges = tuple(float(e) for e in text.split("|"))
    except ValueError:
        edges = ()
    if not edges or not all(np.isfinite(edges)) or list(edges) != sorted(set(edges)):
        raise ValueError(f"{origin}: bins={text!r}: expected increasing finite bin edges like 180|275|430")
    return edges


def _positive(text: str, origin: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{origin}: delta={text!r}: expected a score change > 0")
    return value


def make_pairs(scans: pd.DataFrame, rule) -> pd.DataFrame:
    """Pairs of row positions ``(a, b)`` in ``scans`` with ``visit_a < visit_b`` adjacent, in
    the order of (patient, zone) groups, then visits, then row positions — one join, no loop
    over patients (the oracle's generated cohort has thousands of them)."""
    scans = scans.reset_index(drop=True)
    keys = ["patient_id"] + (["zone"] if "zone" in scans.columns else [])
    rows = pd.DataFrame({"group": scans.groupby(keys, sort=True, dropna=False).ngroup().to_numpy(),
                         "pos": np.arange(len(scans))})
    rows["visit"] = _visit_rank(scans, rows["group"])
    nxt = rows.assign(visit=rows["visit"] - 1)
    joined = rows.merge(nxt, on=["group", "visit"], suffixes=("_a", "_b")).sort_values(
        ["group", "visit", "pos_a", "pos_b"], kind="stable")
    a, b = joined["pos_a"].to_numpy(np.int64), joined["pos_b"].to_numpy(np.int64)
    score = scans["score"].to_numpy(float)
    return pd.DataFrame({
        "a": a, "b": b,
        "patient_id": scans["patient_id"].to_numpy()[a],
        "score_a": score[a], "score_b": score[b],
        "label": rule.labels(score[a], score[b]),
    })


def _visit_rank(scans: pd.DataFrame, group: pd.Series) -> np.ndarray:
    """Each scan's visit as 0, 1, 2, … within its group (scans of one visit share it)."""
    return scans["visit"].groupby(group.to_numpy()).rank(method="dense").to_numpy().astype(np.int64) - 1


def label_counts(pairs: pd.DataFrame) -> dict[str, int]:
    counts = np.bincount(pairs["label"].to_numpy(), minlength=3)
    return {name: int(c) for name, c in zip(LABELS, counts)}


def pairs_by_split(pairs: pd.DataFrame, splits: dict[str, np.ndarray], n_scans: int) -> dict[str, pd.DataFrame]:
    """The pairs of each split (a pair's split is its patient's: both scans share it)."""
    split_of = np.empty(n_scans, dtype=object)
    for name, idx in splits.items():
        split_of[idx] = name
    return {name: pairs[split_of[pairs["a"].to_numpy()] == name] for name in splits}


def split_problem(by_split: dict[str, pd.DataFrame]) -> str | None:
    """Why these pairs cannot train and test a 3-way classifier, or None if they can."""
    for name in ("train", "test"):
        if not len(by_split[name]):
            return f"no {name} pairs"
    if by_split["train"]["label"].nunique() < 2:
        only = LABELS[int(by_split["train"]["label"].iloc[0])]
        return f"every train pair is {only!r}: a classifier cannot learn a change from one class"
    return None
