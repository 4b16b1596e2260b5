"""Tables from run records: tidy CSV plus Markdown and LaTeX laid out like the paper.

Every cell is mean ± std over seeds (n shown); the paper's published numbers sit in
adjacent columns; the best method mean in each column is bold (booktabs in LaTeX).
Reference rows (:mod:`bench.references`) are marked "(ref.)" and never bold. The Markdown
and CSV add the evidence: the 95 % interval of each row's mean, its share of the headroom
between the untrained encoder and the oracle, its paired effect against MSE with interval,
P(row > MSE) and the verdict against the paper's effect, and the minimal detectable effect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.grid import Row
from bench import losses, similarity
from bench.paper import published
from bench.records import RunRecord
from bench.references import ANY, REFERENCE_LABELS, is_reference
from bench.stats import bootstrap_ci, mean_ci, minimal_detectable_effect, paired_effect, significance, verdict

METRICS = ("accuracy", "macro_f1", "weighted_f1")
DATASET_LABELS = {"lus": "LUS", "adni": "ADNI"}


def backbone_label(name: str) -> str:
    import backbones
    if name == ANY:
        return "–"
    try:
        return backbones.backbone_info(name).paper_label or name
    except KeyError:
        return name


def loss_label(row: Row) -> str:
    if is_reference(row.loss):
        return REFERENCE_LABELS[row.loss]
    try:
        label, sim = losses.label(row.loss), similarity.label(row.sim)
    except KeyError:  # records of a plugin that is no longer installed
        label, sim = f"MSE + {row.loss}", row.sim
    return f"{label} ({sim})" if row.loss != "mse" and row.sim != "cos" else label


def _headroom(f1: float, untrained: float, oracle: float, oracle_lo: float) -> float:
    """(F1 − untrained) / (oracle − untrained): 0 = what an untrained encoder gets, 1 = the
    oracle. Left out where the oracle's 95 % interval (``oracle_lo``) reaches down to the
    untrained encoder: a share of a gap not told apart from zero is noise (label noise 0.3
    puts the oracle 0.007 above the untrained TSM, which would make a share of 8.7)."""
    gap = oracle - untrained
    if not (np.isfinite(gap) and gap > 0) or (np.isfinite(oracle_lo) and oracle_lo <= untrained):
        return np.nan
    return (f1 - untrained) / gap


def summarize(records: list[RunRecord], rows: list[Row],
              code_version: Callable[[Row], str] | None = None) -> pd.DataFrame:
    """One line per table row (in grid order): n seeds, mean/std of each metric, the 95 %
    t-interval of the mean over seeds, the share of headroom, the paired effect against
    the MSE row of the same backbone and dataset (with the paper's effect and a verdict),
    the minimal detectable effect of the dataset's design, the paper's numbers, failed
    cells, and whether the row holds cells of result-affecting code other than
    ``code_version(row)`` — the code a cell of that row runs now, plugins included — (``stale``)
    or of several code versions."""
    by_row: dict[Row, list[RunRecord]] = {}
    for rec in records:
        by_row.setdefault(rec.row, []).append(rec)

    def finished(row: Row) -> list[RunRecord]:
        return sorted((r for r in by_row.get(row, []) if r.finished), key=lambda r: r.seed)

    def mean_f1(row: Row) -> float:
        vals = [r.metric("macro_f1") for r in finished(row)]
        return float(np.mean(vals)) if vals else np.nan

    def lower_f1(row: Row) -> float:
        return mean_ci([r.metric("macro_f1") for r in finished(row)])[0]

    out = []
    for row in rows:
        all_recs, recs = by_row.get(row, []), finished(row)
        versions = sorted({r.code_version for r in all_recs})
        line = {"dataset": row.dataset, "backbone": row.backbone, "loss": row.loss, "sim": row.sim,
                "kind": "reference" if is_reference(row.loss) else "method",
                "model": backbone_label(row.backbone), "loss_label": loss_label(row), "n": len(recs),
                "seeds": " ".join(str(r.seed) for r in recs),
                "n_failed": sum(not r.finished for r in all_recs),
                "code_versions": " ".join(versions),
                "stale": bool(code_version) and any(v != code_version(row) for v in versions) or len(versions) > 1}
        for m in METRICS:
            vals = np.array([r.metric(m) for r in recs], dtype=float)
            line[f"{m}_mean"] = vals.mean() if len(vals) else np.nan
            line[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else np.nan
        for m in ("accuracy", "macro_f1"):
            line[f"{m}_ci_lo"], line[f"{m}_ci_hi"] = mean_ci([r.metric(m) for r in recs])
        rho = np.array([r.metric("spearman_within") for r in recs], dtype=float)
        line["spearman_mean"] = np.nanmean(rho) if np.isfinite(rho).any() else np.nan
        line["spearman_std"] = np.nanstd(rho, ddof=1) if np.isfinite(rho).sum() > 1 else np.nan
        oracle = Row(row.dataset, ANY, "oracle")
        line["headroom"] = np.nan if line["kind"] == "reference" else _headroom(
            line["macro_f1_mean"], mean_f1(Row(row.dataset, row.backbone, "untrained")), mean_f1(oracle),
            lower_f1(oracle))
        mse_row = Row(row.dataset, row.backbone, "mse", "cos")
        compare = line["kind"] == "method" and row != mse_row
        for m, key in (("accuracy", "accuracy_vs_mse"), ("macro_f1", "macro_f1_vs_mse")):
            eff = paired_effect({r.seed: r.metric(m) for r in recs},
                                {r.seed: r.metric(m) for r in finished(mse_row)}) if compare else {}
            for part in ("mean", "lo", "hi", "sd", "p_value"):
                line[key + ("" if part == "mean" else f"_{part}")] = eff.get(part, np.nan)
            line["n_paired"] = eff.get("n", 0)
            if m == "macro_f1":
                line["p_improve"] = eff.get("p_improve", np.nan)
        paper = published(row.dataset, row.backbone, row.loss, row.sim)
        line["paper_accuracy"], line["paper_f1"] = paper if paper else (np.nan, np.nan)
        paper_mse = published(row.dataset, row.backbone, "mse", "cos")
        line["paper_f1_vs_mse"] = paper[1] - paper_mse[1] if compare and paper and paper_mse else np.nan
        line["verdict"] = verdict(line["macro_f1_vs_mse_lo"], line["macro_f1_vs_mse_hi"], line["paper_f1_vs_mse"])
        line["significance"] = significance(line["macro_f1_vs_mse_lo"], line["macro_f1_vs_mse_hi"])
        out.append(line)
    summary = pd.DataFrame(out)
    summary["mde_f1"] = np.nan
    for d, sub in summary.groupby("dataset", sort=False):
        effects = sub.dropna(subset=["macro_f1_vs_mse_sd"])
        if len(effects):
            pooled_sd = float(np.sqrt(np.mean(effects["macro_f1_vs_mse_sd"] ** 2)))
            summary.loc[effects.index, "mde_f1"] = minimal_detectable_effect(pooled_sd, int(effects["n_paired"].min()))
    return summary


@dataclass
class Cell:
    text: str
    bold: bool = False


def _fmt(mean: float, std: float, digits: int, n: int, failed: int = 0) -> str:
    if n == 0 or np.isnan(mean):
        return "failed" if failed else "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def number(v: float, spec: str = ".3f") -> str:
    """``v`` formatted by ``spec``, or "–" where there is none (NaN)."""
    return "–" if pd.isna(v) else format(v, spec)


def signed_interval(mean: float, lo: float, hi: float) -> str:
    """"+0.039 [−0.087, +0.164]" (an effect or change with its interval), "–" without one."""
    if np.isnan(mean):
        return "–"
    return f"{mean:+.3f}" + ("" if np.isnan(lo) else f" [{lo:+.3f}, {hi:+.3f}]")


def _effect(r) -> str:
    return signed_interval(r.macro_f1_vs_mse, r.macro_f1_vs_mse_lo, r.macro_f1_vs_mse_hi)


def _verdict(r) -> str:
    parts = [v for v in (r.significance, r.verdict) if isinstance(v, str) and v]
    return "; ".join(parts) or "–"


def _metric_cells(sub: pd.DataFrame, extended: bool) -> list[list[Cell]]:
    """Per row: ours acc, ours macro-F1, paper acc, paper F1 (best method bold); extended
    adds n, the interval of the mean, the headroom share, the effect against MSE with its
    interval, P(row > MSE), the paper's effect and the verdict, and Figure 1's Spearman rho."""
    methods = sub[sub["kind"] == "method"]
    best_acc, best_f1 = methods["accuracy_mean"].max(), methods["macro_f1_mean"].max()
    cells = []
    for _, r in sub.iterrows():
        failed = int(r.n_failed) if not pd.isna(r.n_failed) else 0
        mark = " †" if r.stale == True else ""  # noqa: E712 (NaN in reindexed rows is not stale)
        method = r.kind == "method"
        line = [
            Cell(_fmt(r.accuracy_mean, r.accuracy_std, 2, r.n, failed), method and bool(r.n) and r.accuracy_mean == best_acc),
            Cell(_fmt(r.macro_f1_mean, r.macro_f1_std, 3, r.n, failed) + mark,
                 method and bool(r.n) and r.macro_f1_mean == best_f1),
            Cell(number(r.paper_accuracy, ".2f")), Cell(number(r.paper_f1)),
        ]
        if extended:
            ci = "–" if np.isnan(r.macro_f1_ci_lo) else f"[{r.macro_f1_ci_lo:.3f}, {r.macro_f1_ci_hi:.3f}]"
            n = f"{int(r.n)}" + (f" (+{failed} failed)" if failed else "")
            line += [Cell(n), Cell(ci), Cell(number(r.headroom, ".2f")), Cell(_effect(r)),
                     Cell(number(r.p_improve, ".2f")), Cell(number(r.paper_f1_vs_mse, "+.3f")),
                     Cell(_verdict(r)), Cell(_fmt(r.spearman_mean, r.spearman_std, 2, r.n))]
        cells.append(line)
    return cells


METRIC_HEADERS = ["Acc. (ours)", "F1 (ours)", "Acc. (paper)", "F1 (paper)"]
EXTENDED_HEADERS = ["n", "F1 95% CI", "Headroom", "ΔF1 vs MSE [95% CI]", "P(>MSE)", "Paper ΔF1", "Verdict",
                    "ρ(dist, Δscore)"]


def layout(summary: pd.DataFrame, grid: str, extended: bool = False
           ) -> tuple[list[tuple[str, int]], list[str], list[list[Cell]]]:
    """(column groups, column names, rows); the first group spans the text columns. Table 3
    (one backbone per dataset): losses down, datasets across; otherwise one line per
    (dataset,) model, loss."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    headers = METRIC_HEADERS + (EXTENDED_HEADERS if extended else [])
    encoders = summary[summary["backbone"] != ANY]
    if grid == "table3" and encoders.groupby("dataset")["backbone"].nunique().max() == 1:
        losses = list(dict.fromkeys(summary["loss_label"]))
        per_ds = {d: summary[summary["dataset"] == d].set_index("loss_label").reindex(losses) for d in datasets}
        per_ds = {d: s.assign(n=s["n"].fillna(0).astype(int), kind=s["kind"].fillna("method"))
                  for d, s in per_ds.items()}
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
    out = [r"% learner-bench table: needs \usepackage{booktabs,graphicx}; shrunk to the text width if wider",
           r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}",
           r"\setbox0=\hbox{%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if rules:  # a group row only where some group has a title
        out += [" & ".join(head_groups) + r" \\", " ".join(rules)]
    out += [" & ".join(_tex_escape(c) for c in columns) + r" \\", r"\midrule"]
    out += [" & ".join(cell(c) for c in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}}%",
            r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\box0}\else\box0\fi", r"\end{table}"]
    return "\n".join(out) + "\n"


