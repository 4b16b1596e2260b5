"""Numbers that say whether a longitudinal dataset poses the paper's problem.

Why: the benchmark is meaningful only if (a) consecutive-visit pairs of every label exist,
(b) patient identity, not the score, dominates simple image statistics (so a model cannot
read the score off gain or depth), and (c) the score is still recoverable from the images,
across patients and within one. ``describe`` measures these with deliberately simple,
fixed statistics — the same for every setting of a generator and for real data — and
reports whatever they show.

Per clip (rendered at ``frames×size×size``, time-averaged): mean and std intensity, the
depth of the brightest row (fraction of the height), and a biomarker statistic — LUS: mean
brightness below the brightest row (the pleural line, when there is one) relative to the
clip mean (B-lines brighten it); MRI: the fraction of the head, in the central third of the
slices, darker than half its 90th-percentile (white-matter) intensity — CSF-like pixels
(ventricles and sulci widen with atrophy).

Nuisance dominance: the one-way intraclass correlation ICC(1) by patient of each statistic
(the score's own ICC says how much of it is patient-persistent severity), next to its
Spearman correlation with the score. Recoverability: the Spearman correlation of the
biomarker with the score over all clips, and of its change with the score change over
consecutive-visit pairs.

What the generators' ``label_noise`` and ``shortcut`` knobs do, measured the same way for
every source:

* Oracle (label noise; only for sources with the ``latent_severity`` hook, i.e. synthetic
  ones, and without rendering; computed by :func:`bench.references.oracle_figures` and
  passed in as ``d["oracle"]``, since it trains a classifier): the oracle reference row's classifier (``quick`` preset
  settings) given per scan only the latent severity the clip was rendered with,
  ``[sev_a, sev_b, sev_b − sev_a]``, trained on a large generated cohort's pairs, reported
  on the test pairs of the seed-0 split — the held-out cohort's when the source has one
  (macro-F1 and accuracy = how often its pair labels agree with the score-derived ones) — the
  most any encoder can reach; plus the Spearman correlation of the latent change with the
  score change over the dataset's consecutive pairs.
* Shortcut: a patient-fixed appearance statistic that the disease does not change — LUS:
  near-field brightness, the mean of the top quarter of the time-averaged image (the chest
  wall: the scanner's gain / dynamic range / gamma); MRI: head area, the filled head mask's
  share of the field of view in the central third of the slices (head size). Its patient
  mean vs the patient's mean score (mean over visits), Spearman across patients, next to
  its change vs the score change over consecutive pairs (within patients). A shortcut shows
  as a strong across-patient correlation with no within-patient one.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from bench.data.pairs import LABELS, label_counts, make_pairs
from bench.distances import spearman
from bench.data.scans import LongitudinalDataset
from bench.limits import range_problem

BIOMARKERS = {"lus": "subpleural brightness / clip mean", "mri": "dark fraction of head, central slices"}
APPEARANCE = {"lus": "near-field brightness (top quarter of the image)",
              "mri": "head area (share of the field of view, central slices)"}


def icc1(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way random-effects ICC(1) with unequal group sizes: share of variance between groups."""
    df = pd.DataFrame({"x": values, "g": groups})
    stats = df.groupby("g")["x"].agg(["mean", "count"])
    n, k = len(df), len(stats)
    if k < 2 or n <= k:
        return float("nan")
    grand = df["x"].mean()
    msb = (stats["count"] * (stats["mean"] - grand) ** 2).sum() / (k - 1)
    msw = ((df["x"] - df["g"].map(stats["mean"])) ** 2).sum() / (n - k)
    n0 = (n - (stats["count"] ** 2).sum() / n) / (k - 1)
    denom = msb + (n0 - 1) * msw
    return float((msb - msw) / denom) if denom > 0 else float("nan")


