"""Every axis of the ablation is open: loss, similarity and data-source plugins installed with
pip, and any cohort with its own pair-label rule through ``longitudinal:``.

The three example packages under ``examples/`` are pip-installed for real (their own
pyproject, built by setuptools) into a temporary directory put on ``sys.path``, as
``tests/test_plugin.py`` does for the example backbone.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench import sweep
from bench.cli import main
from bench.data.check import check_data
from bench.data.pairs import SF_RULE, BinRule, DeltaRule, make_pairs, rule_from_options
from bench.data.sources import SOURCES, load_dataset
from bench.losses import LOSSES, LossSpec
from bench.plugins import Entry, PluginError
from bench.cell import CODE_VERSION
from bench.similarity import SIMILARITIES, similarity
from tests.fixtures_realdata import build_lus, write_csv, write_npy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PACKAGES = ("learner_bench_margin_loss", "learner_bench_rbf_similarity", "learner_bench_toy_knee")
REGISTRIES = (LOSSES, SIMILARITIES, SOURCES)


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    site = root / "site"
    for name in PACKAGES:
        source = shutil.copytree(EXAMPLES / name, root / name)  # building writes into the source
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                        "--no-build-isolation", "--disable-pip-version-check", "--target", str(site),
                        str(source)], check=True, capture_output=True)
    sys.path.insert(0, str(site))
    for registry in REGISTRIES:
        registry.refresh()
    yield site
    sys.path.remove(str(site))
    for module in [m for m in sys.modules if m.startswith(PACKAGES)]:
        del sys.modules[module]
    for registry in REGISTRIES:
        registry.refresh()


def _options(out: Path, **kw) -> sweep.SweepOptions:
    return sweep.SweepOptions(**{"grid": "table3", "preset": "smoke", "out": out, "cache_dir": out / "cache", **kw})


def test_plugins_are_listed_with_their_source(plugins, capsys):
    for flag, name in (("--list-losses", "margin"), ("--list-sims", "rbf"), ("--list-sources", "toy-knee")):
        assert main([flag]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if f" {name} " in ln)
        assert "plugin" in line
    assert [e.name for e in LOSSES.entries()][:3] == ["mse", "cl", "wcl"]  # built-ins first, in order


def test_plugin_loss_similarity_and_source_run_in_a_grid_and_tables(plugins, tmp_path):
    o = _options(tmp_path, datasets=["knee"], data={"knee": "toy-knee"}, losses=["mse", "margin"],
                 sims=["cos", "rbf"])
    result = sweep.run(o)
    assert result.ran == 5 and not result.failed  # mse, margin, margin+rbf, majority, untrained
    assert main(["--grid", "table3", "--preset", "smoke", "--out", str(tmp_path), "--cache-dir",
                 str(tmp_path / "cache"), "--datasets", "knee", "--data", "knee=toy-knee",
                 "--losses", "mse,margin", "--sims", "cos,rbf"]) == 0  # nothing left to run: tables
    csv = pd.read_csv(tmp_path / "table3" / "table3.csv")
    methods = csv[csv["kind"] == "method"]
    assert sorted(zip(methods["loss"], methods["sim"])) == [("margin", "cos"), ("margin", "rbf"), ("mse", "cos")]
    assert not csv["stale"].any()  # a fresh run of plugin rows is never stale
    md = (tmp_path / "table3" / "table3.md").read_text()
    assert "MSE + Margin (rbfSim)" in md and "MSE + Margin" in md
    margin = next(r for r in result.records if r.loss == "margin" and r.sim == "rbf")
    parts = margin.code_version.split("+")
    assert parts[0] == CODE_VERSION and len(parts) == 4  # + loss, similarity and source plugin code
    assert margin.data.pair_rule == "score bins 0.5|1.5|2.5|3.5 (right-closed), better down"


def test_editing_a_plugin_makes_only_its_cells_stale(plugins, tmp_path):
    o = _options(tmp_path, datasets=["lus"], losses=["mse", "margin"], references=False)
    assert sweep.run(o).ran == 2
    module = plugins / "learner_bench_margin_loss" / "term.py"
    text = module.read_text()
    try:
        module.write_text(text.replace("MARGIN = 0.1", "MARGIN = 0.2"))
        states = sweep.cell_states(sweep.plan(o))
    finally:
        module.write_text(text)
    assert [r.loss for r in states.stale.values()] == ["margin"]
    assert [r.loss for r in states.finished.values()] == ["mse"]


def _fake_plugin(monkeypatch, registry, name, obj):
    monkeypatch.setitem(registry._entries, name, Entry(name, obj, "plugin", f"tests:{name}"))


@pytest.mark.parametrize("name, term, message", [
    ("vector", lambda u, y, sim: u.sum(1), "loss vector (plugin tests:vector) returned (8,); it must return a scalar"),
    ("nan", lambda u, y, sim: u.sum() * float("nan"), "loss nan (plugin tests:nan) returned nan"),
])
def test_a_broken_loss_plugin_fails_its_cell_naming_it(monkeypatch, tmp_path, name, term, message):
    _fake_plugin(monkeypatch, LOSSES, name, term)
    result = sweep.run(_options(tmp_path, datasets=["lus"], losses=[name], references=False))
    assert len(result.failed) == 1 and message in result.failed[0][1]
    assert result.records[0].status == "failed" and not result.records[0].metrics


def test_a_similarity_plugin_is_checked_naming_it(monkeypatch):
    _fake_plugin(monkeypatch, SIMILARITIES, "wide", lambda u: torch.full((len(u), len(u)), 1.5))
    _fake_plugin(monkeypatch, SIMILARITIES, "flat", lambda u: torch.ones(len(u)))
    u, y = torch.randn(8, 4), torch.arange(8.0)
    with pytest.raises(PluginError, match=r"similarity wide \(plugin tests:wide\) returned 1.5; values must lie in \(0, 1\]"):
        LossSpec("cl", "wide")(torch.zeros(8), u, y)
    with pytest.raises(PluginError, match=r"similarity flat .* returned \(8,\) for 8 embeddings"):
        similarity(u, "flat")


def test_unknown_names_are_one_line_usage_errors(usage_error):
    usage_error(["--losses", "margn", "--preset", "smoke"], "unknown loss 'margn'; valid: mse, cl, wcl")
    usage_error(["--sims", "dot", "--preset", "smoke"], "unknown similarity 'dot'; valid: cos, l2")
    usage_error(["--datasets", "knee", "--preset", "smoke"], "dataset 'knee' has no default source")
    usage_error(["--grid", "table3", "--data", "knee=synthetic-lus", "--preset", "smoke"],
                "--data knee=synthetic-lus: the grid has no knee row (datasets: lus, adni)")
    usage_error(["--grid", "table3", "--data", "lus=synthetic-mri", "--preset", "smoke"],
                "'lus' is the paper's lus dataset, printed beside its published numbers, but this source gives mri")
    usage_error(["--datasets", "Knee-1", "--data", "Knee-1=synthetic-lus", "--preset", "smoke"],
                "dataset name 'Knee-1': use lowercase letters, digits and _")


# -------------------------------------------------------------------- pair rules

def test_bin_rule_is_right_closed_and_follows_the_direction():
    before, after = np.array([430.0, 431.0, 200.0, 100.0]), np.array([431.0, 430.0, 270.0, 300.0])
    assert SF_RULE.labels(before, after).tolist() == [2, 0, 1, 2]  # 430 is in 275-430
    lower_better = BinRule((0.5, 1.5), higher_is_better=False)
    assert lower_better.labels(np.array([0.2, 1.0, 2.0]), np.array([1.0, 0.2, 2.4])).tolist() == [0, 2, 1]
    assert lower_better.bins(np.array([0.5, 0.51, 9.0])).tolist() == [0, 1, 2]


def test_delta_rule_and_spec_options():
    rule = rule_from_options({"delta": "2", "higher_is_better": "false"}, None, "x")
    assert rule == DeltaRule(2.0, higher_is_better=False)
    assert rule.labels(np.array([10.0, 10, 10]), np.array([12.0, 8, 11])).tolist() == [0, 2, 1]
    assert rule_from_options({"bins": "1|2"}, None, "x") == BinRule((1.0, 2.0))
    assert rule_from_options({}, SF_RULE, "x") is SF_RULE
    for options, message in (({}, "x: needs its pair-label rule"), ({"bins": "1", "delta": "1"}, "not both"),
                             ({"bins": "2|1"}, "increasing"), ({"delta": "-1"}, "delta='-1'"),
                             ({"delta": "1", "higher_is_better": "no"}, "valid: true, false")):
        with pytest.raises(ValueError, match=message):
            rule_from_options(options, None, "x")


# -------------------------------------------------------------------- any cohort

def _cohort(root: Path, n_patients: int = 12) -> Path:
    """A knee-like cohort: npy clips, a 0-10 score (lower better), three visits each."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(n_patients):
        score = rng.uniform(2, 8)
        for v in range(3):
            path = write_npy(root / "clips" / f"p{p}_v{v}.npy", rng.integers(0, 255, (4, 24, 24), dtype=np.uint8))
            rows.append([f"P{p:02d}", v + 1, str(path.relative_to(root)), round(score, 2)])
            score += rng.choice([-2.0, 0.0, 2.0])
    return write_csv(root / "manifest.csv", ["patient_id", "visit", "path", "score"], rows)


