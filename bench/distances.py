"""Figure 1 as numbers: cosine distances between test-scan embeddings against score differences.

The Spearman correlation between the cosine distance of two test-scan embeddings and the
absolute difference of their scores, over pairs of scans of the same patient (what the
downstream task needs to see), is a metric of every cell's record.

Only the pairs a number or a figure needs are formed: all n² pairs of a 400-patient
held-out cohort are 1.2 M rows × the embedding width (19 GB for a 1,024-wide 2D ResNet).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def same_patient_pairs(patient_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of every two scans of the same patient, in (i, j) order."""
    groups = np.unique(np.asarray(patient_id), return_inverse=True)[1]
    i, j = [], []
    for members in np.split(np.argsort(groups, kind="stable"), np.cumsum(np.bincount(groups))[:-1]):
        a, b = np.triu_indices(len(members), k=1)
        i.append(members[a])
        j.append(members[b])
    i, j = (np.concatenate(x) if x else np.zeros(0, int) for x in (i, j))
    order = np.lexsort((j, i))
    return i[order], j[order]


def sampled_pairs(n: int, max_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j of ``n`` scans, or ``max_pairs`` of them drawn uniformly (seeded) when
    there are more."""
    if n * (n - 1) // 2 <= max_pairs:
        return np.triu_indices(n, k=1)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, max_pairs)
    b = (a + rng.integers(1, n, max_pairs)) % n  # never a itself
    return np.minimum(a, b), np.maximum(a, b)


def pairwise_distances(emb: dict[str, np.ndarray], i: np.ndarray, j: np.ndarray) -> dict[str, np.ndarray]:
    """Cosine distance and |Δscore| of the test-scan pairs (i, j)."""
    u = emb["u"].astype(np.float64)
    z = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    return {"distance": 1.0 - np.einsum("nd,nd->n", z[i], z[j]),
            "delta": np.abs(emb["score"][i] - emb["score"][j])}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho over the finite pairs; nan with fewer than 3 or a constant side."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def distance_score_spearman(emb: dict[str, np.ndarray]) -> float:
    """Spearman rho of cosine distance vs |Δscore| over same-patient test pairs (nan if none)."""
    pw = pairwise_distances(emb, *same_patient_pairs(emb["patient_id"]))
    return spearman(pw["distance"], pw["delta"])
