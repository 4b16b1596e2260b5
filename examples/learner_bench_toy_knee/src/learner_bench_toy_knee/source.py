"""``toy-knee[:n_patients=N,seed=S]``: a seeded toy cohort of knee radiographs.

Each patient has 2-4 yearly visits; the osteoarthritis grade (0-4, a continuous
Kellgren-Lawrence-like score, lower is better) drifts up with a random walk. An image is
two bright bone ends (femur above, tibia below) whose joint space narrows as the grade
grows, under patient nuisance (exposure, position, bone width) and per-scan noise; a
radiograph has no time, so a clip repeats the image with fresh noise per frame.

Pairs are labelled by a move between grade bins (0.5|1.5|2.5|3.5, right-closed), lower
better: this cohort's own rule, which the dataset carries. Written only against
learner-bench's documented source contract: ``factory(arg, on_bad_input=..., **defaults)``
returning a ``bench.data.LongitudinalDataset`` with ``rule`` set.
"""
import zlib

import numpy as np
import pandas as pd

from bench.data import LongitudinalDataset
from bench.data.pairs import BinRule

RULE = BinRule((0.5, 1.5, 2.5, 3.5), higher_is_better=False)


def _options(arg, defaults) -> dict:
    opts = {"n_patients": int(defaults.get("n_patients", 60)), "seed": 0}
    for item in filter(None, (arg or "").split(",")):
        key, _, value = item.partition("=")
        if key not in opts or not value.isdigit():
            raise ValueError(f"toy-knee: bad option {item!r}; valid: n_patients=N, seed=S (integers)")
        opts[key] = int(value)
    if opts["n_patients"] < 3:
        raise ValueError(f"toy-knee: n_patients={opts['n_patients']}: needs at least 3")
    return opts


def _table(n_patients: int, seed: int) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    rows, looks = [], {}
    for p in range(n_patients):
        pid = f"K{p:04d}"
        looks[pid] = rng.uniform(-1, 1, size=3)  # exposure, vertical position, bone width
        grade = rng.uniform(0, 3)
        for visit in range(int(rng.integers(2, 5))):
            rows.append((pid, visit, f"{pid}-v{visit}", round(float(grade), 3), f"toy-knee:{pid}:{visit}"))
            grade = float(np.clip(grade + rng.normal(0.4, 0.6), 0, 4))
    return pd.DataFrame(rows, columns=["patient_id", "visit", "scan_id", "score", "source"]), looks


def _renderer(looks: dict, seed: int):
    def load_clip(row: pd.Series, frames: int, size: int) -> np.ndarray:
        exposure, shift, width = looks[row["patient_id"]]
        y, x = np.mgrid[0:size, 0:size] / size
        gap = 0.12 * (1 - row["score"] / 5)                   # joint space narrows with the grade
        centre = 0.5 + 0.08 * shift
        half = 0.25 + 0.05 * width
        bone = (np.abs(x - 0.5) < half) & (np.abs(y - centre) > gap / 2) & (np.abs(y - centre) < 0.45)
        image = 60 + 25 * exposure + 140 * bone
        rng = np.random.default_rng([seed, zlib.crc32(row["scan_id"].encode())])  # stable across processes
        clip = image[None] + rng.normal(0, 12, size=(frames, size, size))
        return np.clip(clip, 0, 255).astype(np.uint8)
    return load_clip


def toy_knee(arg, *, on_bad_input: str = "fail", **defaults) -> LongitudinalDataset:
    opts = _options(arg, defaults)
    table, looks = _table(opts["n_patients"], opts["seed"])
    return LongitudinalDataset(name="toy-knee", kind="knee-xray", scans=table,
                               load_clip=_renderer(looks, opts["seed"]),
                               cache_key=f"toy-knee-v1-{opts['n_patients']}-{opts['seed']}",
                               score_name="OA grade", rule=RULE)
