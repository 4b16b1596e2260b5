"""Patient-level splits: no patient in two splits, test patients never seen in pretraining."""
from __future__ import annotations

import numpy as np
import pandas as pd

# Table 1 of the paper: 413 / 188 / 160 datapoints, i.e. about 54 / 25 / 21 %.
DEFAULT_FRACTIONS = (0.54, 0.25, 0.21)
SPLITS = ("train", "val", "test")


def split_patients(scans: pd.DataFrame, seed: int,
                   fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Row positions of each split; patients are shuffled with ``seed`` and cut by count."""
    patients = np.array(sorted(scans["patient_id"].unique(), key=str), dtype=object)
    if len(patients) < 3:
        raise ValueError(f"need at least 3 patients for train/val/test splits, have {len(patients)}")
    order = np.random.default_rng(seed).permutation(len(patients))
    n_train = max(1, int(round(fractions[0] * len(patients))))
    n_val = max(1, int(round(fractions[1] * len(patients))))
    n_train = min(n_train, len(patients) - 2)
    n_val = min(n_val, len(patients) - n_train - 1)
    groups = np.split(patients[order], [n_train, n_train + n_val])
    pid = scans["patient_id"].to_numpy()
    return {name: np.flatnonzero(np.isin(pid, g)) for name, g in zip(SPLITS, groups)}