MD_LEGEND = """
Acc. in %, F1 = macro-F1 (the paper does not say which F1; weighted-F1 is in the CSV); mean ± std over
seeds, n = seeds. F1 95% CI = Student-t interval of the mean over seeds (each seed is a new patient split
and a new initialisation). Rows marked (ref.) are references, not methods, on the same splits and seeds:
Majority = the most frequent train-pair label for every test pair; Untrained encoder = the backbone at
its random initialisation without pretraining, through the same classifier; Oracle severity = the same
classifier given the severity each synthetic scan was rendered with (the ceiling label noise leaves).
Headroom = (F1 − untrained) / (oracle − untrained). ΔF1 vs MSE = macro-F1 minus that of the MSE row of
the same backbone, paired by seed, with its 95 % t-interval; P(>MSE) = share of seeds where the row beats
MSE; Paper ΔF1 = the same difference in the paper; Verdict: significant if our interval excludes 0, and
compatible with the paper if the paper's ΔF1 lies inside our interval (else smaller / larger than the
paper's). ρ(dist, Δscore) = Spearman correlation between the cosine distance of two test-scan embeddings
of the same patient and the absolute difference of their scores (Figure 1 in one number).
failed = every seed of the row failed (its records say why).
"""


def design_notes(summary: pd.DataFrame) -> list[str]:
    """What each dataset's design can detect, and where an oracle is missing."""
    lines = []
    for d, sub in summary.groupby("dataset", sort=False):
        name = DATASET_LABELS.get(d, d)
        mde = sub["mde_f1"].dropna()
        if len(mde):
            eff = sub.dropna(subset=["macro_f1_vs_mse_sd"])
            lines.append(f"{name}: with n = {int(eff['n_paired'].min())} seeds and the observed paired spread "
                         f"(pooled sd of ΔF1 {np.sqrt(np.mean(eff['macro_f1_vs_mse_sd'] ** 2)):.3f}), a paired "
                         f"t-test detects a true ΔF1 of ±{mde.iloc[0]:.3f} with 80 % power at α = 0.05; "
                         "smaller effects can hide behind \"not significant\".")
        if not ((sub["loss"] == "oracle") & (sub["n"] > 0)).any() and (sub["kind"] == "reference").any():
            lines.append(f"{name}: no oracle row (the source has no latent severity, as real data do not).")
    return lines


