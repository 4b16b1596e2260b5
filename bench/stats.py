"""Statistics of the quantities a reader compares.

* a row's mean over seeds with a Student-t 95 % interval (each seed is a new patient split
  and a new initialisation, so this interval holds both sources of variation); where every
  seed is scored on one shared test cohort (a synthetic source's held-out cohort), the
  seeds' spread cannot show how that cohort's draw moves the mean, so its variance (a
  bootstrap of the cohort's patients, one draw for every seed) is added;
* a row's paired effect against the MSE row of the same backbone and dataset (same seed =
  same split and same initial weights): mean difference, its 95 % t-interval, the paired
  t-test, and the probability of improvement P(row > MSE) over seeds (Bouthillier et al.,
  "Accounting for Variance in Machine Learning Benchmarks", MLSys 2021); under (repeated)
  cross-validation the interval is corrected for overlapping training sets (Nadeau and
  Bengio 2003; Bouckaert and Frank 2004);
* Holm's step-down adjustment of a table's p-values (a family of comparisons);
* a verdict that says what that interval says about 0 and about the paper's own effect;
* the minimal effect a design detects at 80 % power (paired t-test, two-sided α = 0.05) and
  the number of seeds a target needs;
* a bootstrap over the test pairs of one run that resamples test *patients* with all their
  pairs (pairs of one patient are not independent, so resampling pairs is too narrow); the
  same replicates score two runs on the same test pairs jointly (the test-sampling variance
  of their difference).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize, stats


def cluster_bootstrap(true, preds, metric: str, clusters=None, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """``[len(preds), n_boot]`` replicates of ``metric`` ("accuracy" in %, "macro_f1") of each
    prediction vector in ``preds`` against the same ``true`` labels; each replicate draws
    ``clusters`` (test patients) with replacement and takes all their pairs, the same draw
    for every prediction vector (so differences are resampled jointly); without ``clusters``
    every pair is its own cluster. Vectorised: a replicate is a vector of cluster counts,
    and its confusion matrix the count-weighted sum of the clusters'."""
    t = np.asarray(true, dtype=int)
    groups = np.arange(len(t)) if clusters is None else np.unique(np.asarray(clusters), return_inverse=True)[1]
    n_groups = groups.max() + 1
    counts = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)
    out = []
    for pred in preds:
        confusion = np.zeros((n_groups, 9))
        np.add.at(confusion, (groups, 3 * t + np.asarray(pred, dtype=int)), 1)  # per cluster: (true, pred) counts
        out.append(confusion_metric((counts @ confusion).reshape(n_boot, 3, 3), metric))
    return np.array(out)


