"""Figure 1 as numbers: cosine distances between test-scan embeddings against score differences.

The Spearman correlation between the cosine distance of two test-scan embeddings and the
absolute difference of their scores, over pairs of scans of the same patient (what the
downstream task needs to see), is a metric of every cell's record.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def pairwise_distances(emb: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All pairs i < j of test scans: cosine distance, |Δscore|, same-patient flag."""
    u = emb["u"].astype(np.float64)
    z = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    i, j = np.triu_indices(len(z), k=1)
    return {"distance": 1.0 - np.einsum("nd,nd->n", z[i], z[j]),
            "delta": np.abs(emb["score"][i] - emb["score"][j]),
            "same_patient": emb["patient_id"][i] == emb["patient_id"][j]}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho over the finite pairs; nan with fewer than 3 or a constant side."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def distance_score_spearman(emb: dict[str, np.ndarray]) -> float:
    """Spearman rho of cosine distance vs |Δscore| over same-patient test pairs (nan if none)."""
    pw = pairwise_distances(emb)
    m = pw["same_patient"]
    return spearman(pw["distance"][m], pw["delta"][m])

