"""``results/<grid>/report.md``: what reproduced and what did not, at a glance."""
from __future__ import annotations

import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from bench.records import RunRecord
from bench.grid import ANY
from bench.power import FEW_PAIRS, PLANNED_TEST_PATIENTS, TARGETS, class_counts, power_plan
from bench.tables import DATASET_LABELS, number, p_text, seeds_text, signed_interval


def _floor_ceiling_lines(summary: pd.DataFrame) -> list[str]:
    """Per dataset: the references, then each method's share of the headroom."""
    lines = []
    for d, sub in summary.groupby("dataset", sort=False):
        refs = sub[sub["kind"] == "reference"]
        if not len(refs):
            continue
        parts = [f"{r.loss_label.replace(' (ref.)', '')}{'' if r.backbone == ANY else f' {r.model}'} "
                 f"{number(r.macro_f1_mean)}" for r in refs.itertuples() if r.n]
        lines.append(f"- {d.upper()} references (macro-F1): " + "; ".join(parts) + ".")
        shares = [f"{r.model} {r.loss_label} {number(r.headroom, '.2f')}" for r in sub.itertuples()
                  if r.kind == "method" and not pd.isna(r.headroom)]
        if shares:
            lines.append(f"- {d.upper()} share of the headroom between the untrained encoder (0) and the "
                         f"oracle (1): " + "; ".join(shares) + ".")
    return lines


def _effect_lines(summary: pd.DataFrame) -> list[str]:
    """Per method row with an MSE row: our paired ΔF1 with its interval, raw and Holm p,
    P(>MSE), and the paper's effect with the verdict."""
    lines = []
    for r in summary.itertuples():
        if r.kind != "method" or r.n == 0:
            continue
        head = f"- {r.dataset.upper()} {r.model} {r.loss_label}: "
        if not pd.isna(r.macro_f1_vs_mse):
            p = ("" if pd.isna(r.macro_f1_vs_mse_p_value) else
                 f"p = {p_text(r.macro_f1_vs_mse_p_value)} (Holm {p_text(r.macro_f1_vs_mse_p_holm)}), ")
            ours = (f"ΔF1 vs MSE {signed_interval(r.macro_f1_vs_mse, r.macro_f1_vs_mse_lo, r.macro_f1_vs_mse_hi)}, "
                    f"{p}P(>MSE) = {number(r.p_improve, '.2f')} (n = {r.n_paired})")
            paper = ("; the paper has no MSE row for this backbone" if pd.isna(r.paper_f1_vs_mse) else
                     f"; paper ΔF1 {r.paper_f1_vs_mse:+.3f}")
            lines.append(head + ours + paper + f": **{r.verdict}**.")
        elif not pd.isna(r.paper_f1) and r.loss != "mse":
            lines.append(head + f"paper F1 {r.paper_f1:.3f}; ours {r.macro_f1_mean:.3f} "
                         "(no MSE row of this backbone in this grid to pair with).")
    return lines


