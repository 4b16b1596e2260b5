"""The paper's published numbers (accuracy in %, F1 as printed), to print beside ours.

Table 3 does not say which F1; we compare it with our macro-F1 (see README).
"""
from __future__ import annotations

# (dataset, loss) -> (accuracy, f1); TSM-R18, cosine similarity.
TABLE3 = {
    ("lus", "mse"): (55.48, 0.460), ("lus", "cl"): (68.25, 0.736), ("lus", "wcl"): (62.80, 0.620),
    ("adni", "mse"): (31.25, 0.250), ("adni", "cl"): (31.99, 0.121), ("adni", "wcl"): (37.51, 0.347),
}

# Table 4 in the paper's row order: (backbone, loss, similarity, accuracy, f1); LUS.
TABLE4 = [
    ("tsm_r18", "cl", "cos", 68.25, 0.736),
    ("resnet2d_r18", "cl", "cos", 65.70, 0.65),
    ("swin", "mse", "cos", 39.63, 0.16),
    ("swin", "wcl", "cos", 55.48, 0.38),
    ("vit", "mse", "cos", 54.27, 0.37),
    ("vit", "wcl", "cos", 57.32, 0.34),
    ("timesformer", "wcl", "cos", 62.20, 0.44),
    ("videomae", "wcl", "cos", 56.80, 0.40),
    ("tsm_r18", "wcl", "l2", 67.90, 0.59),
]


def published(dataset: str, backbone: str, loss: str, sim: str) -> tuple[float, float] | None:
    """The paper's (accuracy, F1) for this configuration, or None where it reports none."""
    for b, l, s, acc, f1 in TABLE4:
        if dataset == "lus" and (b, l, s) == (backbone, loss, sim):
            return acc, f1
    if backbone == "tsm_r18" and sim == "cos":
        return TABLE3.get((dataset, loss))
    return None
