"""Real data never crashes a sweep and never slips through (issue 15).

Decode-time faults (a damaged middle of a video, NaN arrays, blank clips, fewer frames
than declared), malformed manifests (symlink loops, ragged rows, other delimiters and
encodings), 16-bit DICOM shown as a viewer shows it, the same clip under two patients,
bounded decoding, and a clip cache that verifies what it reads. Every fixture is made
here: PyAV-written videos, pydicom's own 16-bit test files, symlinks, raw CSV bytes.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fixtures_realdata as fx
from bench.data import cache as cache_mod
from bench.data.cache import cache_path, load_clips, read_entry, sweep_temp_files
from bench.data.check import check_data, format_report
from bench.data.readers import ClipReadError, decode_clip, probe_clip, read_clip, verify_clip
from bench.data.scans import DataError
from bench.data.sources import load_dataset
from bench.data.store import DataStore

pytestmark = pytest.mark.filterwarnings("ignore::bench.data.readers.ClipWarning")
FRAMES, SIZE = 8, 32


def _raises(fn, path, fragment: str) -> str:
    with pytest.raises(ClipReadError) as err:
        fn(path)
    assert fragment in err.value.reason, err.value.reason
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    return err.value.reason


# ----------------------------------------------------------------------------- pixel values

@pytest.mark.parametrize("name", ["MR_small.dcm", "CT_small.dcm"])
def test_16bit_dicom_loads_as_a_visible_image(tmp_path, name):
    """pydicom's own 16-bit files: raw 127–2145 (MR) / 128–2191 (CT) were 0–8 / 0–9 before."""
    path = fx.copy_testdata_dicom(name, tmp_path / name)
    clip = read_clip(path)
    assert clip.dtype == np.uint8 and clip.shape[0] == 1
    assert int(clip.max()) - int(clip.min()) >= 0.75 * 255  # the spread covers most of 0–255
    assert 40 < clip.mean() < 215
    model = decode_clip(path, FRAMES, SIZE)
    assert model.shape == (FRAMES, SIZE, SIZE) and int(model.max()) - int(model.min()) >= 0.6 * 255


def test_dicom_window_and_modality_lut_follow_the_header(tmp_path):
    """MR_small has Window Center 600 / Width 1600 (DICOM linear): raw values above 1399.5
    are white, the darkest raw value 127 maps to ((127 - 599.5) / 1599 + 0.5) * 255 ≈ 52."""
    import pydicom

    path = fx.copy_testdata_dicom("MR_small.dcm", tmp_path / "mr.dcm")
    raw = pydicom.dcmread(path).pixel_array
    clip = read_clip(path)[0]
    assert (clip[raw >= 1400] == 255).all() and (raw >= 1400).any()
    assert abs(int(clip[raw == raw.min()][0]) - round(((127 - 599.5) / 1599 + 0.5) * 255)) <= 1
    # CT_small has no window: its HU (rescale slope 1, intercept -1024) get the percentile window.
    ct = read_clip(fx.copy_testdata_dicom("CT_small.dcm", tmp_path / "ct.dcm"))
    assert 0.001 < (ct == 255).mean() < 0.02 and 0.001 < (ct == 0).mean() < 0.02


def test_monochrome1_is_inverted(tmp_path):
    clip = read_clip(fx.write_monochrome1_dicom(tmp_path / "m1.dcm"))  # stored ramp 0 -> 4000 left to right
    assert clip[:, :, :3].mean() > 240 and clip[:, :, -3:].mean() < 15


# ----------------------------------------------------------------------------- decode-time faults

@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_with_a_damaged_middle_fails_on_full_decode(tmp_path, suffix):
    path = fx.damage_middle(fx.write_noise_video(tmp_path / f"v{suffix}"))
    probe_clip(path)  # the header and the first frame are fine: a probe cannot see it
    reason = _raises(verify_clip, path, "corrupt or truncated after")
    assert int(reason.split("after ")[1].split(" ")[0]) > 0
    _raises(lambda p: decode_clip(p, FRAMES, SIZE), path, "corrupt or truncated after")