def _biomarker_and_appearance(kind: str, clip: np.ndarray, mean_img: np.ndarray,
                              bright_row: int) -> tuple[float, float]:
    """The clip's biomarker statistic and its patient-appearance (shortcut) statistic."""
    size = mean_img.shape[0]
    if kind == "lus":
        below = mean_img[min(size - 1, bright_row + max(1, size // 16)):]
        return float(below.mean() / max(mean_img.mean(), 1e-6)), float(mean_img[: max(1, size // 4)].mean())
    frames = clip.shape[0]
    central = clip[frames // 3: max(frames // 3 + 1, 2 * frames // 3)].astype(np.float32)
    level = np.percentile(clip, 99)
    fractions, areas = [], []
    for img in central:
        head = ndi.binary_fill_holes(img > 0.15 * level)
        areas.append(head.mean())
        if head.sum() == 0:
            continue
        dark = head & (img < 0.5 * np.percentile(img[head], 90))
        fractions.append(dark.sum() / head.sum())
    return (float(np.mean(fractions)) if fractions else float("nan")), float(np.mean(areas))


def _check_render_size(frames: int, size: int) -> None:
    """Clips of at least one frame and one ViT patch, and small enough to render."""
    for flag, value, lo, hi in (("--frames", frames, 1, 256), ("--size", size, 16, 1024)):
        if problem := range_problem(value, lo, hi):
            raise ValueError(f"describe {flag} {problem}")


def _table_stats(dataset: LongitudinalDataset) -> dict:
    """Sizes, visits, scores and pair labels from the scan table alone (every scan)."""
    scans = dataset.scans
    pairs = make_pairs(scans, dataset.rule)
    counts = label_counts(pairs)
    visits = scans.groupby("patient_id")["visit"].nunique()
    return {
        "name": dataset.name, "kind": dataset.kind, "score_name": dataset.score_name,
        "patients": dataset.n_patients, "clips": len(scans),
        "visits_per_patient": {"min": int(visits.min()), "mean": float(visits.mean()), "max": int(visits.max())},
        "score": {"min": float(scans["score"].min()), "max": float(scans["score"].max()),
                  "mean": float(scans["score"].mean()), "std": float(scans["score"].std())},
        "pairs": {"total": len(pairs), "counts": counts,
                  "fractions": {k: (v / len(pairs) if len(pairs) else float("nan")) for k, v in counts.items()}},
    }


def _whole_patients(scans: pd.DataFrame, max_clips: int | None) -> pd.DataFrame:
    """Whole patients in table order until ``max_clips`` clips (at least two patients; all when None)."""
    if max_clips is None or max_clips >= len(scans):
        return scans
    per_patient = scans.groupby("patient_id", sort=False).size()
    keep = per_patient.index[: max(2, int(np.searchsorted(per_patient.cumsum().to_numpy(), max_clips)) + 1)]
    return scans[scans["patient_id"].isin(keep)].reset_index(drop=True)


def _image_stats(dataset: LongitudinalDataset, scans: pd.DataFrame, frames: int, size: int) -> pd.DataFrame:
    """Per clip, rendered: intensity, brightest-row depth, the kind's biomarker and appearance."""
    stats = []
    for _, row in scans.iterrows():
        clip = dataset.load_clip(row, frames, size)
        mean_img = clip.astype(np.float32).mean(0)
        bright_row = int(np.argmax(mean_img.mean(1)))
        stats.append((mean_img.mean(), clip.std(), bright_row / size,
                      *_biomarker_and_appearance(dataset.kind, clip, mean_img, bright_row)))
    return pd.DataFrame(stats, columns=["mean_intensity", "std_intensity", "brightest_row_depth", "biomarker",
                                        "appearance"])


def describe(dataset: LongitudinalDataset, frames: int = 8, size: int = 64, max_clips: int | None = None) -> dict:
    """Sizes, label balance, nuisance dominance and score recoverability of ``dataset``.

    Table statistics use every scan; image statistics use whole patients, in table order,
    until ``max_clips`` clips (all when None).
    """
    _check_render_size(frames, size)
    start = time.perf_counter()
    out = _table_stats(dataset)
    subset = _whole_patients(dataset.scans, max_clips)
    render_start = time.perf_counter()
    stat = _image_stats(dataset, subset, frames, size)
    render_s = time.perf_counter() - render_start
    pid = subset["patient_id"].to_numpy()
    score = subset["score"].to_numpy(float)

    sub_pairs = make_pairs(subset, dataset.rule)
    bio = stat["biomarker"].to_numpy()
    d_bio = bio[sub_pairs["b"]] - bio[sub_pairs["a"]]
    d_score = (sub_pairs["score_b"] - sub_pairs["score_a"]).to_numpy()
    out["images"] = {"clips": len(subset), "patients": int(subset["patient_id"].nunique()),
                     "frames": frames, "size": size, "render_seconds": render_s}
    out["icc"] = {**{c: icc1(stat[c].to_numpy(), pid) for c in stat.columns}, "score": icc1(score, pid)}
    out["spearman_score"] = {c: spearman(stat[c].to_numpy(), score) for c in stat.columns}
    out["biomarker"] = {"statistic": BIOMARKERS[dataset.kind],
                        "spearman_pooled": spearman(bio, score),
                        "spearman_within": spearman(d_bio, d_score), "within_pairs": len(sub_pairs)}
    look = stat["appearance"].to_numpy()
    patient_look = pd.Series(look).groupby(pid, sort=False).mean()
    patient_score = subset.groupby(["patient_id", "visit"], sort=False)["score"].mean().groupby(level=0).mean()
    out["shortcut"] = {"statistic": APPEARANCE[dataset.kind], "patients": len(patient_look),
                       "spearman_across": spearman(patient_look.to_numpy(),
                                                    patient_score.loc[patient_look.index].to_numpy()),
                       "spearman_within": spearman(look[sub_pairs["b"]] - look[sub_pairs["a"]], d_score),
                       "within_pairs": len(sub_pairs)}
    out["seconds"] = time.perf_counter() - start
    return out


def format_description(d: dict) -> str:
    """Plain multi-line text of :func:`describe`'s result."""
    v, s, p, im = d["visits_per_patient"], d["score"], d["pairs"], d["images"]
    lines = [
        f"{d['name']} ({d['kind']}): {d['patients']} patients, {d['clips']} clips, "
        f"visits/patient {v['min']}-{v['max']} (mean {v['mean']:.2f})",
        f"  {d['score_name']}: {s['min']:g}-{s['max']:g} (mean {s['mean']:.1f}, sd {s['std']:.1f})",
        f"  consecutive pairs: {p['total']}  " + "  ".join(
            f"{k} {p['counts'][k]} ({100 * p['fractions'][k]:.1f}%)" for k in LABELS),
        f"  images: {im['clips']} clips of {im['patients']} patients at {im['frames']}x{im['size']}x{im['size']}"
        f" ({im['render_seconds']:.1f} s)",
        "  per-clip statistic      ICC(1) by patient   Spearman with score",
        *(f"    {k:<22} {val:6.3f}" + (f"   {d['spearman_score'][k]:+18.3f}" if k in d["spearman_score"] else "")
          for k, val in d["icc"].items()),
        f"  biomarker: {d['biomarker']['statistic']}",
        f"    Spearman vs {d['score_name']}, pooled over clips:         {d['biomarker']['spearman_pooled']:+.3f}",
        f"    Spearman of changes, consecutive pairs (n={d['biomarker']['within_pairs']}): "
        f"{d['biomarker']['spearman_within']:+.3f}",
        f"  shortcut statistic: {d['shortcut']['statistic']}",
        f"    Spearman of patient mean vs mean {d['score_name']}, across patients (n={d['shortcut']['patients']}):"
        f" {d['shortcut']['spearman_across']:+.3f}",
        f"    Spearman of changes, consecutive pairs (n={d['shortcut']['within_pairs']}): "
        f"{d['shortcut']['spearman_within']:+.3f}",
        *([_oracle_line(d["oracle"], d["score_name"])] if "oracle" in d else []),
        f"  ({d['seconds']:.1f} s)",
    ]
    return "\n".join(lines)


def _oracle_line(o: dict | None, score_name: str) -> str:
    if o is None:
        return "  oracle: none (the source renders no latent severity: real data)"
    return (f"  oracle (classifier on the rendered latent severity, seed-{o['seed']} split, "
            f"{o['test_pairs']} test pairs): macro-F1 {o['macro_f1']:.3f}, accuracy {o['accuracy']:.1f} %\n"
            f"    Spearman of latent change vs {score_name} change, all consecutive pairs: {o['spearman_within']:+.3f}")
