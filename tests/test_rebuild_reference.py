"""results/reference/rebuild.sh, on a clone of this commit with the smoke preset: `run` computes a
part from a clean clone of one commit and resumes without redoing a cell, `stage` keeps the
finished records where the repository tracks them, `install` refuses a part with a missing cell
and otherwise replaces the part's records and rebuilds its tables."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _sh(clone: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REBUILD_DIR": str(work), "REBUILD_PRESET": "smoke", "PYTHON": sys.executable}
    return subprocess.run(["bash", str(clone / "results/reference/rebuild.sh"), *args], cwd=clone, env=env,
                          capture_output=True, text=True)


def test_run_resume_stage_and_install_a_part(tmp_path):
    clone, work = tmp_path / "repo", tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    first = _sh(clone, work, "run", commit, "table3", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    runs = work / "out/table3/runs"
    records = sorted(runs.glob("*.json"))
    ids = (work / "table3.ids").read_text().split()
    assert sorted(p.stem for p in records) == sorted(ids) and len(ids) == 12  # 2 datasets × 6 rows, 1 seed
    assert {json.loads(p.read_text())["git_commit"] for p in records} == {commit}
    mtimes = {p: p.stat().st_mtime_ns for p in records}
    again = _sh(clone, work, "run", commit, "table3", "1")  # resumes: every cell found finished
    assert again.returncode == 0 and {p: p.stat().st_mtime_ns for p in records} == mtimes

    staged = _sh(clone, work, "stage", "table3", "1")
    assert staged.returncode == 0, staged.stderr
    assert sorted(p.stem for p in (clone / "results/rebuild/table3/runs").glob("*.json")) == sorted(ids)
    ignored = subprocess.run(["git", "-C", str(clone), "check-ignore", "-q", "results/rebuild/table3/runs/x.json"])
    assert ignored.returncode == 1  # staged records can be committed

    records[0].unlink()
    refused = _sh(clone, work, "install", "table3", "1")
    assert refused.returncode == 1 and f"{records[0].name} is missing" in refused.stderr
    assert (clone / "results/reference/table3/runs").is_dir()  # the reference is left as it was
    assert _sh(clone, work, "run", commit, "table3", "1").returncode == 0  # the staged copy comes back in
    installed = _sh(clone, work, "install", "table3", "1")
    assert installed.returncode == 0, installed.stderr[-2000:]
    ref = clone / "results/reference/table3"
    assert sorted(p.stem for p in (ref / "runs").glob("*.json")) == sorted(ids)
    assert "smoke" in (ref / "config.toml").read_text() and (ref / "table3.md").stat().st_size > 0
    assert not (clone / "results/rebuild/table3").exists()
    assert _sh(clone, work, "run", commit, "nosuch", "1").returncode == 2