def test_fewer_frames_than_declared(tmp_path):
    path = fx.truncate(fx.write_noise_video(tmp_path / "v.avi", n_frames=20), 0.95)
    probe_clip(path)
    _raises(verify_clip, path, "declares 20 frames but only 19 decode")


def test_dicom_with_a_damaged_frame(tmp_path):
    path = fx.damage_dicom_frame(fx.copy_sonosite(tmp_path / "cine.dcm"), 15)
    probe_clip(path)  # first and last frame decode
    _raises(verify_clip, path, "frame 15 of the 30 declared")  # the library's multi-line message is one line


@pytest.mark.parametrize("array, fragment", [
    (np.full((4, 32, 32), np.nan, np.float32), "NaN or infinite values (frame 0)"),
    (np.concatenate([np.ones((2, 32, 32)), np.full((1, 32, 32), np.inf)]), "NaN or infinite values (frame 2)"),
    (np.zeros((6, 48, 64), np.uint8), "no image content: every pixel of every frame is 0"),
    (np.full((3, 20, 20), 0.5, np.float32), "no image content"),
    (np.broadcast_to(np.array([255, 0, 0], np.uint8), (2, 20, 20, 3)).copy(),
     "every pixel of every frame is the same colour"),
])
def test_nan_and_blank_arrays_fail_on_full_decode(tmp_path, array, fragment):
    path = fx.write_npy(tmp_path / "a.npy", array)
    probe_clip(path)
    _raises(verify_clip, path, fragment)


def test_frames_smaller_than_16_pixels(tmp_path):
    rng = np.random.default_rng(0)
    _raises(probe_clip, fx.write_npy(tmp_path / "one.npy", rng.integers(0, 255, (4, 1, 1), dtype=np.uint8)),
            "frames are 1x1 pixels")
    _raises(probe_clip, fx.write_npy(tmp_path / "thin.npy", rng.integers(0, 255, (4, 15, 64), dtype=np.uint8)),
            "frames are 64x15 pixels")
    verify_clip(fx.write_npy(tmp_path / "ok.npy", rng.integers(0, 255, (4, 16, 16), dtype=np.uint8)))
    _raises(probe_clip, fx.write_video(tmp_path / "tiny.avi", size=(8, 64)), "frames are 64x8 pixels")


def test_decoding_is_bounded_whatever_the_resolution(tmp_path):
    """A 2000x2000 video: one RGB frame is 12 MB; decoding to 32² keeps (numpy) memory flat."""
    path = fx.write_video(tmp_path / "big.mp4", n_frames=3, size=(2000, 2000))
    decode_clip(path, 4, SIZE)  # warm imports
    tracemalloc.start()
    clip = decode_clip(path, 4, SIZE)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2e6, peak
    from bench.data.preprocess import to_model_clip

    full = to_model_clip(read_clip(path), 4, SIZE)  # the whole frames in memory, then resized
    assert clip.shape == full.shape and np.abs(clip.astype(int) - full).mean() < 1.5
    assert clip[:, :, 0].mean() > clip[:, :, -1].mean() + 10  # the bar at the left edge survives


def test_library_exceptions_become_one_line_errors(tmp_path, monkeypatch):
    path = fx.write_npy(tmp_path / "a.npy")
    monkeypatch.setattr(np, "load", lambda *a, **k: (_ for _ in ()).throw(KeyError("boom")))
    _raises(read_clip, path, "cannot be decoded (KeyError")
    _raises(read_clip, tmp_path / ("n" * 300 + ".npy"), "cannot access the file")


# ----------------------------------------------------------------------------- manifests

def _lus(tmp_path) -> tuple[Path, list[list[str]]]:
    root = tmp_path / "lus"
    fx.build_lus(root)
    return root, fx.lus_rows(root)


def _csv_line(cells) -> str:
    return ",".join(f'"{c}"' if "," in c else c for c in cells)


def _write(root: Path, text: str | bytes, name="manifest.csv") -> str:
    path = root / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return f"lus-manifest:{path}"


