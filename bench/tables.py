"""Tables from run records: tidy CSV plus Markdown and LaTeX laid out like the paper.

Every cell is mean ± std over seeds (n shown); the paper's published numbers sit in
adjacent columns; in LaTeX the best of our means in each column is bold (booktabs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.grid import Row
from bench.losses import LOSS_LABELS, SIM_LABELS
from bench.paper import published
from bench.records import RunRecord
from bench.stats import mean_ci, paired_comparison

METRICS = ("accuracy", "macro_f1", "weighted_f1")
DATASET_LABELS = {"lus": "LUS", "adni": "ADNI"}


def backbone_label(name: str) -> str:
    import backbones
    try:
        return backbones.backbone_info(name).paper_label or name
    except KeyError:
        return name


def loss_label(row: Row) -> str:
    label = LOSS_LABELS.get(row.loss, row.loss)
    return f"{label} ({SIM_LABELS[row.sim]})" if row.loss != "mse" and row.sim != "cos" else label


def summarize(records: list[RunRecord], rows: list[Row], code_version: str | None = None) -> pd.DataFrame:
    """One line per table row (in grid order): n seeds, mean/std of each metric, the 95 %
    t-interval of the mean over seeds, the paired comparison with MSE, the paper's numbers,
    failed cells, and whether the row holds cells of result-affecting code other than
    ``code_version`` (``stale``) or of several code versions."""
    by_row: dict[Row, list[RunRecord]] = {}
    for rec in records:
        by_row.setdefault(rec.row, []).append(rec)
    out = []
    for row in rows:
        all_recs = by_row.get(row, [])
        recs = sorted((r for r in all_recs if r.finished), key=lambda r: r.seed)
        versions = sorted({r.code_version for r in all_recs})
        line = {"dataset": row.dataset, "backbone": row.backbone, "loss": row.loss, "sim": row.sim,
                "model": backbone_label(row.backbone), "loss_label": loss_label(row), "n": len(recs),
                "seeds": " ".join(str(r.seed) for r in recs),
                "n_failed": sum(not r.finished for r in all_recs),
                "code_versions": " ".join(versions),
                "stale": bool(code_version) and any(v != code_version for v in versions) or len(versions) > 1}
        for m in METRICS:
            vals = np.array([r.metric(m) for r in recs], dtype=float)
            line[f"{m}_mean"] = vals.mean() if len(vals) else np.nan
            line[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else np.nan
        for m in ("accuracy", "macro_f1"):
            line[f"{m}_ci_lo"], line[f"{m}_ci_hi"] = mean_ci([r.metric(m) for r in recs])
        rho = np.array([r.metric("spearman_within") for r in recs], dtype=float)
        line["spearman_mean"] = np.nanmean(rho) if np.isfinite(rho).any() else np.nan
        line["spearman_std"] = np.nanstd(rho, ddof=1) if np.isfinite(rho).sum() > 1 else np.nan
        mse = [r for r in by_row.get(Row(row.dataset, row.backbone, "mse", "cos"), []) if r.finished]
        for m in ("accuracy", "macro_f1"):
            cmp = paired_comparison({r.seed: r.metric(m) for r in recs},
                                    {r.seed: r.metric(m) for r in mse}) if row.loss != "mse" else {}
            line[f"{m}_vs_mse"] = cmp.get("mean_diff", np.nan)
            line[f"{m}_vs_mse_std"] = cmp.get("std_diff", np.nan)
            line[f"{m}_vs_mse_p"] = cmp.get("p_value", np.nan)
            line["n_paired"] = cmp.get("n", 0)
        paper = published(row.dataset, row.backbone, row.loss, row.sim)
        line["paper_accuracy"], line["paper_f1"] = paper if paper else (np.nan, np.nan)
        out.append(line)
    return pd.DataFrame(out)


@dataclass
class Cell:
    text: str
    bold: bool = False


def _fmt(mean: float, std: float, digits: int, n: int, failed: int = 0) -> str:
    if n == 0 or np.isnan(mean):
        return "failed" if failed else "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def _paper(v: float, digits: int) -> str:
    return "–" if np.isnan(v) else f"{v:.{digits}f}"


def _vs_mse(r) -> str:
    if np.isnan(r.macro_f1_vs_mse):
        return "–"
    sd = "" if np.isnan(r.macro_f1_vs_mse_std) else f" ± {r.macro_f1_vs_mse_std:.3f}"
    p = "" if np.isnan(r.macro_f1_vs_mse_p) else f", p={r.macro_f1_vs_mse_p:.2g}"
    return f"{r.macro_f1_vs_mse:+.3f}{sd} (n={r.n_paired}{p})"


def _metric_cells(sub: pd.DataFrame, extended: bool) -> list[list[Cell]]:
    """Per row: ours acc, ours macro-F1, paper acc, paper F1 (best of ours bold); extended
    adds n, the bootstrap interval, Figure 1's Spearman rho and the paired gain over MSE."""
    best_acc = sub["accuracy_mean"].max()
    best_f1 = sub["macro_f1_mean"].max()
    cells = []
    for _, r in sub.iterrows():
        failed = int(r.n_failed) if not pd.isna(r.n_failed) else 0
        mark = " †" if r.stale == True else ""  # noqa: E712 (NaN in reindexed rows is not stale)
        line = [
            Cell(_fmt(r.accuracy_mean, r.accuracy_std, 2, r.n, failed), bool(r.n) and r.accuracy_mean == best_acc),
            Cell(_fmt(r.macro_f1_mean, r.macro_f1_std, 3, r.n, failed) + mark,
                 bool(r.n) and r.macro_f1_mean == best_f1),
            Cell(_paper(r.paper_accuracy, 2)), Cell(_paper(r.paper_f1, 3)),
        ]
        if extended:
            ci = "–" if np.isnan(r.macro_f1_ci_lo) else f"[{r.macro_f1_ci_lo:.3f}, {r.macro_f1_ci_hi:.3f}]"
            n = f"{int(r.n)}" + (f" (+{failed} failed)" if failed else "")
            line += [Cell(n), Cell(ci), Cell(_fmt(r.spearman_mean, r.spearman_std, 2, r.n)), Cell(_vs_mse(r))]
        cells.append(line)
    return cells


