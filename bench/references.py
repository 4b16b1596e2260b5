"""Reference rows: where each method row sits between "learned nothing" and "the best possible".

* ``majority`` — the most frequent train-pair label, predicted for every test pair (no model);
* ``untrained`` — the same backbone at its random initialisation (the same seed, hence the
  same initial weights, as the method rows), no pretraining, through the same downstream
  classifier: what pretraining adds;
* ``oracle`` — sources with the ``latent_severity`` hook (the synthetic ones): the same
  downstream classifier given, per scan, the severity the generator rendered the scan with,
  i.e. the most any encoder can extract from the pixels. Its labels still come from the
  scores, which depart from the image by the generator's label noise, so it is not 100 %.
  It is an information ceiling, not a small-sample estimate: it learns from the pairs of a
  large generated cohort (the ``latent_cohort`` hook, no pixels) and is scored on the cell's
  test pairs.

``majority`` and ``oracle`` do not depend on the backbone: one row per dataset, under the
backbone name :data:`bench.grid.ANY` (the rows themselves are defined in :mod:`bench.grid`). All of them run on the same splits and seeds as the method rows,
so they pair with them seed by seed.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Callable

import numpy as np
import pandas as pd
import torch

from bench.classifier import DownstreamResult, pair_features, train_classifier
from bench.data.pairs import make_pairs, pairs_by_split
from bench.data.scans import LongitudinalDataset
from bench.data.splits import cohorts, evaluation_scans, split_patients
from bench.distances import spearman
from bench.presets import Preset, get_preset


def majority_prediction(train_labels: np.ndarray, n_test: int) -> np.ndarray:
    """The most frequent train-pair label (the lowest label on a tie), for every test pair."""
    return np.full(n_test, int(np.bincount(train_labels, minlength=3).argmax()), dtype=np.int64)


ORACLE_VAL_SHARE = 0.2                  # of its patients, for the classifier's epoch selection
ORACLE_EPOCHS, ORACLE_BATCH = 30, 256   # ~1000 steps on 5,000 patients' ~9,000 train pairs (the preset's suit ~100)


def oracle_severity(ds: LongitudinalDataset) -> np.ndarray:
    """``float32[N]``: each evaluation scan's rendered severity (``ds``'s rows, then its held-out cohort's)."""
    if ds.latent_severity is None:
        raise ValueError(f"{ds.name} has no latent severity (real data): no oracle row")
    return np.array([c.latent_severity(row) for c in cohorts(ds) for _, row in c.scans.iterrows()], np.float32)


@lru_cache(maxsize=4)
def oracle_cohort(latent_cohort: Callable, n: int, rule) -> tuple[np.ndarray, dict[str, pd.DataFrame]]:
    """Severity per scan and the train / val pairs of the oracle's generated cohort of ``n`` patients,
    built once per dataset and process (pairing ~9,000 patients' scans takes seconds); its patients
    are independent draws, so the first 80 % train and the rest validate."""
    table, severity = latent_cohort(n)
    pairs = make_pairs(table, rule)
    patients = table["patient_id"].unique()
    train = pairs["patient_id"].isin(patients[: round((1 - ORACLE_VAL_SHARE) * len(patients))]).to_numpy()
    return severity, {"train": pairs[train], "val": pairs[~train]}


def oracle_classifier(ds: LongitudinalDataset, pair_split: dict[str, pd.DataFrame], rule, preset: Preset,
                      seed: int, device: torch.device) -> tuple[DownstreamResult, dict]:
    """The downstream classifier on ``[s_a, s_b, s_b − s_a]`` of the rendered severities, scored on the
    cell's test pairs; trained on the oracle cohort's pairs (:func:`oracle_cohort`), or on the cell's
    own train / val pairs for a source without the ``latent_cohort`` hook (a small-sample estimate).
    Returns the result and what it trained on."""
    sources = {"test": (oracle_severity(ds), pair_split["test"])}
    if ds.latent_cohort is None:
        sources.update({k: (sources["test"][0], pair_split[k]) for k in ("train", "val")})
        trained_on = {"cohort": "the cell's train / val patients"}
    else:
        severity, pairs = oracle_cohort(ds.latent_cohort, preset.oracle_patients, rule)
        sources.update({k: (severity, pairs[k]) for k in ("train", "val")})
        trained_on = {"cohort": f"{preset.oracle_patients} generated patients"}
        preset = replace(preset, ds_epochs=ORACLE_EPOCHS, ds_batch_size=ORACLE_BATCH)
    feats, labels = {}, {}
    for k, (severity, pairs) in sources.items():
        u = torch.as_tensor(severity, dtype=torch.float32, device=device)[:, None]
        feats[k] = pair_features(u, pairs["a"].to_numpy(), pairs["b"].to_numpy())
        labels[k] = pairs["label"].to_numpy()
    trained_on.update(train_pairs=len(labels["train"]), val_pairs=len(labels["val"]))
    return train_classifier(feats, labels, preset, seed), trained_on


ORACLE_PRESET = "quick"  # the downstream classifier's settings for describe's oracle line


def oracle_figures(dataset: LongitudinalDataset, seed: int = 0) -> dict | None:
    """What ``describe`` prints of the oracle: this row's classifier (``quick`` settings) on the
    test pairs of the seed-``seed`` split (the held-out cohort's, if the source has one), and
    the Spearman correlation of latent change with score change over all consecutive pairs;
    None when the source has no ``latent_severity`` hook (real data)."""
    if dataset.latent_severity is None:
        return None
    rule = dataset.rule
    own = make_pairs(dataset.scans, rule)
    severity = np.array([dataset.latent_severity(row) for _, row in dataset.scans.iterrows()], dtype=np.float32)
    d_sev = severity[own["b"]] - severity[own["a"]]
    out = {"seed": seed, "test_pairs": 0, "macro_f1": float("nan"), "accuracy": float("nan"),
           "spearman_within": spearman(d_sev, (own["score_b"] - own["score_a"]).to_numpy())}
    scans = evaluation_scans(dataset)
    if dataset.n_patients < 3:       # no 3-way split, no oracle figures (NaN)
        return out
    by_split = pairs_by_split(make_pairs(scans, rule), split_patients(scans, seed), len(scans))
    out["test_pairs"] = len(by_split["test"])
    if len(by_split["train"]) and len(by_split["test"]):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)   # 3 features: extra threads only add start-up cost (0.4 s vs 15 s, busy 2 cores)
        try:
            result, _ = oracle_classifier(dataset, by_split, rule, get_preset(ORACLE_PRESET), seed, torch.device("cpu"))
        finally:
            torch.set_num_threads(threads)
        out.update(macro_f1=float(result.metrics["macro_f1"]), accuracy=float(result.metrics["accuracy"]))
    return out
