"""Real-data adapters through the whole pipeline: ``--grid table3 --preset smoke`` on a
manifest of DICOM/mp4/avi/npy clips and on the ADNI-like fixture, and the skip policy's
report in the run records and on the console."""
import json

import pytest

import fixtures_realdata as fx
from bench.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::bench.data.readers.ClipWarning")


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    manifest = fx.build_lus(root / "lus")
    csv, volumes = fx.build_adni(root / "adni")
    return root, manifest, csv, volumes


def records(out) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "table3" / "runs").glob("*.json"))]


def test_table3_smoke_on_real_fixtures(real_data, tmp_path):
    root, manifest, csv, volumes = real_data
    lus, adni = f"lus-manifest:{manifest}", f"adni:{csv},{volumes}"
    argv = ["--grid", "table3", "--preset", "smoke", "--data", f"lus={lus}", "--data", f"adni={adni}",
            "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    recs = records(tmp_path)
    assert len(recs) == 6
    assert {r["data"]["source"] for r in recs} == {lus, adni}
    by_ds = {r["dataset"]: r["data"] for r in recs}
    assert by_ds["lus"]["scans"] == 7 and by_ds["adni"]["scans"] == 7
    assert by_ds["adni"]["score"] == "MMSE" and by_ds["lus"]["score"] == "S/F"
    assert all(r["data"]["skipped"] == [] for r in recs)


def test_skip_policy_is_reported_in_records_and_console(real_data, tmp_path, capsys):
    root, manifest, _, _ = real_data
    rows = fx.lus_rows(manifest.parent) + [["P04", "2021-03-01", "clips/missing.dcm", "90", "0.5", "R1"],
                                           ["P01", "2021-03-20", "clips/p01_v1_R1.dcm", "nan", "0.5", "R1"]]
    bad = fx.write_csv(manifest.parent / "bad_manifest.csv", fx.LUS_HEADER, rows)
    base = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse",
            "--data", f"lus=lus-manifest:{bad}", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")]
    assert main(base) == 1  # default policy: nothing trains, every problem is listed
    err = capsys.readouterr().err
    assert "row 9" in err and "missing.dcm" in err and "row 10" in err
    assert main(base + ["--on-bad-input", "skip"]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "missing.dcm" in out
    (rec,) = records(tmp_path)
    assert rec["data"]["scans"] == 7
    assert any("row 9" in s and "missing.dcm" in s for s in rec["data"]["skipped"])
    assert any("row 10" in s for s in rec["data"]["skipped"])