def _table_wide(spec: str, fragment: str) -> None:
    for policy in ("fail", "skip"):
        with pytest.raises(DataError) as err:
            load_dataset(spec, on_bad_input=policy)
        (problem,) = err.value.problems
        assert fragment in problem.message and Path(problem.path) == Path(spec.split(":", 1)[1]).resolve()
    text = format_report(check_data(spec, progress=False))
    assert fragment in text and "Traceback" not in text


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab")])
def test_other_delimiters_are_named(tmp_path, sep, name):
    root, rows = _lus(tmp_path)
    text = "\n".join(sep.join(r) for r in [fx.LUS_HEADER] + rows)
    _table_wide(_write(root, text), f"looks {name}-separated")


@pytest.mark.parametrize("data, fragment", [
    (("\n".join(_csv_line(r) for r in [fx.LUS_HEADER])).encode("utf-16"), "UTF-16"),
    (b"\x00\x01PK\x03\x04 binary", "NUL bytes"),
    (b"", "the file is empty"),
    (b"\n\n ,, \n", "the file is empty"),
    ("patient_id,Visit,visit,path,score\n".encode(), "column 'visit' appears twice"),
    ("patient_id,visit,,path,score\nP1,1,x,a.npy,300\n".encode(), "column 3 has no name but holds values"),
    ("patient_id,visit,path,score\nP1,1,a.npy,300,x\nP1,2,b.npy,300,y\n".encode(), "every row has 5 cells"),
    ("patient_id,vis\xe9t,path,score\n".encode("latin-1"), "the header is not UTF-8"),
])
def test_unreadable_tables_are_one_line(tmp_path, data, fragment):
    root, _ = _lus(tmp_path)
    _table_wide(_write(root, data), fragment)


def test_semicolons_beside_a_comma_and_an_unbalanced_quote(tmp_path):
    root, rows = _lus(tmp_path)
    _table_wide(_write(root, "patient_id;visit;path;score,_note\nP01;1;a.npy;300,x\n"), "looks semicolon-separated")
    lines = [_csv_line(fx.LUS_HEADER)] + [_csv_line(r) for r in rows]
    lines[3] = lines[3].replace("clips/", '"clips/', 1)  # an unbalanced quote swallows line 5 up to its quote
    with pytest.raises(DataError) as err:
        load_dataset(_write(root, "\n".join(lines) + "\n"))
    (problem,) = [p for p in err.value.problems if p.row == 4]
    assert "opened on line 4 closes on line 5: an unbalanced quote?" in problem.message  # at the next quote


def test_ragged_rows_and_a_wrong_encoding_are_row_problems(tmp_path):
    root, rows = _lus(tmp_path)
    extra = rows[0] + ["oops"]  # extra cells in the FIRST data row (pandas made it the index)
    short = ["P03", "2021-04-01", "clips/p03_v1_R1.npy"]
    latin = _csv_line(["P03", "2021-04-02", "clips/p03_v1_R1.npy", "95", "0.5", "R1"]).encode() + b"\xe9"
    body = [_csv_line(fx.LUS_HEADER), _csv_line(extra)] + [_csv_line(r) for r in rows[1:]] + [_csv_line(short)]
    spec = _write(root, "\n".join(body).encode() + b"\n" + latin + b"\n")
    with pytest.raises(DataError) as err:
        load_dataset(spec)
    problems = {p.row: p for p in err.value.problems}
    assert set(problems) == {2, 9, 10, 3}, err.value.problems  # row 3: P01 left with one visit
    assert "row has 7 cells, the header has 6 (extra ['oops'])" in problems[2].message
    assert "row has 3 cells" in problems[9].message and "'spo2', 'fio2', 'zone'" in problems[9].message
    assert "line 10 is not UTF-8 text (byte 0xE9" in problems[10].message
    assert all(problems[r].path.endswith("manifest.csv") for r in (2, 9, 10))
    assert "only one visit" in problems[3].message
    dataset = load_dataset(spec, on_bad_input="skip")
    assert len(dataset) == 5 and "row2" not in set(dataset.scans["scan_id"])


