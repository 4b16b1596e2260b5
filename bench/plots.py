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
from bench.distances import pairwise_distances  # noqa: E402
from bench.tables import DATASET_LABELS, backbone_label, loss_label  # noqa: E402

N_BINS = 5
MIN_PAIRS = 10  # per loss and panel; fewer cannot show a distribution


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
        pw = pairwise_distances(emb)
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
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "figure1.png", out_dir / "figure1.pdf"]
    for p in paths:  # no creation date in the PDF, so a rebuild from the same records is byte-identical
        fig.savefig(p, dpi=130, metadata={"CreationDate": None} if p.suffix == ".pdf" else None)
    plt.close(fig)
    return paths
