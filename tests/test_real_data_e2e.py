"""Real-data adapters through the whole pipeline: ``--grid table3 --preset smoke`` on a
manifest of DICOM/mp4/avi/npy clips and on the ADNI-like fixture, the skip policy's
report in the run records and on the console, and a messy clinical export (every kind of
broken row, decode-time failures included) that a skip sweep gets through."""
import json

import numpy as np

import pytest

import fixtures_realdata as fx
from bench.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::bench.data.readers.ClipWarning")


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    manifest = fx.build_lus(root / "lus")
    csv, volumes = fx.build_adni(root / "adni")
    fx.add_adni_patients(csv, volumes, 3)  # 3 patients cannot give every seed two train labels
    return root, manifest, csv, volumes


REFERENCE_ROWS = ("majority", "untrained", "oracle")


def records(out, methods_only: bool = False) -> list[dict]:
    """The run records of a table3 sweep (``methods_only``: without the reference rows)."""
    recs = [json.loads(p.read_text()) for p in sorted((out / "table3" / "runs").glob("*.json"))]
    return [r for r in recs if not (methods_only and r["loss"] in REFERENCE_ROWS)]


def test_table3_smoke_on_real_fixtures(real_data, tmp_path):
    root, manifest, csv, volumes = real_data
    lus, adni = f"lus-manifest:{manifest}", f"adni:{csv},{volumes}"
    argv = ["--grid", "table3", "--preset", "smoke", "--data", f"lus={lus}", "--data", f"adni={adni}",
            "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    recs = records(tmp_path)
    assert len(records(tmp_path, methods_only=True)) == 6
    assert {r["data"]["source"] for r in recs} == {lus, adni}
    by_ds = {r["dataset"]: r["data"] for r in recs}
    assert by_ds["lus"]["scans"] == 7 and by_ds["adni"]["scans"] == 16
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
    (rec,) = records(tmp_path, methods_only=True)
    assert rec["data"]["scans"] == 7
    assert any("row 9" in s and "missing.dcm" in s for s in rec["data"]["skipped"])
    assert any("row 10" in s for s in rec["data"]["skipped"])


def test_messy_export_skip_sweep_finishes_and_reports_every_dropped_row(tmp_path, capsys):
    manifest, expected, _ = fx.build_messy_lus(tmp_path / "messy")
    base = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse",
            "--data", f"lus=lus-manifest:{manifest}", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")]
    assert main(base) == 1  # default policy: one message listing every row validation finds
    err = capsys.readouterr().err
    assert "Traceback" not in err
    decode_time = {"video with a damaged middle (mp4)", "video with a damaged middle (avi)",
                   "DICOM cine with a damaged frame", "float array full of NaN", "all-black clip"}
    for kind, rows in expected.items():
        for line in rows:
            assert (f"row {line}," in err or f"row {line}:" in err) == (kind not in decode_time), (kind, line)
    assert main(base + ["--on-bad-input", "skip"]) == 0  # the sweep finishes
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    skipped_lines = [line for line in out.out.splitlines() if line.startswith("skipped lus-manifest")]
    every_row = sorted(line for rows in expected.values() for line in rows)
    assert sorted(int(s.split("row ")[1].split(",")[0].split(":")[0]) for s in skipped_lines) == every_row
    recs = records(tmp_path)  # every record, the reference rows' too, says what was dropped
    assert records(tmp_path, methods_only=True) and all(r["status"] == "finished" for r in recs)
    for rec in recs:
        assert rec["data"]["scans"] == 36 and rec["data"]["patients"] == 18
        assert sorted(int(s.split("row ")[1].split(",")[0].split(":")[0]) for s in rec["data"]["skipped"]) == every_row


def test_decode_time_failure_fails_the_sweep_in_one_message(real_data, tmp_path, capsys):
    root, manifest, _, _ = real_data
    clips = manifest.parent / "clips"
    fx.damage_middle(fx.write_noise_video(clips / "mid.mp4"))
    fx.write_npy(clips / "nan.npy", np.full((4, 32, 32), np.nan, np.float32))
    rows = fx.lus_rows(manifest.parent) + [["P03", "2021-04-01", "clips/mid.mp4", "95", "0.5", "R1"],
                                           ["P03", "2021-04-02", "clips/nan.npy", "95", "0.5", "R1"]]
    bad = fx.write_csv(manifest.parent / "decode_manifest.csv", fx.LUS_HEADER, rows)
    base = ["--grid", "table3", "--preset", "smoke", "--datasets", "lus", "--losses", "mse",
            "--data", f"lus=lus-manifest:{bad}", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")]
    assert main(base) == 1  # the probe passes both; the cache warm-up finds them, before any cell
    err = capsys.readouterr().err
    assert "Traceback" not in err and "2 problem(s)" in err
    assert "row 9, " in err and "mid.mp4: video is corrupt or truncated after" in err
    assert "row 10, " in err and "nan.npy: array contains NaN" in err
    assert not list(tmp_path.glob("table3/runs/*.json"))  # no cell ran