def _power_lines(plan: pd.DataFrame, counts: pd.DataFrame) -> list[str]:
    """The power planning table (:mod:`bench.power`) and the test pairs per class."""
    if not len(plan):
        return ["No method cell shares its test pairs with an MSE cell of the same seed: nothing to plan from."]
    big = PLANNED_TEST_PATIENTS
    head = ["Dataset", "Seeds run", "Test patients", "MDE at these seeds", "sd of ΔF1 over seeds",
            "training sd", "test-sampling sd", "of it shared by all seeds"] + [f"seeds for ±{t}" for t in TARGETS] + \
        [f"seeds for ±{t} at {big} test patients" for t in TARGETS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, p in plan.iterrows():
        cells = [DATASET_LABELS.get(p["dataset"], p["dataset"]), str(p["n_seeds"]), f"{p['test_patients']:.0f}",
                 "–" if pd.isna(p["mde_f1"]) else f"±{p['mde_f1']:.3f}", number(p["sd_total"]), number(p["sd_train"]),
                 number(p["sd_test"]), number(p["sd_shared"])]
        cells += [seeds_text(p[f"seeds_{t}_{label}"], p["lower_bound"]) for label in ("now", str(big)) for t in TARGETS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| Dataset | Class | Test pairs per seed (min) | (mean) | Seeds | Note |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {DATASET_LABELS.get(c.dataset, c.dataset)} | {c.label} | {c.min} | {c.mean:.1f} | {c.seeds} | "
              + (f"fewer than {FEW_PAIRS}: its F1 turns on a handful of pairs |" if c.min < FEW_PAIRS else " |")
              for c in counts.itertuples()]
    return lines


def _power_section(summary: pd.DataFrame, records: list[RunRecord]) -> list[str]:
    """What the design can tell and what more seeds or more test patients would buy."""
    return ["## Power: what this design can tell, and where compute helps", "",
            "MDE = the smallest true ΔF1 a paired t-test over these seeds detects with 80 % power (α = 0.05), "
            "from the pooled seed-to-seed sd of ΔF1. That sd splits into training randomness and test-set "
            "sampling: the latter is the joint bootstrap variance of ΔF1 over test patients (a method cell and "
            "its MSE cell of the same seed share the test pairs; both resampled with the same patients), "
            "averaged over cells; the former is the rest (floored at 0). Where every seed is scored on one "
            "held-out cohort, part of the test sampling is shared by all seeds (one draw of the cohort's "
            "patients for every seed measures it): the seeds' spread does not hold it, no number of seeds "
            "lowers it, and the intervals and the MDE add it. More seeds shrink the rest; a larger test "
            f"set only the test parts (their variance × today's / {PLANNED_TEST_PATIENTS} test patients). Seeds "
            "needed = the fewest seeds whose MDE is at most the target; "
            "\"≥ n\" where one seed leaves the training part unknown (the test part alone: a lower bound).", "",
            *_power_lines(power_plan(summary, records), class_counts(records))]


def _cost_lines(records: list[dict]) -> list[str]:
    """Mean cost per cell of each grid row, so a reader can budget a rerun (e.g. per backbone)."""
    if not records:
        return ["No cell has finished yet."]
    records = [r for r in records if r.finished]
    if not records:
        return ["No cell has finished yet."]
    frame = pd.DataFrame([{"dataset": r.dataset.upper(), "backbone": r.backbone, "loss": r.loss, "sim": r.sim,
                           "device": r.device, "pretrain_seconds": np.nan, "train_clips_per_second": np.nan,
                           **(asdict(r.timing) if r.timing else {})} for r in records])
    cost = (frame.groupby(["dataset", "backbone", "loss", "sim", "device"], sort=False)
            .agg(cells=("wall_seconds", "size"), wall=("wall_seconds", "mean"),
                 pretrain=("pretrain_seconds", "mean"), clips=("train_clips_per_second", "mean"),
                 memory=("peak_memory_mb", "max"))
            .reset_index())
    lines = ["| Dataset | Backbone | Loss | Sim. | Device | Cells | Wall s / cell | Pretraining s / cell "
             "| Training clips/s | Peak memory MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c.dataset} | {c.backbone} | {c.loss} | {c.sim} | {c.device} | {c.cells} | {c.wall:.1f} "
              f"| {number(c.pretrain, '.1f')} | {number(c.clips, '.1f')} | {c.memory:.0f} |" for c in cost.itertuples()]
    return lines


def write_report(grid: str, out_dir: Path, summary: pd.DataFrame, records: list[RunRecord], expected: int,
                 table_md: Path, figures: dict[str, list[Path]]) -> Path:
    """The report; ``figures`` maps figure1 / effects / curves to their files ([] if not drawn)."""
    finished = [r for r in records if r.finished]
    first = finished[0] if finished else None
    settings = first.settings if first else {}
    wall = sum(r.timing.wall_seconds for r in finished)
    devices = sorted({r.device for r in finished})
    lines = [f"# learner-bench report: `{grid}`", "",
             f"Command: `{' '.join(shlex.quote(a) for a in ['python', 'run_all.py'] + sys.argv[1:])}`  ",
             f"Cells finished: {len(finished)} of {expected}"
             f"{f' ({len(records) - len(finished)} failed)' if len(records) > len(finished) else ''}; summed cell wall time {wall / 60:.1f} min on "
             f"{', '.join(devices) or '–'}.  ",
             f"Git commit: {sorted({r.git_commit for r in finished}) or '–'}; result-affecting code: "
             f"{sorted({r.code_version for r in finished}) or '–'}", "",
             "## Tables", "", table_md.read_text(), "",
             "## Where the rows sit: floor and ceiling", "",
             "Majority and the untrained encoder are floors (what needs no learning, what needs no "
             "pretraining); the oracle, given the severity each synthetic scan was rendered with, is the "
             "ceiling that label noise leaves.", ""]
    lines += _floor_ceiling_lines(summary) or ["- this grid has no reference rows (--no-references)."]
    lines += ["", "## Does the paper's effect reproduce?", "",
              "The paper's claim is that adding a contrastive term to MSE pretraining improves the downstream "
              "F1. Per row: our paired effect against the MSE row of the same backbone (macro-F1, by seed) "
              "with its 95 % interval, its raw and Holm-adjusted p, and the verdict: what that interval says "
              "about 0 and about the paper's own effect (legend of the tables above).", ""]
    lines += _effect_lines(summary) or ["- no method row of this grid has an MSE row to pair with."]
    lines += ["", *_power_section(summary, records)]
    if figures.get("effects"):
        lines += ["", "## Effects at a glance", "", f"![effects]({figures['effects'][0].name})", "",
                  "Left: each row's macro-F1 (mean and 95 % CI over seeds) with the floor (majority, "
                  "untrained) and ceiling (oracle) bands and the paper's value (×). Right: each row's paired "
                  "ΔF1 against MSE with its 95 % CI and the paper's Δ (×)."]
    if figures.get("figure1"):
        lines += ["", "## Figure 1", "", f"![Figure 1]({figures['figure1'][0].name})", "",
                  "Cosine distance between embeddings of two test scans against their absolute score "
                  "difference (all pairs of test scans, pooled over seeds)."]
    if figures.get("curves"):
        lines += ["", "## Learning curves", "", f"![learning curves]({figures['curves'][0].name})", "",
                  "Per epoch of pretraining: the training loss, its MSE and contrastive parts, and the "
                  "validation MSE that selects the kept epoch (mean over seeds, band = min to max)."]
    lines += ["", "## Cost per cell", "", *_cost_lines(records), "",
              "Wall = the whole cell (data, pretraining, embedding, classifier); clips/s counts "
              "pretraining steps only."]
    lines += ["", "## Settings", "", "```", f"preset: {settings.get('preset')}",
              f"numerics: {sorted({str(r.numerics) for r in finished})}",
              f"data sources: {sorted({r.data.source for r in finished})}",
              f"pretrained: {sorted({r.pretrained for r in finished})}", "```", "",
              "## Library versions", "", "```", str(first.versions if first else {}), "```", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
