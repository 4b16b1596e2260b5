"""Figure 1 of the paper, readable: cosine distance of test-scan embeddings vs |Δscore|.

One panel per (dataset, backbone) that has more than one loss; x = |Δscore| in quantile
bins, for each bin one box per loss (pooled over seeds). The paper's claim is that
contrastive pretraining spreads the distances out with the score difference.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.records import RecordError, load_embeddings  # noqa: E402
from bench.distances import pairwise_distances, sampled_pairs  # noqa: E402
from bench.tables import DATASET_LABELS, backbone_label, loss_label  # noqa: E402

N_BINS = 5
MIN_PAIRS = 10  # per loss and panel; fewer cannot show a distribution
FIGURE_PAIRS = 20_000  # per cell, a seeded sample of its test-scan pairs (a 400-patient cohort has 1.2 M)


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"


def _distances(records: list[dict], runs_dir: Path) -> pd.DataFrame:
    frames = []
    for rec in records:
        try:
            emb = load_embeddings(runs_dir / f"{rec.run_id}.json")
        except RecordError as exc:
            warnings.warn(str(exc), stacklevel=2)
            continue
        if emb is None or len(emb["u"]) < 2:
            continue
        pw = pairwise_distances(emb, *sampled_pairs(len(emb["u"]), FIGURE_PAIRS))
        frames.append(pd.DataFrame({"dataset": rec.dataset, "backbone": rec.backbone, "loss": loss_label(rec.row),
                                    "distance": pw["distance"], "delta": pw["delta"]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def figure1(records: list[dict], runs_dir: Path, out_dir: Path, score_names: dict[str, str]) -> list[Path]:
    """Write ``figure1.png`` and ``figure1.pdf``; returns [] when no panel has two losses
    with ``MIN_PAIRS`` test-scan pairs each (tiny real-data fixtures, for instance)."""
    df = _distances(records, runs_dir)
    if df.empty:
        return []
    panels = [(d, b) for (d, b), g in df.groupby(["dataset", "backbone"], sort=False)
              if g["loss"].nunique() > 1 and g.groupby("loss").size().min() >= MIN_PAIRS]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (d, b) in zip(axes[0], panels):
        g = df[(df["dataset"] == d) & (df["backbone"] == b)].copy()
        g["bin"] = pd.qcut(g["delta"], q=N_BINS, duplicates="drop")
        losses = sorted(dict.fromkeys(g["loss"]), key=lambda lbl: (lbl != "MSE", lbl))
        bins = list(g["bin"].cat.categories)
        width = 0.8 / len(losses)
        for k, loss in enumerate(losses):
            data = [g[(g["loss"] == loss) & (g["bin"] == bn)]["distance"].to_numpy() for bn in bins]
            pos = np.arange(len(bins)) + (k - (len(losses) - 1) / 2) * width
            keep = [i for i, d in enumerate(data) if len(d)]  # a loss may have no pair in a bin
            bp = ax.boxplot([data[i] for i in keep], positions=pos[keep], widths=width * 0.9,
                            patch_artist=True, showfliers=False)
            for patch in bp["boxes"]:
                patch.set_facecolor(f"C{k}")
                patch.set_alpha(0.6)
            ax.plot([], [], color=f"C{k}", lw=6, alpha=0.6, label=loss)
        ax.set_xticks(np.arange(len(bins)))
        ax.set_xticklabels([f"{_num(max(bn.left, 0))}–{_num(bn.right)}" for bn in bins], rotation=20)
        ax.set_xlabel(f"|Δ {score_names.get(d, 'score')}| between two test scans")
        ax.set_ylabel("cosine distance of embeddings")
        ax.set_title(f"{DATASET_LABELS.get(d, d)}, {backbone_label(b)}")
        ax.legend(fontsize=8)
    return save_figure(fig, out_dir, "figure1")


def save_figure(fig, out_dir: Path, stem: str, bottom: float = 0.0) -> list[Path]:
    fig.tight_layout(rect=(0, bottom, 1, 1))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for p in paths:  # no creation date in the PDF, so a rebuild from the same records is byte-identical
        fig.savefig(p, dpi=130, metadata={"CreationDate": None} if p.suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def _band(ax, ref: pd.DataFrame, color: str, label: str) -> None:
    """A reference's mean (line) and 95 % CI (shaded) across the panel."""
    if not len(ref) or not ref["n"].iloc[0]:
        return
    r = ref.iloc[0]
    if not np.isnan(r.macro_f1_ci_lo):
        ax.axvspan(r.macro_f1_ci_lo, r.macro_f1_ci_hi, color=color, alpha=0.15, lw=0)
    ax.axvline(r.macro_f1_mean, color=color, lw=1.2, label=label)