def test_longitudinal_cohort_labels_pairs_by_its_own_rule(tmp_path):
    manifest = _cohort(tmp_path)
    ds = load_dataset(f"longitudinal:{manifest},delta=1,higher_is_better=false")
    pairs = make_pairs(ds.scans, ds.rule)
    change = pairs["score_b"] - pairs["score_a"]
    want = np.where(change <= -1, 2, np.where(change >= 1, 0, 1))  # lower is better
    assert (pairs["label"].to_numpy() == want).all() and set(want) == {0, 1, 2}
    assert ds.kind == "longitudinal" and len(ds.rule.coarse) == 3  # SupCon's classes: score quartiles
    assert check_data(f"longitudinal:{manifest},delta=1,higher_is_better=false", progress=False).ok


def test_longitudinal_cohort_runs_a_grid_as_its_own_dataset(tmp_path):
    manifest = _cohort(tmp_path / "knee")
    result = sweep.run(_options(tmp_path, datasets=["knee"], data={"knee": f"longitudinal:{manifest},delta=1"},
                                losses=["mse"], references=False))
    assert result.ran == 1 and not result.failed
    assert result.records[0].data.pair_rule == "score change of at least 1, better up"


def test_longitudinal_needs_exactly_one_rule(tmp_path, usage_error):
    manifest = _cohort(tmp_path)
    usage_error(["check-data", f"longitudinal:{manifest}"], "needs its pair-label rule: bins=E1|E2|…")
    usage_error(["--datasets", "knee", "--data", f"knee=longitudinal:{manifest},bins=1|2,delta=1",
                 "--preset", "smoke"], "give bins= or delta=, not both")


