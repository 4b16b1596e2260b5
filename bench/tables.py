"""Tables from run records: tidy CSV plus Markdown and LaTeX laid out like the paper.

Every cell is mean ± std over seeds (n shown); the paper's published numbers sit beside
ours; the best method mean in each column is bold (booktabs in LaTeX). Reference rows
(:mod:`bench.references`) are marked "(ref.)" and never bold. The evidence is a second
table per dataset (Markdown; one effects table in LaTeX): the 95 % interval of each row's
mean, its share of the headroom between the untrained encoder and the oracle, its paired
effect against MSE with interval, raw and Holm-adjusted p, P(row > MSE) and the verdict,
and notes on what the design detects (:mod:`bench.power`). The CSV holds every number of
every row, one line per row.
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
from bench.power import (FEW_PAIRS, PLANNED_TEST_PATIENTS, TARGETS, class_counts, cv_extra_variance, folds_of,
                         pooled_sd, power_plan, shared_cohort_variance, shared_part)
from bench.records import RunRecord
from bench.grid import ANY, REFERENCE_LABELS, is_reference
from bench.stats import (bootstrap_ci, corrected_paired_effect, cv_mean_ci, holm, mean_ci,
                         minimal_detectable_effect, paired_effect, verdict)

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
    oracle. Left out where the oracle's 95 % interval over seeds (``oracle_lo``; without a
    shared cohort's variance, which moves the untrained encoder alike) reaches down to the
    untrained encoder: a share of a gap not told apart from zero is noise (label noise 0.3
    puts the oracle 0.007 above the untrained TSM, which would make a share of 8.7)."""
    gap = oracle - untrained
    if not (np.isfinite(gap) and gap > 0) or (np.isfinite(oracle_lo) and oracle_lo <= untrained):
        return np.nan
    return (f1 - untrained) / gap


class _Cells:
    """A table's records by row; ``finished(row)`` sorted by seed (and fold)."""

    def __init__(self, records: list[RunRecord]):
        self.by_row: dict[Row, list[RunRecord]] = {}
        for rec in records:
            self.by_row.setdefault(rec.row, []).append(rec)

    def all(self, row: Row) -> list[RunRecord]:
        return self.by_row.get(row, [])

    def finished(self, row: Row) -> list[RunRecord]:
        return sorted((r for r in self.all(row) if r.finished), key=lambda r: (r.seed, _fold(r) or 0))

    def f1(self, row: Row) -> list[float]:
        return [r.metric("macro_f1") for r in self.finished(row)]


def _fold(rec: RunRecord):
    """The record's cross-validation fold, None when the design has none (seeds only)."""
    return getattr(rec, "fold", None)


def vs_mse(recs: list[RunRecord], base: list[RunRecord], metric: str) -> dict:
    """A row's paired effect against its MSE row (:mod:`bench.stats` keys). Records without a
    ``fold``: paired t over seeds, plus the variance of a test cohort all seeds share. Records
    with one (repeated K-fold cross-validation, seed = repeat): paired by (repeat, fold), with
    the corrected resampled t for overlapping training sets, test fraction 1/K."""
    def by_key(rs):
        return {(r.seed, _fold(r)): r.metric(metric) for r in rs}
    a, b = by_key(recs), by_key(base)
    folds = folds_of(recs)
    if not folds:
        return paired_effect(a, b, shared_var=shared_cohort_variance(recs, metric, base))
    keys = sorted(set(a) & set(b))
    return corrected_paired_effect([a[k] - b[k] for k in keys], test_fraction=1 / folds)


