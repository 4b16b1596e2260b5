"""Sensitivity studies: one knob of the synthetic generators swept over values, every loss
(with the reference rows) run at each value, so a reader sees *when* a loss helps.

    python run_all.py sensitivity --knob shortcut --values 0,0.5,1 --losses mse,cl,wcl --preset smoke

Each value is an ordinary sweep (same cells, claims, resume) whose data spec sets the knob,
e.g. ``synthetic-lus:shortcut=0.5``; all values share ``<out>/sensitivity/<knob>/runs``.
Outputs: ``sensitivity.csv`` (tidy: knob value, row, seed, metrics), ``summary.csv`` (per
value and row: mean, CI, paired effect vs MSE), ``trend.csv`` (does the knob move a row's
macro-F1, and a loss's effect vs MSE?) and ``sensitivity.png/.pdf``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scipy import stats

from bench.cell import record_is_stale
from bench.grid import Row
from bench.records import RunRecord
from bench.stats import mean_ci
from bench.tables import DATASET_LABELS, backbone_label, cell_frame, loss_label, signed_interval, summarize

Studied = list[tuple[object, object, list[RunRecord]]]  # (value, its bench.sweep.SweepPlan, its cells' records)


def study_frames(knob: str, studied: Studied) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy per cell, per value and row) from each value's records."""
    cells, rows = [], []
    for value, plan, records in studied:
        cells.append(cell_frame(records).assign(knob=knob, value=value))
        rows.append(summarize(records, plan.rows, record_is_stale).assign(knob=knob, value=value))
    lead = ["knob", "value"]
    cells = [c for c in cells if len(c)] or cells  # empty frames would turn int columns into floats
    tidy, summary = pd.concat(cells, ignore_index=True), pd.concat(rows, ignore_index=True)
    return tidy[lead + [c for c in tidy.columns if c not in lead]], summary[lead + [c for c in summary.columns
                                                                                    if c not in lead]]


TREND_COLUMNS = ["dataset", "backbone", "loss", "sim", "loss_label", "quantity", "n_seeds", "values", "slope",
                 "slope_lo", "slope_hi", "p_value", "change_over_range", "change_lo", "change_hi"]


def _trend(series: pd.Series) -> dict:
    """Per seed the least-squares slope of ``series`` (indexed by seed and value) on the
    value; the mean slope over seeds with its t-interval and p (seeds are the replicates,
    as for every paired effect here), and the change over the studied range."""
    slopes = []
    for _, per_seed in series.groupby(level="seed"):
        x = per_seed.index.get_level_values("value").astype(float)
        if len(set(x)) >= 2:
            # rounded (and + 0.0 for −0.0): a row the knob does not move reads exactly 0, not 1e-17
            slopes.append(round(float(np.polyfit(x, per_seed.to_numpy(), 1)[0]), 12) + 0.0)
    values = series.index.get_level_values("value").astype(float)
    span = float(values.max() - values.min()) if len(values) else np.nan
    slope = float(np.mean(slopes)) if slopes else np.nan
    lo, hi = mean_ci(slopes)
    p = float(stats.ttest_1samp(slopes, 0).pvalue) if len(slopes) > 1 and np.ptp(slopes) > 0 else np.nan
    return {"n_seeds": len(slopes), "values": len(set(values)), "slope": slope, "slope_lo": lo, "slope_hi": hi,
            "p_value": p, "change_over_range": slope * span, "change_lo": lo * span, "change_hi": hi * span}


def knob_trends(tidy: pd.DataFrame) -> pd.DataFrame:
    """Does the knob move a row, and a loss's effect? Per row the trend (:func:`_trend`) of
    its macro-F1 (``quantity`` macro_f1) and, for method rows, of its ΔF1 vs MSE of the
    same backbone, value and seed (``macro_f1_vs_mse``)."""
    if tidy.empty:
        return pd.DataFrame(columns=TREND_COLUMNS)
    done = tidy[tidy["status"] == "finished"]
    key = ["dataset", "backbone", "seed", "value"]
    mse = done[(done["loss"] == "mse") & (done["sim"] == "cos") & (done["kind"] == "method")].set_index(key)["macro_f1"]
    out = []
    for (d, b, loss, sim, kind), g in done.groupby(["dataset", "backbone", "loss", "sim", "kind"], sort=False):
        row = {"dataset": d, "backbone": b, "loss": loss, "sim": sim, "loss_label": loss_label(Row(d, b, loss, sim))}
        f1 = g.set_index(key)["macro_f1"]
        out.append({**row, "quantity": "macro_f1", **_trend(f1)})
        if kind == "method" and (loss, sim) != ("mse", "cos"):
            out.append({**row, "quantity": "macro_f1_vs_mse", **_trend((f1 - mse).dropna())})
    return pd.DataFrame(out, columns=TREND_COLUMNS)