def test_excel_style_manifest_loads(tmp_path):
    """UTF-8 BOM, CRLF, trailing delimiters, a quoted cell holding a comma, an unnamed empty column."""
    root, rows = _lus(tmp_path)
    header = fx.LUS_HEADER[:3] + [""] + fx.LUS_HEADER[3:] + ["_note", "", ""]
    body = [header] + [r[:3] + [""] + r[3:] + ["seen, twice", "", ""] for r in rows]
    spec = _write(root, b"\xef\xbb\xbf" + "\r\n".join(_csv_line(r) for r in body).encode() + b"\r\n")
    dataset = load_dataset(spec)
    assert len(dataset) == 7 and dataset.skipped == []
    assert list(dataset.scans["row"]) == list(range(2, 9))


def test_symlink_loops_never_stop_validation(tmp_path):
    root, rows = _lus(tmp_path)
    (root / "clips" / "a").symlink_to("b")
    (root / "clips" / "b").symlink_to("a")
    long_name = "clips/" + "n" * 300 + ".npy"
    bad = [["P03", "2021-04-01", "clips/a", "95", "0.5", "R1"], ["P03", "2021-04-02", "clips/a/x.mp4", "95", "0.5", "R1"],
           ["P03", "2021-04-03", long_name, "95", "0.5", "R1"]]
    spec = "lus-manifest:" + str(fx.write_csv(root / "manifest.csv", fx.LUS_HEADER, rows + bad))
    with pytest.raises(DataError) as err:
        load_dataset(spec)
    messages = {p.row: p.message for p in err.value.problems}
    assert messages.keys() == {9, 10, 11}
    assert "symlink loop" in messages[9] and "symlink loop" in messages[10]
    assert "cannot access the file" in messages[11]
    assert len(load_dataset(spec, on_bad_input="skip")) == 7
    # The manifest itself behind a loop: one line naming it.
    (root / "m1.csv").symlink_to("m2.csv")
    (root / "m2.csv").symlink_to("m1.csv")
    with pytest.raises(DataError, match="symlink loop"):
        load_dataset(f"lus-manifest:{root / 'm1.csv'}")


def test_adni_symlink_loop_and_ragged_table_row(tmp_path):
    from bench.data.adni import validate

    csv, folder = fx.build_adni(tmp_path / "adni")
    os.symlink("loop.nii.gz", folder / "loop.nii.gz")
    with open(csv, "a") as f:
        f.write("4001,123_S_4001,bl,2010-01-05,CN,29,29,70.1,70001,surplus\n")
    scans, problems = validate(f"{csv},{folder}")
    assert len(scans) == 7
    by = {(p.row, p.scan_id): p.message for p in problems}
    assert "broken symlink or a symlink loop" in by[(None, "loop.nii.gz")]
    assert "row has 10 cells, the header has 9" in by[(11, "table row 11")]
    with pytest.raises(DataError):
        load_dataset(f"adni:{csv},{folder}")
    assert len(load_dataset(f"adni:{csv},{folder}", on_bad_input="skip")) == 7


# ----------------------------------------------------------------------------- leaks

def test_same_file_or_content_under_two_patients_is_a_leak(tmp_path):
    root, rows = _lus(tmp_path)
    shutil.copy(root / "clips" / "p03_v1_R1.npy", root / "clips" / "copy.npy")
    fx.write_npy(root / "clips" / "p05.npy", fx.us_frames(n_frames=9))
    bad = [["P04", "2021-04-01", "clips/p02_v2_L2.avi", "95", "0.5", "R1"],  # P02's file (path)
           ["P04", "2021-04-02", "clips/p05.npy", "95", "0.5", "R1"],
           ["P05", "2021-04-01", "clips/copy.npy", "95", "0.5", "R1"],        # P03's content (copy)
           ["P05", "2021-04-02", str(root / "clips" / "p05.npy"), "95", "0.5", "R1"]]  # P04's, spelt absolute
    spec = "lus-manifest:" + str(fx.write_csv(root / "manifest.csv", fx.LUS_HEADER, rows + bad))
    with pytest.raises(DataError) as err:
        load_dataset(spec)
    messages = {p.row: p.message for p in err.value.problems}
    assert set(messages) == {5, 6, 9, 10, 11, 12}
    assert "the same file is listed for another patient: row 9 (patient 'P04')" in messages[5]
    assert "row 5 (patient 'P02')" in messages[9] and "train/test leak" in messages[9]
    assert "identical content" in messages[11] and "row 6 (patient 'P03'" in messages[11]
    assert "identical content" in messages[6] and "copy.npy" in messages[6]
    assert "the same file" in messages[10] and "row 12 (patient 'P05')" in messages[10]
    assert len(load_dataset(spec, on_bad_input="skip")) == 4  # both rows of a leak go; P02 is left with one


