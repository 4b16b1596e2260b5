"""Statistics beyond the paper's single numbers.

* a 95 % bootstrap interval over the test pairs of one run (how much the number would move
  with another draw of test pairs of the same patients);
* a paired comparison of a loss against MSE over seeds (same seeds = same splits and
  initial weights), with a paired t-test;
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def bootstrap_ci(true: list[int], pred: list[int], metric: str, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``metric`` ("accuracy" in %, "macro_f1") over resampled pairs."""
    t, p = np.asarray(true), np.asarray(pred)
    if len(t) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(t), size=(n_boot, len(t)))
    if metric == "accuracy":
        vals = 100.0 * (t[idx] == p[idx]).mean(1)
    elif metric == "macro_f1":
        vals = _macro_f1_rows(t[idx], p[idx])
    else:
        raise ValueError(f"no bootstrap for metric {metric!r}")
    alpha = (1 - level) / 2
    return float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha))


def _macro_f1_rows(t: np.ndarray, p: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Macro-F1 of each row of ``[n_boot, n]`` label arrays, vectorised; a class with no true
    and no predicted sample scores 0 (sklearn's ``zero_division=0`` over fixed labels)."""
    f1 = []
    for c in range(n_classes):
        tp = ((t == c) & (p == c)).sum(1)
        denom = (t == c).sum(1) + (p == c).sum(1)
        f1.append(np.divide(2 * tp, denom, out=np.zeros(len(t)), where=denom > 0))
    return np.mean(f1, axis=0)


def paired_comparison(loss_vals: dict[int, float], mse_vals: dict[int, float]) -> dict:
    """Mean and std of (loss - MSE) over the seeds both have, and a paired t-test p-value."""
    seeds = sorted(set(loss_vals) & set(mse_vals))
    diff = np.array([loss_vals[s] - mse_vals[s] for s in seeds])
    out = {"n": len(seeds), "mean_diff": float(diff.mean()) if len(diff) else float("nan"),
           "std_diff": float(diff.std(ddof=1)) if len(diff) > 1 else float("nan"), "p_value": float("nan")}
    if len(diff) > 1 and np.any(diff != diff[0]):
        out["p_value"] = float(stats.ttest_rel([loss_vals[s] for s in seeds], [mse_vals[s] for s in seeds]).pvalue)
    return out


def mean_ci(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaNs dropped); NaN below two values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    if np.all(v == v[0]):
        return float(v[0]), float(v[0])
    lo, hi = stats.t.interval(level, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    return float(lo), float(hi)