def _row_numbers(recs: list[RunRecord]) -> dict:
    """Mean, std and the 95 % t-interval of the mean of each metric over the row's cells (with a
    shared held-out cohort's variance, :func:`bench.power.shared_cohort_variance`). Cross-
    validated cells: the mean of each repeat's folds, then of the repeats; the std over all folds;
    the interval by the corrected resampled t (:func:`bench.stats.cv_mean_ci`)."""
    line, folds = {}, folds_of(recs)
    for m in METRICS:
        vals = np.array([r.metric(m) for r in recs], dtype=float)
        line[f"{m}_mean"] = (vals.mean() if not folds else cv_mean_ci(vals, [r.seed for r in recs], folds)[0]) \
            if len(vals) else np.nan
        line[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else np.nan
    for m in ("accuracy", "macro_f1"):
        vals = [r.metric(m) for r in recs]
        line[f"{m}_ci_lo"], line[f"{m}_ci_hi"] = mean_ci(vals, shared_var=shared_cohort_variance(recs, m)) \
            if not folds else cv_mean_ci(vals, [r.seed for r in recs], folds)[1:]
    rho = np.array([r.metric("spearman_within") for r in recs], dtype=float)
    line["spearman_mean"] = np.nanmean(rho) if np.isfinite(rho).any() else np.nan
    line["spearman_std"] = np.nanstd(rho, ddof=1) if np.isfinite(rho).sum() > 1 else np.nan
    return line


def _effects(row: Row, cells: _Cells, compare: bool) -> dict:
    """The row's paired effects on accuracy and macro-F1 against MSE, the paper's ΔF1 and the
    verdict of our interval against 0 and it (NaN / "" where the row is not compared)."""
    mse = cells.finished(Row(row.dataset, row.backbone, "mse", "cos"))
    effects = {m: vs_mse(cells.finished(row), mse, m) if compare else {} for m in ("accuracy", "macro_f1")}
    line = {}
    for m, eff in effects.items():
        for part in ("mean", "lo", "hi", "sd", "p_value", "shared_var"):
            line[f"{m}_vs_mse" + ("" if part == "mean" else f"_{part}")] = eff.get(part, np.nan)
    line["n_paired"] = effects["macro_f1"].get("n", 0)
    line["p_improve"] = effects["macro_f1"].get("p_improve", np.nan)
    paper, paper_mse = published(row.dataset, row.backbone, row.loss, row.sim), published(
        row.dataset, row.backbone, "mse", "cos")
    line["paper_accuracy"], line["paper_f1"] = paper if paper else (np.nan, np.nan)
    line["paper_f1_vs_mse"] = paper[1] - paper_mse[1] if compare and paper and paper_mse else np.nan
    line["verdict"] = verdict(line["macro_f1_vs_mse_lo"], line["macro_f1_vs_mse_hi"], line["paper_f1_vs_mse"],
                              line["n_paired"])
    return line


def _row_line(row: Row, cells: _Cells, stale: Callable[[RunRecord], bool] | None) -> dict:
    """Everything the table says about one row."""
    all_recs, recs = cells.all(row), cells.finished(row)
    versions = sorted({r.code_version for r in all_recs})
    kind = "reference" if is_reference(row.loss) else "method"
    line = {"dataset": row.dataset, "backbone": row.backbone, "loss": row.loss, "sim": row.sim, "kind": kind,
            "model": backbone_label(row.backbone), "loss_label": loss_label(row), "n": len(recs),
            "seeds": " ".join(str(r.seed) for r in recs), "n_failed": sum(not r.finished for r in all_recs),
            "code_versions": " ".join(versions),
            "stale": stale is not None and any(map(stale, all_recs)) or len(versions) > 1,
            **_row_numbers(recs)}
    oracle = Row(row.dataset, ANY, "oracle")
    line["headroom"] = np.nan if kind == "reference" else _headroom(
        line["macro_f1_mean"], _mean(cells.f1(Row(row.dataset, row.backbone, "untrained"))),
        _mean(cells.f1(oracle)), mean_ci(cells.f1(oracle))[0])
    compare = kind == "method" and row != Row(row.dataset, row.backbone, "mse", "cos")
    return {**line, **_effects(row, cells, compare)}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else np.nan


def summarize(records: list[RunRecord], rows: list[Row],
              stale: Callable[[RunRecord], bool] | None = None) -> pd.DataFrame:
    """One line per table row (in grid order): n seeds, mean/std of each metric, the 95 %
    t-interval of the mean over seeds (with a shared test cohort's variance), the share of
    headroom, the paired effect against the MSE row of the same backbone and dataset with its
    raw and Holm-adjusted p (the family: every ΔF1-vs-MSE comparison of the table), the
    paper's effect and the verdict, the minimal detectable effect of the dataset's design, the
    paper's numbers, failed cells, and whether the row holds a record that ``stale(record)`` says was made by other
    result-affecting code than its cell runs now (:func:`bench.cell.record_is_stale`), or
    cells of several code versions."""
    cells = _Cells(records)
    summary = pd.DataFrame([_row_line(row, cells, stale) for row in rows])
    summary.insert(summary.columns.get_loc("macro_f1_vs_mse_p_value") + 1, "macro_f1_vs_mse_p_holm",
                   holm(summary["macro_f1_vs_mse_p_value"]))
    summary["mde_f1"] = np.nan
    for d, sub in summary.groupby("dataset", sort=False):
        effects = sub.dropna(subset=["macro_f1_vs_mse_sd"])
        if len(effects):
            folds = folds_of([r for r in records if r.dataset == d])
            summary.loc[effects.index, "mde_f1"] = minimal_detectable_effect(
                pooled_sd(effects), int(effects["n_paired"].min()), extra_variance=cv_extra_variance(folds),
                shared_var=shared_part(effects))
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


def p_text(p: float) -> str:
    """A p-value: "<0.001" below that, three decimals above, "–" without one."""
    return "–" if pd.isna(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def _metric_cells(sub: pd.DataFrame) -> list[list[Cell]]:
    """Per row, as the paper lays it out: accuracy ours / paper, macro-F1 ours / paper (the
    best method mean bold; † on a stale row's F1)."""
    methods = sub[sub["kind"] == "method"]
    best_acc, best_f1 = methods["accuracy_mean"].max(), methods["macro_f1_mean"].max()
    cells = []
    for _, r in sub.iterrows():
        failed = int(r.n_failed) if not pd.isna(r.n_failed) else 0
        mark = " †" if r.stale == True else ""  # noqa: E712 (NaN in reindexed rows is not stale)
        method = r.kind == "method"
        cells.append([
            Cell(_fmt(r.accuracy_mean, r.accuracy_std, 2, r.n, failed), method and bool(r.n) and r.accuracy_mean == best_acc),
            Cell(number(r.paper_accuracy, ".2f")),
            Cell(_fmt(r.macro_f1_mean, r.macro_f1_std, 3, r.n, failed) + mark,
                 method and bool(r.n) and r.macro_f1_mean == best_f1),
            Cell(number(r.paper_f1))])
    return cells


METRIC_HEADERS = ["Acc. (ours)", "Acc. (paper)", "F1 (ours)", "F1 (paper)"]

EVIDENCE = {  # column of the evidence tables -> its text for one summary line
    "n": lambda r: f"{int(r.n)}" + (f" (+{int(r.n_failed)} failed)" if r.n_failed else ""),
    "F1 95% CI": lambda r: "–" if np.isnan(r.macro_f1_ci_lo) else f"[{r.macro_f1_ci_lo:.3f}, {r.macro_f1_ci_hi:.3f}]",
    "Headroom": lambda r: number(r.headroom, ".2f"),
    "ΔF1 vs MSE [95% CI]": _effect,
    "p": lambda r: p_text(r.macro_f1_vs_mse_p_value),
    "Holm p": lambda r: p_text(r.macro_f1_vs_mse_p_holm),
    "P(>MSE)": lambda r: number(r.p_improve, ".2f"),
    "Paper ΔF1": lambda r: number(r.paper_f1_vs_mse, "+.3f"),
    "Verdict": lambda r: r.verdict or "–",
    "ρ(dist, Δscore)": lambda r: _fmt(r.spearman_mean, r.spearman_std, 2, r.n),
}
TEX_EVIDENCE = ("ΔF1 vs MSE [95% CI]", "p", "Holm p", "P(>MSE)", "Paper ΔF1", "Verdict")


def _one_backbone(summary: pd.DataFrame) -> bool:
    """Whether each dataset has a single encoder (Table 3): rows are then named by loss alone."""
    encoders = summary[summary["backbone"] != ANY]
    return encoders.groupby("dataset")["backbone"].nunique().max() == 1


def layout(summary: pd.DataFrame, grid: str) -> tuple[list[tuple[str, int]], list[str], list[list[Cell]]]:
    """The paper's table with ours beside it: (column groups, column names, rows); the first
    group spans the text columns. Table 3 (one backbone per dataset): losses down, datasets
    across; otherwise one line per (dataset,) model, loss."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    if grid == "table3" and _one_backbone(summary):
        losses = list(dict.fromkeys(summary["loss_label"]))
        per_ds = {d: summary[summary["dataset"] == d].set_index("loss_label").reindex(losses) for d in datasets}
        per_ds = {d: s.assign(n=s["n"].fillna(0).astype(int), kind=s["kind"].fillna("method"))
                  for d, s in per_ds.items()}
        blocks = {d: _metric_cells(s) for d, s in per_ds.items()}
        rows = [[Cell(loss)] + sum((blocks[d][i] for d in datasets), []) for i, loss in enumerate(losses)]
        groups = [("", 1)] + [(DATASET_LABELS.get(d, d), len(METRIC_HEADERS)) for d in datasets]
        return groups, ["Loss"] + METRIC_HEADERS * len(datasets), rows
    lead = ["Dataset"] if len(datasets) > 1 else []
    rows = []
    for d in datasets:
        sub = summary[summary["dataset"] == d]
        for (_, r), cells in zip(sub.iterrows(), _metric_cells(sub)):
            rows.append([Cell(DATASET_LABELS.get(d, d))] * len(lead) + [Cell(r.model), Cell(r.loss_label)] + cells)
    lead += ["Model", "Loss"]
    return [("", len(lead)), ("", len(METRIC_HEADERS))], lead + METRIC_HEADERS, rows


def evidence_layout(summary: pd.DataFrame, columns=tuple(EVIDENCE)
                    ) -> tuple[list[tuple[str, int]], list[str], list[list[Cell]]]:
    """The evidence behind the rows of ``summary``: one line per row with the ``columns`` of
    :data:`EVIDENCE`, named by (dataset where several,) (model where several per dataset,) loss."""
    lead = (["Dataset"] if summary["dataset"].nunique() > 1 else []) + \
        ([] if _one_backbone(summary) else ["Model"]) + ["Loss"]
    names = {"Dataset": lambda r: DATASET_LABELS.get(r.dataset, r.dataset), "Model": lambda r: r.model,
             "Loss": lambda r: r.loss_label}
    rows = [[Cell(names[c](r)) for c in lead] + [Cell(EVIDENCE[c](r)) for c in columns]
            for r in summary.itertuples()]
    return [("", len(lead)), ("", len(columns))], lead + list(columns), rows


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
    s = s.replace("<", "$<$").replace(">", "$>$").replace("Δ", r"$\Delta$").replace("α", r"$\alpha$")
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


VERDICT_LEGEND = (
    "Verdict: what the 95 % interval of ΔF1 says about 0 and about the paper's ΔF1. It holds both: "
    "inconclusive; 0 only: no effect detected; the paper's Δ excluded; the paper's Δ only: significant; "
    "compatible with the paper; neither: significant; same sign, smaller / larger than the paper's (in size), "
    "or significant; opposite sign to the paper's. Without a paper ΔF1 only 0 is judged (significant / no "
    "effect detected); n = 1: no interval = a single paired seed. p = the paired t-test over seeds; Holm p = "
    "p adjusted by Holm's step-down method over the family of every ΔF1-vs-MSE comparison in this table (all "
    "datasets and backbones), which keeps the chance of any false \"significant\" in the table at 5 %; the "
    "verdict reads the unadjusted interval.")

MD_LEGEND = f"""
The first table is the paper's, ours beside it: Acc. in %, F1 = macro-F1 (the paper does not say which
F1; weighted-F1 is in the CSV); mean ± std over seeds; bold = the best method. Rows marked (ref.) are
references, not methods, on the same splits and seeds: Majority = the most frequent train-pair label for
every test pair; Untrained encoder = the backbone at its random initialisation without pretraining,
through the same classifier; Oracle severity = the same classifier given the severity each synthetic scan
was rendered with (the ceiling label noise leaves). failed = every seed of the row failed (its records
say why).

The evidence tables, one per dataset: n = seeds; F1 95% CI = Student-t interval of the mean over seeds
(each seed is a new training split and a new initialisation); where every seed is scored on one held-out
cohort, the variance of that cohort's draw (a bootstrap of its patients, one draw for every seed), which the
seeds' spread cannot show, is added (Welch–Satterthwaite df), so the interval covers a new cohort too;
Headroom = (F1 − untrained) / (oracle − untrained); ΔF1 vs MSE = macro-F1 minus that of the MSE row of the
same backbone, paired by seed, with its 95 % t-interval (plus the shared cohort's variance of the
difference: small, as both rows meet the same hard patients); P(>MSE) = share of seeds where the row
beats MSE (a tie counts half); Paper ΔF1 = the same difference in the paper. ρ(dist, Δscore) = Spearman
correlation between the cosine distance of two test-scan embeddings of the same patient and the absolute
difference of their scores (Figure 1 in one number).

{VERDICT_LEGEND}
"""


def seeds_text(n: float, lower_bound: bool = False) -> str:
    """A number of seeds; "≥ n" where it is a lower bound (the training part unknown)."""
    return "–" if np.isnan(n) else "more than 10000" if np.isinf(n) else ("≥ " if lower_bound else "") + f"{int(n)}"


def design_notes(summary: pd.DataFrame, plan: pd.DataFrame, counts: pd.DataFrame) -> list[str]:
    """What each dataset's design can detect and what ±0.05 would take (:mod:`bench.power`),
    classes with few test pairs, and where an oracle is missing."""
    lines = []
    plan = plan.set_index("dataset") if len(plan) else plan
    for d, sub in summary.groupby("dataset", sort=False):
        name = DATASET_LABELS.get(d, d)
        eff = sub.dropna(subset=["macro_f1_vs_mse_sd"])
        parts = [f"with n = {int(eff['n_paired'].min())} seeds and the observed paired spread (pooled sd of ΔF1 "
                 f"{pooled_sd(eff):.3f}), a paired t-test detects a true ΔF1 of ±{eff['mde_f1'].iloc[0]:.3f} with "
                 "80 % power at α = 0.05"] if len(eff) else []
        if d in plan.index:
            p, t, big = plan.loc[d], TARGETS[0], PLANNED_TEST_PATIENTS
            bigger = "" if round(p["test_patients"]) >= big or np.isnan(p[f"seeds_{t}_{big}"]) else \
                f", {seeds_text(p[f'seeds_{t}_{big}'], p['lower_bound'])} at {big}"
            parts.append(f"±{t} would take {seeds_text(p[f'seeds_{t}_now'], p['lower_bound'])} seeds at today's "
                         f"{p['test_patients']:.0f} test patients{bigger} (the report's power section)")
        if parts:
            lines.append(f"{name}: " + "; ".join(parts) + "; smaller effects can hide behind \"no effect detected\" "
                         "and \"inconclusive\".")
        few = counts[(counts["dataset"] == d) & (counts["min"] < FEW_PAIRS)]
        if len(few):
            lines.append(f"{name}: warning — fewer than {FEW_PAIRS} test pairs in a seed for " + ", ".join(
                f"{c.label} (min {c.min}, mean {c.mean:.1f})" for c in few.itertuples())
                + ": the F1 of such a class, and with it macro-F1, turns on a handful of pairs.")
        if not ((sub["loss"] == "oracle") & (sub["n"] > 0)).any() and (sub["kind"] == "reference").any():
            lines.append(f"{name}: no oracle row (the source has no latent severity, as real data do not).")
    return lines


def cv_notes(records: list[RunRecord]) -> list[str]:
    """One line per cross-validated dataset saying the design and how its numbers are made."""
    lines = []
    for d in dict.fromkeys(r.dataset for r in records):
        recs = [r for r in records if r.dataset == d and r.finished]
        if folds := folds_of(recs):
            repeats = len({r.seed for r in recs})
            lines.append(f"{DATASET_LABELS.get(d, d)}: patient-level {folds}-fold cross-validation, {repeats} "
                         f"repeat(s) (repeat r reshuffles the folds with seed r; every patient is tested once per "
                         f"repeat): a row's mean averages the folds of each repeat, then the repeats; ± std over "
                         f"all folds; n counts folds; its CI and ΔF1 vs MSE (paired by repeat and fold) use the "
                         f"corrected resampled t (Nadeau–Bengio; Bouckaert–Frank over repeats; test fraction "
                         f"1/{folds}), since the folds' training sets overlap; so do the minimal detectable "
                         "effect and the repeats needed, which more repeats cannot bring below about "
                         f"2.8·sd/√{folds - 1}.")
    return lines


STALE_NOTE = ("† made (partly) by result-affecting code other than the code that wrote this table, or by "
              "several code versions: rerun with --rerun-stale.")

EFFECTS_CAPTION = ("Effects against MSE of the same backbone: macro-F1 difference paired by seed with its 95 % "
                   "t-interval (plus a shared held-out cohort's variance), raw and Holm-adjusted p, P(row > MSE) "
                   "over seeds, the paper's difference.")

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
                "kind": "reference" if is_reference(r.loss) else "method", "seed": r.seed,
                **({} if _fold(r) is None else {"fold": _fold(r)}), "status": r.status,
                **{m: r.metric(m) for m in (*METRICS, "spearman_within")},
                "test_pairs": len(r.test_pairs.true) if r.test_pairs else 0,
                "test_patients": len(set(r.test_pairs.patient)) if r.test_pairs else 0,
                "code_version": r.code_version, "wall_seconds": r.timing.wall_seconds if r.timing else np.nan,
                "error": r.error or ""}
        for m in ("accuracy", "macro_f1"):
            tp = r.test_pairs
            line[f"{m}_ci_lo"], line[f"{m}_ci_hi"] = (
                bootstrap_ci(tp.true, tp.pred, m, clusters=tp.patient, seed=r.seed)
                if r.finished and tp and tp.true else (np.nan, np.nan))
        out.append(line)
    return pd.DataFrame(out)


def write_tables(summary: pd.DataFrame, records: list[RunRecord], grid: str, out_dir: Path) -> dict[str, Path]:
    """``<out>/<grid>.csv|.md|.tex`` from ``summary`` (:func:`summarize`) and the per-cell
    ``cells.csv`` from ``records``; returns the paths. The Markdown holds the paper's table,
    then an evidence table per dataset; the LaTeX the paper's table, then the effects."""
    caption = CAPTIONS.get(grid, f"Grid {grid}: mean ± std over seeds.")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{grid}.{ext}" for ext in ("csv", "md", "tex")}
    paths["cells"] = out_dir / "cells.csv"
    summary.to_csv(paths["csv"], index=False, float_format="%.4f")
    cell_frame(records).to_csv(paths["cells"], index=False, float_format="%.4f")
    stale = bool(summary["stale"].any()) if len(summary) else False
    cv = cv_notes(records)
    notes = design_notes(summary, power_plan(summary, records), class_counts(records)) + cv + \
        ([STALE_NOTE] if stale else [])
    evidence = "".join(f"\n**Evidence: {DATASET_LABELS.get(d, d)}**\n\n" + to_markdown(*evidence_layout(sub))
                       for d, sub in summary.groupby("dataset", sort=False))
    paths["md"].write_text(f"{caption}\n\n" + to_markdown(*layout(summary, grid)) + evidence + MD_LEGEND
                           + "".join(f"\n{n}\n" for n in notes))
    compared = summary[summary["n_paired"] > 0]
    tex = to_latex(*layout(summary, grid), caption + "".join(f" {n}" for n in cv) + (f" {STALE_NOTE}" if stale else ""))
    if len(compared):
        tex += "\n" + to_latex(*evidence_layout(compared, TEX_EVIDENCE), EFFECTS_CAPTION + " " + VERDICT_LEGEND)
    paths["tex"].write_text(tex)
    return paths