def test_lus_manifest_is_the_longitudinal_machinery_with_sf_bins(tmp_path):
    """The S/F preset and the generic source read the same manifest into the same pairs."""
    manifest = build_lus(tmp_path)
    table = pd.read_csv(manifest)
    table["score"] = (table["spo2"] / table["fio2"].where(table["fio2"] <= 1, table["fio2"] / 100)).round(3)
    generic = write_csv(tmp_path / "generic.csv", ["patient_id", "visit", "path", "score", "zone"],
                        table[["patient_id", "visit", "path", "score", "zone"]].values.tolist())
    lus = load_dataset(f"lus-manifest:{manifest}")
    other = load_dataset(f"longitudinal:{generic},bins=180|275|430")
    assert lus.rule == other.rule == SF_RULE
    a, b = make_pairs(lus.scans, lus.rule), make_pairs(other.scans, other.rule)
    assert a["label"].tolist() == b["label"].tolist() and len(a) == 4


def _pairs_loop(scans: pd.DataFrame) -> list[tuple[int, int]]:
    """make_pairs by the book: per (patient, zone) group, each visit's scans with the next's."""
    scans = scans.reset_index(drop=True)
    keys = ["patient_id"] + (["zone"] if "zone" in scans.columns else [])
    out = []
    for _, group in scans.groupby(keys, sort=True, dropna=False):
        visits = sorted(group["visit"].unique())
        for v_a, v_b in zip(visits[:-1], visits[1:]):
            out += [(a, b) for a in group.index[group["visit"] == v_a] for b in group.index[group["visit"] == v_b]]
    return out


@pytest.mark.parametrize("spec", ["synthetic-lus:n_patients=60,test_patients=0",
                                  "synthetic-mri:n_patients=40,test_patients=0"])
def test_make_pairs_matches_the_loop_pair_for_pair(spec, tmp_path):
    scans = load_dataset(spec).scans.sample(frac=1.0, random_state=0)  # any row order
    pairs = make_pairs(scans, SF_RULE)
    assert list(zip(pairs["a"], pairs["b"])) == _pairs_loop(scans)
    real = load_dataset(f"lus-manifest:{build_lus(tmp_path)}").scans  # dates as visits, zones
    pairs = make_pairs(real, SF_RULE)
    assert list(zip(pairs["a"], pairs["b"])) == _pairs_loop(real) and len(pairs) == 4


def test_the_beyond_grid_names_every_built_in_loss():
    from bench.grid import BEYOND_LOSSES
    assert list(BEYOND_LOSSES) == [e.name for e in LOSSES.entries() if e.source == "built-in"]