def test_adni_same_volume_under_two_subjects(tmp_path):
    from bench.data.adni import validate

    csv, folder = fx.build_adni(tmp_path / "adni")
    a = next(folder.rglob("*_I13722.nii.gz"))
    b = next(folder.rglob("*_I46190.nii.gz"))
    shutil.copy(a, b)
    _, problems = validate(f"{csv},{folder}")
    leaks = sorted(p.row for p in problems if "identical content" in p.message)
    assert leaks == [2, 8]


# ----------------------------------------------------------------------------- verified cache

@pytest.fixture
def lus_dataset(tmp_path):
    root, _ = _lus(tmp_path)
    return lambda policy="fail": load_dataset(f"lus-manifest:{root / 'manifest.csv'}", on_bad_input=policy)


def _no_decoding(ds, monkeypatch):
    def refuse(*_):
        raise AssertionError("decoded although the cache holds the clips")
    monkeypatch.setattr(ds, "load_clip", refuse)


def test_cache_round_trip_reads_without_decoding(lus_dataset, tmp_path, monkeypatch):
    clips = load_clips(lus_dataset(), FRAMES, SIZE, tmp_path / "c")[1]
    header, array = read_entry(cache_path(lus_dataset(), FRAMES, SIZE, tmp_path / "c"))
    assert header["shape"] == [7, FRAMES, SIZE, SIZE] and header["dtype"] == "|u1" and len(header["sha256"]) == 64
    again = lus_dataset()
    _no_decoding(again, monkeypatch)
    np.testing.assert_array_equal(load_clips(again, FRAMES, SIZE, tmp_path / "c")[1], clips)


def _corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garbled header":
        data[8:40] = b"\xff" * 32
        path.write_bytes(bytes(data))
    elif how == "pixels overwritten":
        data[-5000:] = bytes(5000)  # shape and header intact
        path.write_bytes(bytes(data))
    elif how == "not a cache file":
        np.save(path.with_suffix(".npy"), np.zeros(3))
        path.with_suffix(".npy").replace(path)


@pytest.mark.parametrize("how, fragment", [("truncated", "truncated"), ("garbled header", "garbled header"),
                                           ("pixels overwritten", "checksum mismatch"),
                                           ("not a cache file", "not a clip cache file")])
def test_corrupt_cache_file_is_named_and_rebuilt(lus_dataset, tmp_path, caplog, how, fragment):
    cache_dir = tmp_path / "c"
    clips = load_clips(lus_dataset(), FRAMES, SIZE, cache_dir)[1]
    path = cache_path(lus_dataset(), FRAMES, SIZE, cache_dir)
    _corrupt(path, how)
    with caplog.at_level(logging.WARNING, logger="bench.data.cache"):
        again = load_clips(lus_dataset(), FRAMES, SIZE, cache_dir)[1]
    np.testing.assert_array_equal(again, clips)  # decoded again, never the damaged bytes
    (record,) = [r for r in caplog.records if r.name == "bench.data.cache"]
    message = record.getMessage()
    assert str(path) in message and fragment in message and "\n" not in message
    read_entry(path)  # the rebuilt file is whole