METRIC_HEADERS = ["Acc. (ours)", "F1 (ours)", "Acc. (paper)", "F1 (paper)"]
EXTENDED_HEADERS = ["n", "F1 95% CI", "ρ(dist, Δscore)", "ΔF1 vs MSE"]


def layout(summary: pd.DataFrame, grid: str, extended: bool = False
           ) -> tuple[list[tuple[str, int]], list[str], list[list[Cell]]]:
    """(column groups, column names, rows); the first group spans the text columns. Table 3
    (one backbone per dataset): losses down, datasets across; otherwise one line per
    (dataset,) model, loss."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    headers = METRIC_HEADERS + (EXTENDED_HEADERS if extended else [])
    if grid == "table3" and summary.groupby("dataset")["backbone"].nunique().max() == 1:
        losses = list(dict.fromkeys(summary["loss_label"]))
        per_ds = {d: summary[summary["dataset"] == d].set_index("loss_label").reindex(losses) for d in datasets}
        per_ds = {d: s.assign(n=s["n"].fillna(0).astype(int)) for d, s in per_ds.items()}
        blocks = {d: _metric_cells(s, extended) for d, s in per_ds.items()}
        rows = [[Cell(loss)] + sum((blocks[d][i] for d in datasets), []) for i, loss in enumerate(losses)]
        groups = [("", 1)] + [(DATASET_LABELS.get(d, d), len(headers)) for d in datasets]
        return groups, ["Loss"] + headers * len(datasets), rows
    lead = ["Dataset"] if len(datasets) > 1 else []
    rows = []
    for d in datasets:
        sub = summary[summary["dataset"] == d]
        for (_, r), cells in zip(sub.iterrows(), _metric_cells(sub, extended)):
            rows.append([Cell(DATASET_LABELS.get(d, d))] * len(lead) + [Cell(r.model), Cell(r.loss_label)] + cells)
    lead += ["Model", "Loss"]
    return [("", len(lead)), ("", len(headers))], lead + headers, rows


def to_markdown(groups, columns, rows) -> str:
    """One header line: a column group's title (e.g. the dataset) prefixes its columns."""
    def cell(c: Cell) -> str:
        return f"**{c.text}**" if c.bold else c.text
    titles = [title for title, span in groups for _ in range(span)]
    columns = [f"{t} {c}" if t else c for t, c in zip(titles, columns)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    return s.replace("±", r"$\pm$").replace("†", r"$^\dagger$").replace("%", r"\%").replace("_", r"\_").replace("–", "--")


def to_latex(groups, columns, rows, caption: str) -> str:
    def cell(c: Cell) -> str:
        t = _tex_escape(c.text)
        return rf"\textbf{{{t}}}" if c.bold else t
    spec = "l" * groups[0][1] + "c" * (len(columns) - groups[0][1])
    head_groups, rules, col = [], [], 1
    for title, span in groups:
        head_groups.append(rf"\multicolumn{{{span}}}{{c}}{{{_tex_escape(title)}}}" if title else
                           " & ".join([""] * span))
        if title:
            rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
        col += span
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if rules:  # a group row only where some group has a title
        out += [" & ".join(head_groups) + r" \\", " ".join(rules)]
    out += [" & ".join(_tex_escape(c) for c in columns) + r" \\", r"\midrule"]
    out += [" & ".join(cell(c) for c in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


MD_LEGEND = """
Acc. in %, F1 = macro-F1 (the paper does not say which F1; weighted-F1 is in the CSV).
n = seeds; F1 95% CI = t-interval of the mean macro-F1 over seeds;
ρ(dist, Δscore) = Spearman correlation between the cosine distance of two test-scan embeddings of
the same patient and the absolute difference of their scores (Figure 1 in one number);
ΔF1 vs MSE = macro-F1 minus that of the MSE row of the same backbone, paired by seed
(mean ± std, paired t-test p). failed = every seed of the row failed (its records say why).
"""
STALE_NOTE = ("† made (partly) by result-affecting code other than the code that wrote this table, or by "
              "several code versions: rerun with --rerun-stale.")

CAPTIONS = {
    "table3": "Table 3 (reproduced): TSM, loss ablation on LUS and ADNI; mean ± std over seeds.",
    "table4": "Table 4 (reproduced): backbone × loss × similarity on LUS; mean ± std over seeds.",
}


def write_tables(records: list[RunRecord], rows: list[Row], grid: str, out_dir: Path,
                 code_version: str | None = None) -> dict[str, Path]:
    """``<out>/<grid>.csv|.md|.tex``; returns the paths."""
    summary = summarize(records, rows, code_version)
    caption = CAPTIONS.get(grid, f"Grid {grid}: mean ± std over seeds.")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{grid}.{ext}" for ext in ("csv", "md", "tex")}
    summary.to_csv(paths["csv"], index=False, float_format="%.4f")
    stale = bool(summary["stale"].any()) if len(summary) else False
    paths["md"].write_text(f"{caption}\n\n" + to_markdown(*layout(summary, grid, extended=True)) + MD_LEGEND
                           + (f"{STALE_NOTE}\n" if stale else ""))
    paths["tex"].write_text(to_latex(*layout(summary, grid), caption + (f" {STALE_NOTE}" if stale else "")))
    return paths
