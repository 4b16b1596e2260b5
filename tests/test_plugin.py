"""A third-party backbone found through the ``learner_bench.backbones`` entry point.

The example plugin is pip-installed for real (its own pyproject, built by setuptools) into
a temporary directory put on ``sys.path``, so the environment is left as it was.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from backbones import backbone_info, create, list_backbones
from backbones.listing import model_size
from backbones.registry import refresh
from bench.cli import main
from bench.cell import CODE_VERSION

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "learner_bench_plugin_example"
NAME = "example_c3d"


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, root / "src")  # building writes egg-info / build dirs into the source
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--disable-pip-version-check", "--target", str(site), str(source)],
                   check=True, capture_output=True)
    sys.path.insert(0, str(site))
    refresh()
    yield str(site)
    sys.path.remove(str(site))
    for module in [m for m in sys.modules if m.startswith("learner_bench_example_plugin")]:
        del sys.modules[module]
    refresh()


def test_plugin_is_listed(plugin):
    assert NAME in list_backbones()
    info = backbone_info(NAME)
    assert (info.source, info.family, info.default_size) == ("plugin", "c3d", 112)


def test_plugin_builds_and_trains(plugin):
    model = create(NAME, num_frames=4, img_size=32, variant="tiny")
    out = model(torch.randn(2, 4, 3, 32, 32))
    assert out.shape == (2, model.embed_dim)
    out.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_plugin_in_listing(plugin):
    params_paper, dim_paper = model_size(NAME, "paper")
    params_tiny, dim_tiny = model_size(NAME, "tiny")
    assert (dim_paper, dim_tiny) == (64, 16) and params_tiny < params_paper


def test_plugin_runs_in_table4_grid_and_cli_listing(plugin, tmp_path, capsys):
    assert main(["--list-backbones"]) == 0
    assert NAME in capsys.readouterr().out
    argv = ["--grid", "table4", "--backbones", NAME, "--preset", "smoke", "--out", str(tmp_path),
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    csv = pd.read_csv(tmp_path / "table4" / "table4.csv")
    methods = csv[csv["kind"] == "method"]
    assert set(methods["backbone"]) == {NAME} and (csv["n"] == 1).all()
    assert sorted(zip(methods["loss"], methods["sim"])) == [("cl", "cos"), ("mse", "cos"), ("wcl", "cos"), ("wcl", "l2")]
    untrained = csv[csv["loss"] == "untrained"]
    assert untrained["backbone"].tolist() == [NAME]
    # a plugin's own module is part of its cells' code version
    rec = json.loads(next((tmp_path / "table4" / "runs").glob(f"*{NAME}-mse*.json")).read_text())
    assert rec["code_version"].startswith(CODE_VERSION + "+") and len(rec["code_version"]) == 12 + 1 + 8


def test_refresh_forgets_a_removed_plugin(plugin, monkeypatch):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != plugin])
    refresh()
    assert NAME not in list_backbones()
    monkeypatch.undo()
    refresh()
    assert NAME in list_backbones()