def effects_figure(summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``effects.png``/``.pdf``, a forest plot per dataset: left, each method row's macro-F1
    (mean, 95 % CI over seeds) between the floor (majority; the row's untrained encoder as a
    grey tick) and the ceiling (oracle), with the paper's value (×); right, each row's paired
    ΔF1 against MSE with its CI and the paper's Δ (×). [] when no method row has a number."""
    methods = summary[(summary["kind"] == "method") & (summary["n"] > 0)]
    if methods.empty:
        return []
    datasets = list(dict.fromkeys(methods["dataset"]))
    heights = [max(2, (methods["dataset"] == d).sum()) for d in datasets]
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 1.0 + 0.45 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for (ax_f1, ax_d), d in zip(axes, datasets):
        sub = methods[methods["dataset"] == d].reset_index(drop=True)
        refs = summary[(summary["dataset"] == d) & (summary["kind"] == "reference")]
        y = np.arange(len(sub))[::-1]
        labels = [f"{r.model} · {r.loss_label}" for r in sub.itertuples()]
        _band(ax_f1, refs[refs["loss"] == "majority"], "0.45", "majority (floor)")
        _band(ax_f1, refs[refs["loss"] == "oracle"], "C2", "oracle (ceiling)")
        untrained = refs[refs["loss"] == "untrained"].set_index("backbone")["macro_f1_mean"]
        ax_f1.scatter([untrained.get(b, np.nan) for b in sub["backbone"]], y, marker="|", s=250, color="0.3",
                      label="untrained encoder (floor)", zorder=3)
        err = np.abs(np.vstack([sub["macro_f1_mean"] - sub["macro_f1_ci_lo"],
                                sub["macro_f1_ci_hi"] - sub["macro_f1_mean"]]))
        ax_f1.errorbar(sub["macro_f1_mean"], y, xerr=np.nan_to_num(err), fmt="o", color="C0", capsize=3,
                       label="ours (mean, 95 % CI)", zorder=4)
        ax_f1.scatter(sub["paper_f1"], y, marker="x", color="C3", s=50, label="paper", zorder=5)
        ax_f1.set_yticks(y, labels, fontsize=8)
        ax_f1.set_xlabel("macro-F1")
        ax_f1.set_title(f"{DATASET_LABELS.get(d, d)}: where each row sits", fontsize=10)
        eff = sub["macro_f1_vs_mse"]
        derr = np.abs(np.vstack([eff - sub["macro_f1_vs_mse_lo"], sub["macro_f1_vs_mse_hi"] - eff]))
        ax_d.axvline(0, color="0.5", lw=1)
        ax_d.errorbar(eff, y, xerr=np.nan_to_num(derr), fmt="o", color="C0", capsize=3, label="ours (95 % CI)")
        ax_d.scatter(sub["paper_f1_vs_mse"], y, marker="x", color="C3", s=50, label="paper", zorder=5)
        ax_d.set_yticks(y, [""] * len(y))
        ax_d.set_xlabel("ΔF1 vs MSE of the same backbone (paired by seed)")
        ax_d.set_title("effect against MSE", fontsize=10)
        for ax in (ax_f1, ax_d):
            ax.set_ylim(-0.7, len(sub) - 0.3)
            ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    return save_figure(fig, out_dir, "effects", bottom=0.5 / fig.get_figheight())


def curves_figure(records: list, out_dir: Path) -> list[Path]:
    """``curves.png``/``.pdf``: per (dataset, backbone), each loss's training loss, its MSE
    and contrastive parts and the validation MSE per epoch (mean and min–max band over
    seeds). [] when no record has a pretraining history (reference rows have none)."""
    frames = [pd.DataFrame(rec.pretrain.history).assign(dataset=rec.dataset, backbone=rec.backbone,
                                                           loss_name=loss_label(rec.row), seed=rec.seed)
              for rec in records if rec.finished and rec.pretrain and rec.pretrain.history]
    if not frames:
        return []
    df = pd.concat(frames, ignore_index=True)
    panels = list(dict.fromkeys(zip(df["dataset"], df["backbone"])))
    parts = [("loss", "training loss (total)"), ("mse", "training MSE"), ("contrastive", "contrastive term"),
             ("val_mse", "validation MSE")]
    fig, axes = plt.subplots(len(panels), len(parts), figsize=(4 * len(parts), 2.9 * len(panels)), squeeze=False)
    for row_axes, (d, b) in zip(axes, panels):
        sub = df[(df["dataset"] == d) & (df["backbone"] == b)]
        for ax, (col, title) in zip(row_axes, parts):
            for k, (loss, g) in enumerate(sub.groupby("loss_name", sort=False)):
                stats = g.groupby("epoch")[col].agg(["mean", "min", "max"])
                ax.plot(stats.index + 1, stats["mean"], color=f"C{k}", label=loss)
                ax.fill_between(stats.index + 1, stats["min"], stats["max"], color=f"C{k}", alpha=0.2, lw=0)
            ax.set_title(f"{DATASET_LABELS.get(d, d)}, {backbone_label(b)}: {title}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        row_axes[0].legend(fontsize=7)
    return save_figure(fig, out_dir, "curves")
