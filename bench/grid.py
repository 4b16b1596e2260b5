"""Grids: the table rows (dataset, backbone, loss, similarity) a sweep runs, seed by seed.

A row with a seed and the sweep's settings is a cell (:mod:`bench.cell`), which names
itself; a grid only says which rows, in the paper's order, and how the axis filters
(``--backbones`` etc.) select and extend them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from typing import Callable

from bench.paper import TABLE4

PAPER_DATASETS = ("lus", "adni")  # the paper's; any other name is a dataset the user brings (--data)
PAPER_SIMILARITIES = ("cos", "l2")
PAPER_BACKBONES = ("tsm_r18", "resnet2d_r18", "swin", "vit", "timesformer", "videomae")
PAPER_LOSSES = ("mse", "cl", "wcl")


@dataclass(frozen=True)
class Row:
    """One table row: the run settings except the seed."""

    dataset: str
    backbone: str
    loss: str
    sim: str = "cos"


def _table3() -> list[Row]:
    return [Row(d, "tsm_r18", loss) for d in PAPER_DATASETS for loss in PAPER_LOSSES]


def _table4() -> list[Row]:
    return [Row("lus", b, loss, sim) for b, loss, sim, _, _ in TABLE4]


def _full() -> list[Row]:
    rows = []
    for b in PAPER_BACKBONES:
        rows.append(Row("lus", b, "mse"))  # the similarity does not enter plain MSE
        rows += [Row("lus", b, loss, sim) for loss in ("cl", "wcl") for sim in PAPER_SIMILARITIES]
    return rows


# The paper's losses and the extra built-ins (plugins join with ``--losses``, so a grid does not
# change with what is installed); a test checks it names every built-in loss.
BEYOND_LOSSES = ("mse", "cl", "wcl", "wcl_out", "rnc", "yaware", "supcon")


def _beyond() -> list[Row]:
    return [Row(d, "tsm_r18", loss) for d in PAPER_DATASETS for loss in BEYOND_LOSSES]


# Reference rows (bench.references runs them): on the same splits and seeds as the method rows.
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


GRIDS = {"table3": _table3, "table4": _table4, "full": _full, "beyond": _beyond}


def grid_rows(name: str) -> list[Row]:
    if name not in GRIDS:
        raise KeyError(f"unknown grid {name!r}; valid: {', '.join(GRIDS)}")
    return GRIDS[name]()


def select(rows: list[Row], axis: str, values: list[str] | None) -> list[Row]:
    """Filter-or-extend one axis: keep rows whose value is listed; a listed value the grid
    lacks gets a copy of every distinct row of the grid with that axis replaced (so
    ``--backbones mine`` runs a new backbone under the grid's losses and similarities)."""
    if not values:
        return rows
    present = {getattr(r, axis) for r in rows}
    out = [r for r in rows if getattr(r, axis) in values]
    templates = list(dict.fromkeys(replace(r, **{axis: ""}) for r in rows))
    for v in values:
        if v not in present:
            out += [replace(t, **{axis: v}) for t in templates]
    out = list(dict.fromkeys(r if r.loss != "mse" else replace(r, sim="cos") for r in out))
    return out


def validate_axis(name: str, values: list[str] | None, valid: list[str] | tuple[str, ...]) -> None:
    for v in values or []:
        if v not in valid:
            raise KeyError(f"unknown {name} {v!r}; valid: {', '.join(valid)}")