STALE_NOTE = ("† made (partly) by result-affecting code other than the code that wrote this table, or by "
              "several code versions: rerun with --rerun-stale.")

CAPTIONS = {
    "table3": "Table 3 (reproduced): TSM, loss ablation on LUS and ADNI; mean ± std over seeds.",
    "table4": "Table 4 (reproduced): backbone × loss × similarity on LUS; mean ± std over seeds.",
}


def cell_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Tidy, one line per cell: its metrics and, for accuracy and macro-F1, a 95 % bootstrap
    interval over its test pairs that resamples test patients with all their pairs."""
    out = []
    for r in records:
        line = {"run_id": r.run_id, "dataset": r.dataset, "backbone": r.backbone, "loss": r.loss, "sim": r.sim,
                "kind": "reference" if is_reference(r.loss) else "method", "seed": r.seed, "status": r.status,
                **{m: r.metric(m) for m in (*METRICS, "spearman_within")},
                "test_pairs": len((r.test_pairs or {}).get("true", [])),
                "test_patients": len(set((r.test_pairs or {}).get("patient", []))),
                "code_version": r.code_version, "wall_seconds": r.timing.get("wall_seconds", np.nan),
                "error": r.error or ""}
        for m in ("accuracy", "macro_f1"):
            tp = r.test_pairs or {}
            line[f"{m}_ci_lo"], line[f"{m}_ci_hi"] = (
                bootstrap_ci(tp["true"], tp["pred"], m, clusters=tp["patient"], seed=r.seed)
                if r.finished and tp.get("true") else (np.nan, np.nan))
        out.append(line)
    return pd.DataFrame(out)


def write_tables(summary: pd.DataFrame, records: list[RunRecord], grid: str, out_dir: Path) -> dict[str, Path]:
    """``<out>/<grid>.csv|.md|.tex`` from ``summary`` (:func:`summarize`) and the per-cell
    ``cells.csv`` from ``records``; returns the paths."""
    caption = CAPTIONS.get(grid, f"Grid {grid}: mean ± std over seeds.")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{grid}.{ext}" for ext in ("csv", "md", "tex")}
    paths["cells"] = out_dir / "cells.csv"
    summary.to_csv(paths["csv"], index=False, float_format="%.4f")
    cell_frame(records).to_csv(paths["cells"], index=False, float_format="%.4f")
    stale = bool(summary["stale"].any()) if len(summary) else False
    notes = design_notes(summary) + ([STALE_NOTE] if stale else [])
    paths["md"].write_text(f"{caption}\n\n" + to_markdown(*layout(summary, grid, extended=True)) + MD_LEGEND
                           + "".join(f"\n{n}\n" for n in notes))
    paths["tex"].write_text(to_latex(*layout(summary, grid), caption + (f" {STALE_NOTE}" if stale else "")))
    return paths
