"""With default options, worker processes and Ray give the same results (identical table
CSVs) as the in-process loop, and a failing cell is reported without stopping the sweep."""
import json
import os
from pathlib import Path

import pytest

from bench.cli import main

BASE = ["--grid", "table3", "--preset", "smoke"]


def metrics_by_run(out: Path) -> dict[str, dict]:
    runs = (out / "table3" / "runs").glob("*.json")
    return {p.stem: json.loads(p.read_text())["metrics"] for p in runs}


def same_tables(out: Path, reference: Path) -> None:
    """The table CSVs are byte-identical and so are the per-cell metrics."""
    assert (out / "table3" / "table3.csv").read_text() == (reference / "table3" / "table3.csv").read_text()
    assert metrics_by_run(out) == metrics_by_run(reference)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    argv = BASE + ["--datasets", "lus", "--out", str(root / "out"), "--cache-dir", str(root / "cache")]
    assert main(argv) == 0
    return root


def test_process_workers_match_local(local_reference, tmp_path):
    argv = BASE + ["--datasets", "lus", "--jobs", "2", "--out", str(tmp_path),
                   "--cache-dir", str(local_reference / "cache")]
    assert main(argv) == 0
    same_tables(tmp_path, local_reference / "out")


def test_failed_cell_is_reported_once_recorded_and_sweep_goes_on(local_reference, tmp_path, capsys):
    # unreadable weights for the 2D ResNet: its cells fail in the workers, the TSM cells run
    weights = tmp_path / "broken.safetensors"
    weights.write_bytes(b"not a checkpoint")
    argv = BASE + ["--datasets", "lus", "--backbones", "tsm_r18,resnet2d_r18", "--pretrained",
                   f"resnet2d_r18={weights}", "--jobs", "2", "--no-references", "--out", str(tmp_path / "out"),
                   "--cache-dir", str(local_reference / "cache")]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert out.count("failed smoke-lus-resnet2d_r18") == 3 and "3 cell(s) failed" in out
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "table3" / "runs").glob("*.json")]
    failed = [r for r in records if r["status"] == "failed"]
    assert len(records) == 6 and len(failed) == 3
    assert all(r["metrics"] is None and r["backbone"] == "resnet2d_r18" and r["error"] for r in failed)
    md = (tmp_path / "out" / "table3" / "table3.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| 2D ResNet | MSE |"))
    assert row.count("failed") == 2  # accuracy and F1 (ours), the paper's columns beside them


@pytest.mark.slow
def test_ray_executor_matches_local(local_reference, tmp_path):
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        argv = BASE + ["--datasets", "lus", "--executor", "ray", "--out", str(tmp_path),
                       "--cache-dir", str(local_reference / "cache")]
        assert main(argv) == 0
    finally:
        ray.shutdown()
    same_tables(tmp_path, local_reference / "out")
