"""Downstream pairs: consecutive visits of one patient, labelled by the change in score.

Labels: 0 = deteriorated, 1 = same, 2 = improved. Within each patient (and zone, when the
table has one) scans are ordered by visit; every scan of a visit is paired with every scan
of the next visit that has scans.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LABELS = ("deteriorated", "same", "improved")


@dataclass(frozen=True)
class SFBins:
    """LUS: S/F binned into [<=180, 180-275, 275-430, >430]; moving to a healthier bin = improved.

    Edges are right-closed, (a, b], so 430 is in 275-430 as the paper writes ">430".
    """

    edges: tuple[float, ...] = (180.0, 275.0, 430.0)

    def labels(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        a = np.digitize(before, self.edges, right=True)
        b = np.digitize(after, self.edges, right=True)
        return (np.sign(b - a) + 1).astype(np.int64)


@dataclass(frozen=True)
class ScoreDelta:
    """MMSE: change >= +threshold = improved, <= -threshold = deteriorated, else same."""

    threshold: float = 2.0

    def labels(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        d = np.asarray(after, float) - np.asarray(before, float)
        return np.where(d >= self.threshold, 2, np.where(d <= -self.threshold, 0, 1)).astype(np.int64)


# Clinical MMSE bands (right-closed): 0-17 moderate/severe, 18-23 mild dementia, 24-26 MCI, 27-30 normal.
MMSE_BIN_EDGES = (17.0, 23.0, 26.0)


def score_bins(kind: str, scores: np.ndarray) -> np.ndarray:
    """Coarse classes of the health score (SupCon's labels): S/F bins or MMSE bands."""
    edges = SFBins().edges if kind == "lus" else MMSE_BIN_EDGES
    return np.digitize(np.asarray(scores, float), edges, right=True)


def label_rule(kind: str, mmse_threshold: float = 2.0):
    return SFBins() if kind == "lus" else ScoreDelta(mmse_threshold)


def make_pairs(scans: pd.DataFrame, rule) -> pd.DataFrame:
    """Pairs of row positions ``(a, b)`` in ``scans`` with ``visit_a < visit_b`` adjacent."""
    scans = scans.reset_index(drop=True)
    keys = ["patient_id"] + (["zone"] if "zone" in scans.columns else [])
    rows = []
    for _, group in scans.groupby(keys, sort=True, dropna=False):
        visits = sorted(group["visit"].unique())
        by_visit = {v: group.index[group["visit"] == v].to_numpy() for v in visits}
        for v_a, v_b in zip(visits[:-1], visits[1:]):
            for a in by_visit[v_a]:
                for b in by_visit[v_b]:
                    rows.append((a, b))
    idx = np.array(rows, dtype=np.int64).reshape(-1, 2)
    score = scans["score"].to_numpy(float)
    return pd.DataFrame({
        "a": idx[:, 0], "b": idx[:, 1],
        "patient_id": scans["patient_id"].to_numpy()[idx[:, 0]],
        "score_a": score[idx[:, 0]], "score_b": score[idx[:, 1]],
        "label": rule.labels(score[idx[:, 0]], score[idx[:, 1]]),
    })


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
