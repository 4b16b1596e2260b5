"""Statistics of the quantities a reader compares.

* a row's mean over seeds with a Student-t 95 % interval (each seed is a new patient split
  and a new initialisation, so this interval holds both sources of variation);
* a row's paired effect against the MSE row of the same backbone and dataset (same seed =
  same split and same initial weights): mean difference, its 95 % t-interval, the paired
  t-test, and the probability of improvement P(row > MSE) over seeds (Bouthillier et al.,
  "Accounting for Variance in Machine Learning Benchmarks", MLSys 2021);
* a verdict of that interval against the paper's own effect;
* the minimal effect a design detects at 80 % power (paired t-test, two-sided α = 0.05);
* a bootstrap over the test pairs of one run that resamples test *patients* with all their
  pairs (pairs of one patient are not independent, so resampling pairs is too narrow).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize, stats


def bootstrap_ci(true, pred, metric: str, clusters=None, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``metric`` ("accuracy" in %, "macro_f1"): each replicate draws
    ``clusters`` (test patients) with replacement and takes all their pairs; without
    ``clusters`` every pair is its own cluster. Vectorised: a replicate is a vector of
    cluster counts, and its confusion matrix the count-weighted sum of the clusters'."""
    t, p = np.asarray(true, dtype=int), np.asarray(pred, dtype=int)
    if len(t) == 0:
        return float("nan"), float("nan")
    groups = np.arange(len(t)) if clusters is None else np.unique(np.asarray(clusters), return_inverse=True)[1]
    n_groups = groups.max() + 1
    confusion = np.zeros((n_groups, 9))
    np.add.at(confusion, (groups, 3 * t + p), 1)  # per cluster: counts of (true, pred)
    counts = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)
    vals = confusion_metric((counts @ confusion).reshape(n_boot, 3, 3), metric)
    alpha = (1 - level) / 2
    return float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha))


def confusion_metric(cm: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of each ``[..., 3, 3]`` confusion matrix (rows = true): accuracy in %, or
    macro-F1 where a class with no true and no predicted pair scores 0 (sklearn's
    ``zero_division=0`` over fixed labels)."""
    if metric == "accuracy":
        return 100.0 * np.trace(cm, axis1=-2, axis2=-1) / cm.sum((-2, -1))
    if metric == "macro_f1":
        tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
        denom = cm.sum(-1) + cm.sum(-2)  # true + predicted per class
        return np.mean(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0), axis=-1)
    raise ValueError(f"no bootstrap for metric {metric!r}")


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


def paired_effect(row: dict[int, float], base: dict[int, float], level: float = 0.95) -> dict:
    """``row - base`` over the seeds both have: n, mean, sd, t-interval, paired t-test p,
    and P(row > base) (the share of seeds where the row wins, a tie counting half)."""
    seeds = sorted(set(row) & set(base))
    a = np.array([row[s] for s in seeds], dtype=float)
    b = np.array([base[s] for s in seeds], dtype=float)
    d = a - b
    nan = float("nan")
    out = {"n": len(seeds), "mean": float(d.mean()) if len(d) else nan,
           "sd": float(d.std(ddof=1)) if len(d) > 1 else nan, "lo": nan, "hi": nan, "p_value": nan,
           "p_improve": float(np.mean((d > 0) + 0.5 * (d == 0))) if len(d) else nan}
    if len(d) > 1 and np.any(d != d[0]):
        test = stats.ttest_rel(a, b)
        out["p_value"] = float(test.pvalue)
        out["lo"], out["hi"] = (float(x) for x in test.confidence_interval(level))
    elif len(d) > 1:  # every seed the same difference: the interval is that point
        out["lo"] = out["hi"] = float(d[0])
    return out


def verdict(lo: float, hi: float, paper_effect: float) -> str:
    """Our interval against the paper's effect: compatible (inside), or which way it differs."""
    if np.isnan(paper_effect) or np.isnan(lo):
        return ""
    if paper_effect > hi:
        return "smaller than the paper's"
    if paper_effect < lo:
        return "larger than the paper's"
    return "compatible with the paper"


def significance(lo: float, hi: float) -> str:
    if np.isnan(lo):
        return ""
    return "significant" if lo > 0 or hi < 0 else "not significant"


def minimal_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t-test on ``n`` seeds with
    difference sd ``sd`` detects with probability ``power`` (noncentral t)."""
    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return float("nan")
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def power_at(delta: float) -> float:
        nc = delta * np.sqrt(n) / sd
        p = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
        return 1.0 if np.isnan(p) else p  # the noncentral t's tail is NaN where power is ~1
    return float(optimize.brentq(lambda x: power_at(x) - power, 1e-12 * sd, 1000 * sd))
