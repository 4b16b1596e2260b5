"""``results/<grid>/report.md``: what reproduced and what did not, at a glance."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.grid import Row
from bench.paper import published


def _direction_lines(summary: pd.DataFrame) -> list[str]:
    """For each row with a paper number and an MSE baseline: the paper's gain over MSE vs ours."""
    lines = []
    for _, r in summary.iterrows():
        if r.loss == "mse" or r.n == 0:
            continue
        paper_row = published(r.dataset, r.backbone, r.loss, r.sim)
        paper_mse = published(r.dataset, r.backbone, "mse", "cos")
        ours = r.macro_f1_vs_mse
        if paper_row and paper_mse and not np.isnan(ours):
            paper_gain = paper_row[1] - paper_mse[1]
            same = np.sign(paper_gain) == np.sign(ours)
            pv = r.macro_f1_vs_mse_p
            p = "" if np.isnan(pv) else f", paired t-test p = {pv:.2g}"
            verdict = ("same sign as the paper" if same else "opposite sign to the paper") + (
                "" if np.isnan(pv) else (", significant at 0.05" if pv < 0.05 else ", not significant at 0.05"))
            lines.append(f"- {r.dataset.upper()} {r.model} {r.loss_label}: paper F1 gain over MSE "
                         f"{paper_gain:+.3f}; ours {ours:+.3f} ± {0 if np.isnan(r.macro_f1_vs_mse_std) else r.macro_f1_vs_mse_std:.3f} "
                         f"(n = {r.n_paired}{p}): {verdict}.")
        elif paper_row:
            lines.append(f"- {r.dataset.upper()} {r.model} {r.loss_label}: paper {paper_row[0]:.2f} % / F1 "
                         f"{paper_row[1]:.3f}; ours {r.accuracy_mean:.2f} % / F1 {r.macro_f1_mean:.3f} "
                         f"(no MSE baseline of this backbone in this grid).")
    return lines


def _cost_lines(records: list[dict]) -> list[str]:
    """Mean cost per cell of each grid row, so a reader can budget a rerun (e.g. per backbone)."""
    if not records:
        return ["No cell has finished yet."]
    records = [r for r in records if r.finished]
    if not records:
        return ["No cell has finished yet."]
    frame = pd.DataFrame([{"dataset": r.dataset.upper(), "backbone": r.backbone, "loss": r.loss,
                           "sim": r.sim, "device": r.device, **r.timing} for r in records])
    cost = (frame.groupby(["dataset", "backbone", "loss", "sim", "device"], sort=False)
            .agg(cells=("wall_seconds", "size"), wall=("wall_seconds", "mean"),
                 pretrain=("pretrain_seconds", "mean"), clips=("train_clips_per_second", "mean"),
                 memory=("peak_memory_mb", "max"))
            .reset_index())
    lines = ["| Dataset | Backbone | Loss | Sim. | Device | Cells | Wall s / cell | Pretraining s / cell "
             "| Training clips/s | Peak memory MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c.dataset} | {c.backbone} | {c.loss} | {c.sim} | {c.device} | {c.cells} | {c.wall:.1f} "
              f"| {c.pretrain:.1f} | {c.clips:.1f} | {c.memory:.0f} |" for c in cost.itertuples()]
    return lines


def write_report(grid: str, out_dir: Path, summary: pd.DataFrame, records: list[dict], expected: int,
                 table_md: Path, figure: list[Path]) -> Path:
    finished = [r for r in records if r.finished]
    first = finished[0] if finished else None
    settings = first.settings if first else {}
    wall = sum(r.timing["wall_seconds"] for r in finished)
    devices = sorted({r.device for r in finished})
    lines = [f"# learner-bench report: `{grid}`", "",
             f"Command: `{' '.join(shlex.quote(a) for a in ['python', 'run_all.py'] + sys.argv[1:])}`  ",
             f"Cells finished: {len(finished)} of {expected}"
             f"{f' ({len(records) - len(finished)} failed)' if len(records) > len(finished) else ''}; summed cell wall time {wall / 60:.1f} min on "
             f"{', '.join(devices) or '–'}.  ",
             f"Git commit: {sorted({r.git_commit for r in finished}) or '–'}; result-affecting code: "
             f"{sorted({r.code_version for r in finished}) or '–'}", "",
             "## Tables", "", table_md.read_text(), "",
             "## Does the paper's direction reproduce?", "",
             "The paper's claim is that adding a contrastive term to MSE pretraining improves the "
             "downstream F1. Per row, its gain over MSE beside ours (macro-F1, paired by seed):", ""]
    lines += _direction_lines(summary) or ["- no row of this grid has both a paper number and an MSE baseline."]
    if figure:
        lines += ["", "## Figure 1", "", f"![Figure 1]({figure[0].name})", "",
                  "Cosine distance between embeddings of two test scans against their absolute score "
                  "difference (all pairs of test scans, pooled over seeds)."]
    lines += ["", "## Cost per cell", "", *_cost_lines(records), "",
              "Wall = the whole cell (data, pretraining, embedding, classifier); clips/s counts "
              "pretraining steps only."]
    lines += ["", "## Settings", "", "```", f"preset: {settings.get('preset')}",
              f"numerics: {sorted({str(r.numerics) for r in finished})}",
              f"data sources: {sorted({r.data['source'] for r in finished})}",
              f"pretrained: {sorted({r.pretrained for r in finished})}", "```", "",
              "## Library versions", "", "```", str(first.versions if first else {}), "```", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