def test_temp_files_of_killed_writes_are_removed(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f".x.clips.{host}.999999999.tmp"
    alive = tmp_path / f".y.clips.{host}.{os.getpid()}.tmp"
    other_host_fresh = tmp_path / ".z.clips.elsewhere.123.tmp"
    old_unnamed = tmp_path / "tmpabc.npy.tmp"
    for p in (dead, alive, other_host_fresh, old_unnamed):
        p.write_bytes(b"partial")
    past = time.time() - 7200
    os.utime(old_unnamed, (past, past))
    removed = sweep_temp_files(tmp_path)
    assert sorted(removed) == sorted([dead, old_unnamed])
    assert alive.exists() and other_host_fresh.exists()


def test_cache_sweeps_its_folder_once_per_process(lus_dataset, tmp_path, monkeypatch):
    cache_dir = tmp_path / "c"
    cache_dir.mkdir()
    stale = cache_dir / f".old.clips.{socket.gethostname()}.999999999.tmp"
    stale.write_bytes(b"x" * 100)
    monkeypatch.setattr(cache_mod, "_swept", set())
    load_clips(lus_dataset(), FRAMES, SIZE, cache_dir)
    assert not stale.exists() and not list(cache_dir.glob("*.tmp"))


# ----------------------------------------------------------------------------- decode-time rows in a sweep

@pytest.fixture
def decode_failures(tmp_path):
    """The good LUS fixture plus two rows whose files pass the probe but fail to decode (a
    third visit of P03; the second visit of a new patient P05, whose first is then alone)."""
    root, rows = _lus(tmp_path)
    fx.damage_middle(fx.write_noise_video(root / "clips" / "mid.mp4"))
    fx.write_npy(root / "clips" / "nan.npy", np.full((4, 32, 32), np.nan, np.float32))
    fx.write_npy(root / "clips" / "p05_ok.npy", fx.us_frames(n_frames=7))
    bad = [["P03", "2021-04-01", "clips/mid.mp4", "95", "0.5", "R1"],
           ["P05", "2021-04-01", "clips/p05_ok.npy", "95", "0.5", "R1"],  # fine, but P05's other visit is not
           ["P05", "2021-04-02", "clips/nan.npy", "95", "0.5", "R1"]]
    return "lus-manifest:" + str(fx.write_csv(root / "manifest.csv", fx.LUS_HEADER, rows + bad))


def test_decode_failure_fails_with_every_bad_row_listed(decode_failures, tmp_path):
    store = DataStore()
    ds = store.dataset(decode_failures, "fail", {})
    assert len(ds) == 10  # the probe passes them
    with pytest.raises(DataError) as err:
        store.warm([ds], FRAMES, SIZE, tmp_path / "c")
    assert [(p.row, p.path.rsplit("/", 1)[1]) for p in err.value.problems] == [(9, "mid.mp4"), (11, "nan.npy")]
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and "row 9, " in lines[1] and "corrupt or truncated" in lines[1]
    assert "row 11, " in lines[2] and "NaN" in lines[2]


def test_decode_failure_is_skipped_the_same_in_every_process(decode_failures, tmp_path, monkeypatch):
    cache_dir = tmp_path / "c"
    driver = DataStore()
    ds = driver.dataset(decode_failures, "skip", {}, cache_dir)
    key_before, rows_before = ds.cache_key, list(ds.scans["scan_id"])
    (warmed,) = driver.warm([ds], FRAMES, SIZE, cache_dir)
    assert [(p.row, "only one visit" in p.message) for p in warmed.skipped] == [(9, False), (11, False), (10, True)]
    assert len(warmed) == 7 and warmed.cache_key != key_before
    assert len(ds) == 10 and ds.cache_key == key_before and list(ds.scans["scan_id"]) == rows_before  # a value
    assert driver.dataset(decode_failures, "skip", {}, cache_dir) is warmed  # what the cells of this process read
    ds = warmed

    # A --jobs worker or a Ray task loads and validates again: the cache's verdict drops the
    # same rows before the cell computes its splits, and nothing is decoded.
    monkeypatch.setattr("bench.data.realdata.decode_clip", lambda *a: pytest.fail("decoded in a worker"))
    wds = DataStore().dataset(decode_failures, "skip", {}, cache_dir)
    assert wds.cache_key == ds.cache_key and list(wds.scans["scan_id"]) == list(ds.scans["scan_id"])
    assert [str(p) for p in wds.skipped] == [str(p) for p in ds.skipped]
    store = DataStore()
    clips = store.clips(wds, FRAMES, SIZE, cache_dir, "cpu")
    assert clips.shape == (7, FRAMES, SIZE, SIZE) and store.clips(wds, FRAMES, SIZE, cache_dir, "cpu") is clips
    # Loaded without the folder, the dataset still has the rows: its clips would not match the
    # splits a cell made from it, so asking for them is an error naming the rows, not a silent drop.
    late = DataStore()
    lds = late.dataset(decode_failures, "skip", {})
    assert len(lds) == 10 and lds.cache_key == key_before
    with pytest.raises(DataError, match="after its splits were made") as err:
        late.clips(lds, FRAMES, SIZE, cache_dir, "cpu")
    assert [p.row for p in err.value.problems] == [9, 11, 10] and len(lds) == 10
    # The fail policy stops on the recorded rows at once, before anything decodes.
    with pytest.raises(DataError) as err:
        DataStore().dataset(decode_failures, "fail", {}, cache_dir)
    assert [p.row for p in err.value.problems] == [9, 11]


def test_verdict_does_not_depend_on_the_preset(decode_failures, tmp_path, monkeypatch):
    cache_dir = tmp_path / "c"
    store = DataStore()
    store.warm([store.dataset(decode_failures, "skip", {}, cache_dir)], FRAMES, SIZE, cache_dir)
    other = DataStore().dataset(decode_failures, "skip", {}, cache_dir)  # another preset's frames and size
    assert len(other) == 7
    calls = []
    monkeypatch.setattr(other, "load_clip", lambda row, f, s: calls.append(row["scan_id"]) or
                        np.zeros((f, s, s), np.uint8))
    DataStore().warm([other], 4, 16, cache_dir)
    assert len(calls) == 7  # only the rows left are decoded for the new size


# ----------------------------------------------------------------------------- the messy export

@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    return fx.build_messy_lus(tmp_path_factory.mktemp("messy"))


DECODE_TIME = {"video with a damaged middle (mp4)", "video with a damaged middle (avi)",
               "DICOM cine with a damaged frame", "float array full of NaN", "all-black clip"}


def test_check_data_names_every_kind_in_one_line(messy, capsys):
    from bench.cli import main

    manifest, expected, _ = messy
    assert len(expected) == 37
    seen = []
    report = check_data(f"lus-manifest:{manifest}", progress=lambda i, n: seen.append((i, n)))
    assert seen[-1] == (seen[-1][1] - 1, seen[-1][1])  # progress reached the last row
    for kind, rows in expected.items():
        for line, fragment in rows.items():
            assert any(p.row == line and fragment in p.message and (p.path or "blank" in fragment)
                       for p in report.problems), (kind, line)
    assert {p.row for p in report.problems} == {line for rows in expected.values() for line in rows}
    assert report.n_patients == 18 and report.n_scans == 36
    quick = check_data(f"lus-manifest:{manifest}", quick=True, progress=False)
    missed = {k for k, rows in expected.items() if not all(any(p.row == r for p in quick.problems) for r in rows)}
    assert missed == DECODE_TIME  # the probe cannot see them; the cache warm-up will
    assert main(["check-data", f"lus-manifest:{manifest}"]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    listed = [line for line in out.out.splitlines() if line.startswith("    - ")]
    assert len(listed) == len(report.problems) and all("row " in line for line in listed)


def test_every_kind_fails_or_is_skipped_never_a_traceback(messy, tmp_path):
    manifest, expected, _ = messy
    spec = f"lus-manifest:{manifest}"
    with pytest.raises(DataError) as err:
        load_dataset(spec)
    probe_rows = {line for kind, rows in expected.items() if kind not in DECODE_TIME for line in rows}
    assert {p.row for p in err.value.problems} == probe_rows
    probed = replace(load_dataset(spec, on_bad_input="skip"), on_bad_input="fail")  # what decoding finds must fail
    with pytest.raises(DataError) as err:
        DataStore().warm([probed], FRAMES, SIZE, tmp_path / "f")
    assert {p.row for p in err.value.problems} == {r for k in DECODE_TIME for r in expected[k]}
    store = DataStore()
    (ds,) = store.warm([store.dataset(spec, "skip", {})], FRAMES, SIZE, tmp_path / "c")
    assert {p.row for p in ds.skipped} == {line for rows in expected.values() for line in rows}
    assert len(ds) == 36 and ds.n_patients == 18
    assert pd.Series(ds.scans["source"]).map(lambda s: Path(s).exists()).all()