def change_text(trends: pd.DataFrame, dataset: str, backbone: str, label: str, quantity: str) -> str:
    """" (change +0.039 [−0.087, +0.164])" for a legend, or "" without a trend."""
    t = trends[(trends["dataset"] == dataset) & (trends["backbone"] == backbone) & (trends["loss_label"] == label)
               & (trends["quantity"] == quantity)]
    if not len(t) or t["n_seeds"].iloc[0] < 2:
        return ""
    t = t.iloc[0]
    return f" (change {signed_interval(t['change_over_range'], t['change_lo'], t['change_hi'])})"


def study_figure(knob: str, summary: pd.DataFrame, trends: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per (dataset, backbone): macro-F1 of each loss vs the knob (mean, 95 % CI over seeds)
    with the majority / untrained floors and the oracle ceiling; below it, ΔF1 vs MSE; each
    with its change over the studied range (``trends``) in the legend."""
    from bench.plots import plt, save_figure
    methods = summary[summary["kind"] == "method"]
    panels = list(dict.fromkeys(zip(methods["dataset"], methods["backbone"])))
    if not panels:
        return []
    fig, axes = plt.subplots(2, len(panels), figsize=(5.5 * len(panels), 7), squeeze=False, sharex="col")
    for k, (d, b) in enumerate(panels):
        top, bottom = axes[0, k], axes[1, k]
        sub = summary[summary["dataset"] == d]
        refs = {"majority": ("0.45", "--"), "untrained": ("0.25", ":"), "oracle": ("k", "-.")}  # the losses take C0, C1, ...
        for loss, (color, style) in refs.items():
            ref = sub[(sub["loss"] == loss) & (sub["backbone"].isin([b, "any"]))]
            if len(ref) and ref["n"].max() > 0:
                top.plot(ref["value"], ref["macro_f1_mean"], style, color=color, label=ref["loss_label"].iloc[0])
        groups = list(methods[(methods["dataset"] == d) & (methods["backbone"] == b)].groupby("loss_label", sort=False))
        span = float(np.ptp(summary["value"].astype(float))) or 1.0
        for i, (loss, g) in enumerate(groups):
            x = g["value"].astype(float) + (i - (len(groups) - 1) / 2) * 0.012 * span  # dodge the error bars
            err = np.abs(np.vstack([g["macro_f1_mean"] - g["macro_f1_ci_lo"], g["macro_f1_ci_hi"] - g["macro_f1_mean"]]))
            top.errorbar(x, g["macro_f1_mean"], yerr=np.nan_to_num(err), marker="o", capsize=3,
                         color=f"C{i}", label=loss + change_text(trends, d, b, loss, "macro_f1"))
            if g["macro_f1_vs_mse"].notna().any():
                change = change_text(trends, d, b, loss, "macro_f1_vs_mse")
                derr = np.abs(np.vstack([g["macro_f1_vs_mse"] - g["macro_f1_vs_mse_lo"],
                                         g["macro_f1_vs_mse_hi"] - g["macro_f1_vs_mse"]]))
                bottom.errorbar(x, g["macro_f1_vs_mse"], yerr=np.nan_to_num(derr), marker="o", capsize=3,
                                color=f"C{i}", label=f"{loss} − MSE{change}")
        bottom.axhline(0, color="0.5", lw=1)
        top.set_title(f"{DATASET_LABELS.get(d, d)}, {backbone_label(b)}")
        top.set_ylabel("macro-F1 (mean, 95 % CI over seeds)")
        top.set_ylim(0, 1)
        bottom.set_ylabel("ΔF1 vs MSE (paired, 95 % CI)")
        bottom.set_xlabel(knob)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:  # nothing finished yet: no legend
                ax.legend(fontsize=7)
    return save_figure(fig, out_dir, "sensitivity")


def write_study(knob: str, studied: Studied) -> tuple[pd.DataFrame, list[Path]]:
    """The study's files; returns (trends, paths)."""
    out_dir = studied[0][1].ctx.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)  # --tables-only before any cell ran
    tidy, summary = study_frames(knob, studied)
    trends = knob_trends(tidy)
    trends.insert(0, "knob", knob)
    paths = [out_dir / "sensitivity.csv", out_dir / "summary.csv", out_dir / "trend.csv"]
    for frame, path in zip((tidy, summary, trends), paths):
        frame.to_csv(path, index=False, float_format="%.4f")
    return trends, paths + study_figure(knob, summary, trends, out_dir)
