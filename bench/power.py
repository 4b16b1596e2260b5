"""Power planning from the records: how many seeds a design needs, and where compute helps.

The seed-to-seed variance of a row's paired ΔF1 against MSE has two sources: training
randomness (initial weights, batch order, which patients train) and test-set sampling
(which patients happen to be tested). The second is measured on each seed's own test
pairs: the method cell and its MSE cell of that seed share the split, hence the test pairs,
so resampling test patients jointly for both (:func:`bench.stats.paired_bootstrap_var`)
gives the variance of their ΔF1 due to the test sample alone. The mean of that over cells is
the test-sampling component; the seed-to-seed variance minus it (floored at 0) the training
component. More seeds shrink both; a larger test set (m× the patients) only the second
(test variance / m). Where every seed is scored on the same held-out cohort (synthetic
sources), part of the test sampling is shared by all seeds — the seeds' spread cannot show it
and no number of seeds lowers it — and :func:`shared_cohort_variance` measures it (one draw of
the cohort's patients for every seed); the tables add it to their intervals.

The functions take run records (:class:`bench.records.RunRecord`) and read only their
row, seed, status and scored test pairs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.data.pairs import LABELS
from bench.grid import is_reference
from bench.stats import cluster_bootstrap, paired_bootstrap_var, seeds_needed, shared_variance

TARGETS = (0.05, 0.03)
PLANNED_TEST_PATIENTS = 400
FEW_PAIRS = 20  # a class with fewer test pairs than this makes its per-class F1, and macro-F1, jumpy


def folds_of(records: list) -> int | None:
    """K of cross-validated cells (as their records say, else the folds seen); None without folds."""
    seen = {getattr(r, "fold", None) for r in records} - {None}
    return (max(getattr(r, "folds", None) or 0 for r in records) or len(seen)) if seen else None


def cv_extra_variance(folds: int | None) -> float:
    """n_test / n_train of K-fold cross-validation (1/(K − 1)), the corrected t's extra
    variance term (0 without folds: the seeds' test sets are independent draws)."""
    return 1 / (folds - 1) if folds else 0.0


def _test_pairs(rec):
    tp = rec.test_pairs
    return tp if rec.finished and tp and tp.true else None


def _same_test_pairs(a, b) -> bool:
    """Whether two scored pair lists are the same pairs: the same patients and labels in order."""
    return list(a.patient) == list(b.patient) and list(a.true) == list(b.true)


def joint_bootstrap(records: list) -> pd.DataFrame:
    """One line per method cell paired with the MSE cell of its dataset, backbone, seed (and fold) on
    the same test pairs (same patients and labels in the same order; other pairs are
    skipped): its ΔF1 and the joint-bootstrap variance of that ΔF1 (``test_var``)."""
    mse = {(r.dataset, r.backbone, r.seed, getattr(r, "fold", None)): r for r in records
           if r.loss == "mse" and r.sim == "cos" and _test_pairs(r)}
    out = []
    for r in records:
        base = mse.get((r.dataset, r.backbone, r.seed, getattr(r, "fold", None)))
        if base is None or r is base or is_reference(r.loss) or not _test_pairs(r):
            continue
        a, b = r.test_pairs, base.test_pairs
        if not _same_test_pairs(a, b):
            continue
        out.append({"dataset": r.dataset, "backbone": r.backbone, "loss": r.loss, "sim": r.sim, "seed": r.seed,
                    "delta": r.metric("macro_f1") - base.metric("macro_f1"),
                    "test_var": paired_bootstrap_var(a.true, a.pred, b.pred, "macro_f1", a.patient, seed=r.seed),
                    "test_patients": len(set(a.patient))})
    return pd.DataFrame(out, columns=["dataset", "backbone", "loss", "sim", "seed", "delta", "test_var",
                                      "test_patients"])


def shared_cohort_variance(recs: list, metric: str, base: list | None = None) -> float:
    """The variance of a row's mean ``metric`` over seeds (with ``base``: of its difference to
    ``base`` paired by seed) that comes from a test cohort every seed was scored on — a synthetic
    source's held-out cohort — and that the seeds' spread cannot show
    (:func:`bench.stats.shared_variance`). 0 where the seeds' test pairs differ (each seed its own
    test split: their spread already holds the test sampling) or fewer than two seeds score."""
    rows = {(r.seed, getattr(r, "fold", None)): r for r in recs if _test_pairs(r)}
    bases = {(r.seed, getattr(r, "fold", None)): r for r in base or [] if _test_pairs(r)}
    keys = sorted(set(rows) & set(bases)) if base is not None else sorted(rows)
    cells = [rows[k] for k in keys] + [bases[k] for k in keys if base is not None]
    if len(keys) < 2:
        return 0.0
    first = cells[0].test_pairs
    if not all(_same_test_pairs(c.test_pairs, first) for c in cells[1:]):
        return 0.0
    reps = cluster_bootstrap(first.true, [c.test_pairs.pred for c in cells], metric, first.patient)
    return shared_variance(reps[:len(keys)] - reps[len(keys):] if base is not None else reps)


def pooled_sd(effects: pd.DataFrame) -> float:
    """Root mean square of the rows' paired sds of ΔF1 over seeds: a dataset's seed-to-seed spread."""
    return float(np.sqrt(np.mean(effects["macro_f1_vs_mse_sd"] ** 2)))


def shared_part(effects: pd.DataFrame) -> float:
    """The rows' mean shared-cohort variance of ΔF1 (:func:`shared_cohort_variance`; 0 without one)."""
    col = effects.get("macro_f1_vs_mse_shared_var")
    return float(np.nan_to_num(col).mean()) if col is not None and len(col) else 0.0


def power_plan(summary: pd.DataFrame, records: list) -> pd.DataFrame:
    """One line per dataset with paired cells: seeds run, MDE at those seeds (from the
    summary), the sd of ΔF1 over seeds and its training / test-sampling components, and the
    seeds needed for each target in :data:`TARGETS` at today's test size and at
    :data:`PLANNED_TEST_PATIENTS` test patients (the test parts scale as today / planned).
    Where every seed is scored on one shared cohort, the per-seed test variance splits into a
    part that differs by seed (inside the seeds' spread) and a shared part (``sd_shared``) that
    no number of seeds lowers. With one seed there is no seed-to-seed sd: the training part is
    unknown (NaN) and the seeds needed count the test part alone, a lower bound
    (``lower_bound``). Under cross-validation the seeds are repeats of K folds, counted with the
    corrected t's variance, and a larger test set is not an option (every patient is tested
    already: NaN)."""
    boot = joint_bootstrap(records)
    out = []
    for d, sub in summary.groupby("dataset", sort=False):
        eff, cells = sub.dropna(subset=["macro_f1_vs_mse_sd"]), boot[boot["dataset"] == d]
        if not len(cells):
            continue
        total = pooled_sd(eff) ** 2 if len(eff) else np.nan
        test, shared = float(cells["test_var"].mean()), shared_part(eff)
        per_seed_test = max(test - shared, 0.0)
        train = max(total - per_seed_test, 0.0) if len(eff) else np.nan
        patients = float(cells["test_patients"].mean())
        line = {"dataset": d, "n_seeds": int(eff["n_paired"].min()) if len(eff) else cells["seed"].nunique(),
                "mde_f1": float(eff["mde_f1"].iloc[0]) if len(eff) else np.nan, "sd_total": np.sqrt(total),
                "sd_train": np.sqrt(train), "sd_test": np.sqrt(test), "sd_shared": np.sqrt(shared),
                "test_patients": patients, "lower_bound": not len(eff)}
        folds = folds_of([r for r in records if r.dataset == d])
        cv = {"per_seed": folds or 1, "extra_variance": cv_extra_variance(folds)}  # repeats of K folds
        for label, scale in (("now", 1.0), (str(PLANNED_TEST_PATIENTS), patients / PLANNED_TEST_PATIENTS)):
            for target in TARGETS:
                line[f"seeds_{target}_{label}"] = np.nan if folds and label != "now" else seeds_needed(
                    np.sqrt(np.nan_to_num(train) + per_seed_test * scale), target, shared_var=shared * scale, **cv)
        out.append(line)
    return pd.DataFrame(out)


def class_counts(records: list) -> pd.DataFrame:
    """Test pairs per class and seed (one cell per dataset and seed, or fold: all its cells share
    the split), summarised per dataset and class as the min and mean over seeds."""
    seen, out = set(), []
    for r in records:
        tp = _test_pairs(r)
        if tp is None or (r.dataset, r.seed, getattr(r, "fold", None)) in seen:
            continue
        seen.add((r.dataset, r.seed, getattr(r, "fold", None)))
        counts = np.bincount(np.asarray(tp.true, dtype=int), minlength=len(LABELS))
        out += [{"dataset": r.dataset, "seed": r.seed, "label": label, "pairs": int(c)}
                for label, c in zip(LABELS, counts)]
    if not out:
        return pd.DataFrame(columns=["dataset", "label", "min", "mean", "seeds"])
    frame = pd.DataFrame(out)
    return (frame.groupby(["dataset", "label"], sort=False)["pairs"]
            .agg(min="min", mean="mean", seeds="size").reset_index())