def bootstrap_ci(true, pred, metric: str, clusters=None, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``metric`` over :func:`cluster_bootstrap` replicates."""
    if len(true) == 0:
        return float("nan"), float("nan")
    vals = cluster_bootstrap(true, [pred], metric, clusters, n_boot, seed)[0]
    alpha = (1 - level) / 2
    return float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha))


def paired_bootstrap_var(true, pred_a, pred_b, metric: str, clusters=None, n_boot: int = 2000,
                         seed: int = 0) -> float:
    """Bootstrap variance of ``metric(a) − metric(b)`` on the same test pairs, test patients
    resampled jointly: how much the difference of two runs moves with the test sample alone."""
    vals = cluster_bootstrap(true, [pred_a, pred_b], metric, clusters, n_boot, seed)
    return float(np.var(vals[0] - vals[1], ddof=1))


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


def mean_ci(values, level: float = 0.95, shared_var: float = 0.0) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaNs dropped); NaN below two values.
    ``shared_var``: variance the mean has beyond the values' spread (a test cohort every value
    was scored on, :func:`shared_variance`), added to the squared standard error."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    lo, hi, _, _ = _interval(float(v.mean()), float(v.var(ddof=1)) / len(v), len(v) - 1, shared_var, level)
    return lo, hi


def _interval(mean: float, spread_var: float, df: int, shared_var: float, level: float):
    """(lo, hi, se, df) of a t-interval whose squared standard error is ``spread_var`` (estimated
    on ``df`` degrees of freedom) + ``shared_var`` (taken as known: a bootstrap over hundreds of
    patients), with Welch–Satterthwaite's degrees of freedom for the sum. No variance at all: the
    point itself."""
    se2 = spread_var + shared_var
    if se2 <= 0:
        return mean, mean, 0.0, df
    df = se2 ** 2 / (spread_var ** 2 / df) if spread_var > 0 else np.inf
    lo, hi = stats.t.interval(level, df, loc=mean, scale=np.sqrt(se2))
    return float(lo), float(hi), float(np.sqrt(se2)), df


def shared_variance(replicates) -> float:
    """The variance that a test cohort shared by every seed adds to a mean over the seeds, which
    the seeds' own spread cannot show. ``replicates``: ``[seeds, n_boot]`` bootstrap replicates
    of a per-seed number, each replicate one draw of test patients used for every seed
    (:func:`cluster_bootstrap`). A seed's number moves with the test sample by T = σ_c² + σ_s²
    (σ_c: the part every seed shares, e.g. patients every model finds hard; σ_s: the part that
    differs by seed, which the seeds' spread already holds); the mean of n seeds moves by
    V = σ_c² + σ_s² / n; so σ_c² = V − (T − V) / (n − 1), floored at 0."""
    r = np.asarray(replicates, dtype=float)
    if r.shape[0] < 2:
        return float("nan")
    per_seed = float(np.mean(np.var(r, axis=1, ddof=1)))
    of_mean = float(np.var(r.mean(axis=0), ddof=1))
    return max(of_mean - (per_seed - of_mean) / (r.shape[0] - 1), 0.0)


def paired_effect(row: dict, base: dict, level: float = 0.95, shared_var: float = 0.0) -> dict:
    """``row - base`` over the keys (seeds) both have, as :func:`difference_effect` with the
    paired t-test (``scipy.stats.ttest_rel``'s interval and p; ``shared_var`` as there)."""
    keys = sorted(set(row) & set(base))
    return difference_effect([row[k] - base[k] for k in keys], 0.0, level, shared_var)


def corrected_paired_effect(diffs, test_fraction: float | None = None, level: float = 0.95) -> dict:
    """Paired effect from cross-validation, where the J training sets overlap so the J
    differences are correlated and the naive t-interval is far too narrow. Nadeau–Bengio's
    corrected resampled t: variance of the mean = sd² · (1/J + n_test/n_train), df = J − 1.
    ``diffs``: 1-D, one difference per random train/test split (``test_fraction`` = n_test /
    (n_train + n_test) required); or 2-D ``[repeats, folds]`` from repeated K-fold, where
    Bouckaert and Frank's variant uses all J = R·K fold differences with test_fraction 1/K
    (the default)."""
    d = np.asarray(diffs, dtype=float)
    if test_fraction is None:
        if d.ndim != 2:
            raise ValueError("test_fraction is needed unless diffs is [repeats, folds]")
        test_fraction = 1 / d.shape[1]
    return difference_effect(d.ravel(), test_fraction / (1 - test_fraction), level)


def cv_mean_ci(values, repeats, folds: int, level: float = 0.95) -> tuple[float, float, float]:
    """A cross-validated estimate: the mean of each repeat's fold values, then of the repeats
    (``repeats``: each value's repeat), and the corrected resampled t-interval around it
    (Nadeau–Bengio over all J fold values, test fraction 1/K: variance sd² · (1/J + 1/(K − 1)),
    df J − 1). NaN interval below two values."""
    v, rep = np.asarray(values, dtype=float), np.asarray(repeats)
    keep = np.isfinite(v)
    v, rep = v[keep], rep[keep]
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    mean = float(np.mean([v[rep == r].mean() for r in np.unique(rep)]))
    if len(v) < 2 or np.all(v == v[0]):
        return (mean, float("nan"), float("nan")) if len(v) < 2 else (mean, mean, mean)
    se = v.std(ddof=1) * np.sqrt(1 / len(v) + 1 / (folds - 1))
    lo, hi = stats.t.interval(level, len(v) - 1, loc=mean, scale=se)
    return mean, float(lo), float(hi)


def difference_effect(diffs, extra_variance: float, level: float = 0.95, shared_var: float = 0.0) -> dict:
    """n, mean, sd of the differences, the t-interval and two-sided p of their mean with
    variance sd² · (1/n + ``extra_variance``) on n − 1 df (0: the paired t-test) plus
    ``shared_var`` (a test cohort every difference was scored on, :func:`shared_variance`; the
    df then by Welch–Satterthwaite), and P(row > base) (the share of differences above 0, a tie
    counting half)."""
    d = np.asarray(diffs, dtype=float)
    nan = float("nan")
    out = {"n": len(d), "mean": float(d.mean()) if len(d) else nan,
           "sd": float(d.std(ddof=1)) if len(d) > 1 else nan, "lo": nan, "hi": nan, "p_value": nan,
           "p_improve": float(np.mean((d > 0) + 0.5 * (d == 0))) if len(d) else nan, "shared_var": shared_var}
    if len(d) > 1:
        spread = out["sd"] ** 2 * (1 / len(d) + extra_variance)
        out["lo"], out["hi"], se, df = _interval(out["mean"], spread, len(d) - 1, shared_var, level)
        if se > 0:
            out["p_value"] = float(2 * stats.t.sf(abs(out["mean"]) / se, df))
    return out


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), NaNs left out of the family and
    kept as NaN: the k-th smallest of m p-values becomes max over j ≤ k of min(1, (m−j+1)·p_(j))."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def verdict(lo: float, hi: float, paper_effect: float, n: int) -> str:
    """What the interval [lo, hi] of our effect (over ``n`` paired seeds) says about 0 and
    about the paper's effect, one label (README "Reading a table"); sizes compare magnitudes."""
    if n == 0:
        return ""
    if n == 1:
        return "n = 1: no interval"
    if np.isnan(lo):
        return "no interval"
    holds_zero = lo <= 0 <= hi
    if np.isnan(paper_effect):
        return "no effect detected" if holds_zero else "significant"
    holds_paper = lo <= paper_effect <= hi
    if holds_zero:
        return "inconclusive" if holds_paper else "no effect detected; the paper's Δ excluded"
    if holds_paper:
        return "significant; compatible with the paper"
    if paper_effect == 0:
        return "significant; larger than the paper's (0)"
    if paper_effect * lo < 0:
        return "significant; opposite sign to the paper's"
    size = "smaller" if abs(paper_effect) > max(abs(lo), abs(hi)) else "larger"
    return f"significant; same sign, {size} than the paper's"


def minimal_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8,
                              extra_variance: float = 0.0, shared_var: float = 0.0) -> float:
    """The smallest true mean difference a two-sided paired t-test on ``n`` differences with
    sd ``sd`` detects with probability ``power`` (noncentral t on n − 1 df). ``extra_variance``
    and ``shared_var``: as in :func:`difference_effect` (the mean's variance is
    sd² · (1/n + extra_variance) + shared_var; on n − 1 df, conservative where shared_var is
    most of it)."""
    if n < 2 or not np.isfinite(sd) or (sd <= 0 and shared_var <= 0):
        return float("nan")
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)
    se = np.sqrt(sd ** 2 * (1 / n + extra_variance) + shared_var)

    def power_at(delta: float) -> float:
        nc = delta / se
        p = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
        return 1.0 if np.isnan(p) else p  # the noncentral t's tail is NaN where power is ~1
    return float(optimize.brentq(lambda x: power_at(x) - power, 1e-12 * se, 1000 * se))


def seeds_needed(sd: float, target: float, n_max: int = 10_000, per_seed: int = 1,
                 extra_variance: float = 0.0, shared_var: float = 0.0) -> float:
    """The fewest seeds whose :func:`minimal_detectable_effect` is at most ``target`` (NaN
    without an sd, inf beyond ``n_max``): MDE falls with n, so bisect. Cross-validation:
    ``per_seed`` = K differences per repeat and ``extra_variance`` = 1/(K − 1), whose floor
    no number of repeats lowers; nor do they lower ``shared_var`` (a shared test cohort's)."""
    if not np.isfinite(sd):
        return float("nan")

    def mde(seeds: int) -> float:
        return minimal_detectable_effect(sd, seeds * per_seed, extra_variance=extra_variance, shared_var=shared_var)
    if (sd == 0 and shared_var == 0) or mde(2) <= target:
        return 2.0
    if mde(n_max) > target:
        return float("inf")
    lo, hi = 2, n_max  # MDE(lo) > target >= MDE(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if mde(mid) <= target else (mid, hi)
    return float(hi)
