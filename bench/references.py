"""Reference rows: where each method row sits between "learned nothing" and "the best possible".

* ``majority`` — the most frequent train-pair label, predicted for every test pair (no model);
* ``untrained`` — the same backbone at its random initialisation (the same seed, hence the
  same initial weights, as the method rows), no pretraining, through the same downstream
  classifier: what pretraining adds;
* ``oracle`` — sources with the ``latent_severity`` hook (the synthetic ones): the same
  downstream classifier given, per scan, the severity the generator rendered the scan with,
  i.e. the most any encoder can extract from the pixels. Its labels still come from the
  scores, which depart from the image by the generator's label noise, so it is not 100 %.

``majority`` and ``oracle`` do not depend on the backbone: one row per dataset, under the
backbone name :data:`ANY`. All of them run on the same splits and seeds as the method rows,
so they pair with them seed by seed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from bench.data.scans import LongitudinalDataset
from bench.grid import Row

REFERENCES = ("majority", "untrained", "oracle")
REFERENCE_LABELS = {"majority": "Majority (ref.)", "untrained": "Untrained encoder (ref.)",
                    "oracle": "Oracle severity (ref.)"}
ANY = "any"  # the backbone of the backbone-independent references


def is_reference(loss: str) -> bool:
    return loss in REFERENCES


def with_references(rows: list[Row], has_oracle: Callable[[str], bool]) -> list[Row]:
    """``rows`` with each dataset's reference rows after its method rows: majority, one
    untrained row per backbone (in order of appearance), oracle where the source has one."""
    out: list[Row] = []
    for d in dict.fromkeys(r.dataset for r in rows):
        block = [r for r in rows if r.dataset == d]
        out += block + [Row(d, ANY, "majority")]
        out += [Row(d, b, "untrained") for b in dict.fromkeys(r.backbone for r in block)]
        if has_oracle(d):
            out.append(Row(d, ANY, "oracle"))
    return out


def majority_prediction(train_labels: np.ndarray, n_test: int) -> np.ndarray:
    """The most frequent train-pair label (the lowest label on a tie), for every test pair."""
    return np.full(n_test, int(np.bincount(train_labels, minlength=3).argmax()), dtype=np.int64)


def oracle_embeddings(ds: LongitudinalDataset, device: torch.device) -> torch.Tensor:
    """``float32[N, 1]``: each scan's rendered severity, the oracle's one-number "embedding"."""
    if ds.latent_severity is None:
        raise ValueError(f"{ds.name} has no latent severity (real data): no oracle row")
    sev = [ds.latent_severity(row) for _, row in ds.scans.iterrows()]
    return torch.tensor(sev, dtype=torch.float32, device=device)[:, None]
