"""Real-data adapters: readers, the LUS manifest, the ADNI join, and check-data.

Every bad-input kind is checked both ways: the default policy raises one DataError that
lists every problem with its row and file; ``skip`` drops exactly those rows and reports
them in ``dataset.skipped``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fixtures_realdata as fx  # tests/ is on sys.path (pytest's rootdir-less "prepend" import)
from bench.data.adni import validate as adni_validate
from bench.data.check import check_data, format_report
from bench.data.preprocess import to_model_clip
from bench.data.readers import ClipReadError, ClipWarning, probe_clip, read_clip, read_nifti
from bench.data.pairs import MMSE_RULE
from bench.data.scans import DataError
from bench.data.sources import load_dataset, register_source

FRAMES, SIZE = 16, 32
# The real SonoSite file's US region does not fit its pixel grid; that warning is tested once.
pytestmark = pytest.mark.filterwarnings("ignore::bench.data.readers.ClipWarning")


@pytest.fixture(scope="module")
def lus_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("lus")
    fx.build_lus(root)
    return root


@pytest.fixture(scope="module")
def adni_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("adni")
    fx.build_adni(root)
    return root


@pytest.fixture
def lus(lus_template, tmp_path):
    """A fresh copy of the good LUS fixture: (root, manifest rows)."""
    root = tmp_path / "lus"
    shutil.copytree(lus_template, root)
    fx.write_csv(root / "manifest.csv", fx.LUS_HEADER, fx.lus_rows(root))
    return root, fx.lus_rows(root)


@pytest.fixture
def adni(adni_template, tmp_path):
    root = tmp_path / "adni"
    shutil.copytree(adni_template, root)
    return root / "ADNIMERGE.csv", root / "ADNI"


def _manifest(root: Path, rows, header=fx.LUS_HEADER) -> str:
    return "lus-manifest:" + str(fx.write_csv(root / "manifest.csv", header, rows))


def _expect_fail_and_skip(spec: str, expected: dict[int, str] | list[tuple[int | None, str]]):
    """Default policy: one DataError naming exactly the expected (row, message fragment)
    pairs (row None: a file with no table row), each with its file; skip policy: exactly
    those rows dropped and reported in ``dataset.skipped``. Returns the skip dataset."""
    expected = sorted(expected.items() if isinstance(expected, dict) else expected,
                      key=lambda e: (e[0] or 0, e[1]))
    rows = [r or 0 for r, _ in expected]
    with pytest.raises(DataError) as err:
        load_dataset(spec)
    problems = err.value.problems
    assert sorted(p.row or 0 for p in problems) == rows, problems
    for p in problems:
        assert any(p.row == r and fragment in p.message for r, fragment in expected), p
        assert p.path and str(p) in str(err.value), p
    dataset = load_dataset(spec, on_bad_input="skip")
    assert sorted(p.row or 0 for p in dataset.skipped) == rows
    assert not {p.scan_id for p in dataset.skipped} & set(dataset.scans["scan_id"])
    return dataset


# ----------------------------------------------------------------------------- readers

def test_dicom_region_crop(tmp_path):
    clip = read_clip(fx.write_us_dicom(tmp_path / "a.dcm"))
    x0, y0, x1, y1 = fx.US_REGION
    assert clip.dtype == np.uint8 and clip.shape == (fx.US_SHAPE[0], y1 - y0 + 1, x1 - x0 + 1)
    np.testing.assert_array_equal(clip, fx.us_frames()[:, y0:y1 + 1, x0:x1 + 1])
    assert (clip != fx.BORDER).all()  # the frame around the region is gone


def test_sonosite_jpeg_is_rgb_and_region_outside_image_is_ignored(tmp_path):
    path = fx.copy_sonosite(tmp_path / "sonosite.dcm")
    with pytest.warns(ClipWarning, match="outside the 320x240 image"):
        probe_clip(path)
    clip = read_clip(path)
    assert clip.shape == (30, 240, 320, 3) and clip.dtype == np.uint8
    # Converted to RGB: a gray ultrasound image has R ~ G ~ B (YBR would have Cb, Cr ~ 128).
    assert np.abs(clip[..., 0].astype(int) - clip[..., 1]).mean() < 5
    model = to_model_clip(clip, FRAMES, SIZE)
    assert model.shape == (FRAMES, SIZE, SIZE) and model.dtype == np.uint8


def test_colour_to_gray_uses_luma(tmp_path):
    rgb = np.zeros((4, 16, 16, 3), np.uint8)
    rgb[:, :8, :, 0] = 255  # pure red on top, pure blue below
    rgb[:, 8:, :, 2] = 255
    clip = read_clip(fx.write_npy(tmp_path / "red.npy", rgb))
    gray = to_model_clip(clip, 4, 16)
    assert np.all(gray[:, :8] == round(0.299 * 255)) and np.all(gray[:, 8:] == round(0.114 * 255))


def test_videos_decode(tmp_path):
    for suffix in (".mp4", ".avi", ".mov"):
        clip = read_clip(fx.write_video(tmp_path / f"v{suffix}", n_frames=10))
        assert clip.shape == (10, 48, 64, 3) and clip.dtype == np.uint8
        assert clip[0, :, :4].mean() > 150 and clip[0, :, 40:].mean() < 80  # the bar is at x 0..8


def test_array_scaling(tmp_path):
    ramp = np.linspace(0, 1, 4 * 16 * 16, dtype=np.float32).reshape(4, 16, 16)
    assert read_clip(fx.write_npy(tmp_path / "f.npy", ramp)).max() == 255
    wide = (ramp * 4000).astype(np.int16)
    out = read_clip(fx.write_npy(tmp_path / "i.npy", wide))
    assert out.min() == 0 and out.max() == 255


def test_nifti_reoriented_to_canonical_and_brain_slices(tmp_path):
    volume = fx.head_volume()
    canonical = read_nifti(fx.write_nifti(tmp_path / "ras.nii.gz", volume, ("R", "A", "S")))
    stored = fx.write_nifti(tmp_path / "psl.nii", volume)
    import nibabel as nib
    assert nib.aff2axcodes(nib.load(str(stored)).affine) == ("P", "S", "L")
    assert nib.load(str(stored)).shape == (40, 36, 32)
    slices = read_nifti(stored)
    np.testing.assert_array_equal(slices, canonical)
    n_slices, rows, cols = slices.shape
    assert (rows, cols) == (40, 32) and 10 < n_slices < fx.NIFTI_SHAPE[2]  # empty slices dropped
    assert slices[0].max() > 0 and slices[-1].max() > 0
    # Anterior at the top, patient right (x up) brighter: the volume's +x/+y gradient.
    middle = slices[n_slices // 2].astype(float)
    assert middle[:, cols // 2 + 4].mean() > middle[:, cols // 2 - 4].mean()
    assert to_model_clip(slices, FRAMES, SIZE).shape == (FRAMES, SIZE, SIZE)


def test_missing_decoder_is_named(tmp_path):
    with pytest.raises(ClipReadError, match="JPEG-LS.*install one of: .*pylibjpeg"):
        probe_clip(fx.write_jpegls_dicom(tmp_path / "jls.dcm"))


def test_unsupported_extension(tmp_path):
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    with pytest.raises(ClipReadError, match="unsupported file type '.gif'"):
        read_clip(tmp_path / "clip.gif")


def test_mixed_date_formats():
    from bench.data.realdata import parse_dates

    def parse(*texts):
        dates, errors = parse_dates(pd.Series(texts), "visit")
        return [None if pd.isna(d) else d.strftime("%Y-%m-%d %H:%M") for d in dates], errors

    dates, errors = parse("2006-04-18", "4/18/2006", "05/06/2006", "18.04.2006", "20060418",
                          "18-Apr-2006", "April 18, 2006", "2006-04-18T09:58:29.5", "")
    assert dates[:7] == ["2006-04-18 00:00"] * 2 + ["2006-05-06 00:00"] + ["2006-04-18 00:00"] * 4
    assert dates[7] == "2006-04-18 09:58" and errors == {8: "visit is blank"}
    dates, errors = parse("18/04/2006", "05/06/2006")  # a day-first value makes the column day-first
    assert dates == ["2006-04-18 00:00", "2006-06-05 00:00"] and not errors
    dates, errors = parse("18/04/2006", "04/18/2006", "05/06/2006", "4/18/06", "2006-02-30")
    assert dates[:2] == ["2006-04-18 00:00"] * 2
    assert "ambiguous" in errors[2] and "two-digit year" in errors[3] and "not a date" in errors[4]


# ----------------------------------------------------------------------------- LUS positive

def test_manifest_with_every_format_loads(lus):
    root, rows = lus
    dataset = load_dataset(f"lus-manifest:{root / 'manifest.csv'}")
    assert (dataset.kind, dataset.score_name, len(dataset), dataset.n_patients) == ("lus", "S/F", 7, 3)
    assert dataset.skipped == []
    # Mixed date formats, FiO2 as fraction and percent.
    p01 = dataset.scans[dataset.scans["patient_id"] == "P01"]
    assert list(p01["visit"]) == [pd.Timestamp("2021-03-01"), pd.Timestamp("2021-03-08")]
    np.testing.assert_allclose(p01["score"], [88 / 0.6, 95 / 0.40])
    for _, row in dataset.scans.iterrows():
        clip = dataset.load_clip(row, FRAMES, SIZE)
        assert clip.shape == (FRAMES, SIZE, SIZE) and clip.dtype == np.uint8
    assert set(dataset.scans["zone"]) == {"R1", "L2"}


def test_cache_key_follows_content(lus):
    root, _ = lus
    spec = f"lus-manifest:{root / 'manifest.csv'}"
    key = load_dataset(spec).cache_key
    assert load_dataset(spec).cache_key == key
    fx.write_npy(root / "clips" / "p03_v1_R1.npy", fx.us_frames(n_frames=9))
    assert load_dataset(spec).cache_key != key


# ----------------------------------------------------------------------------- LUS bad input

def _bad_lus_cases(root: Path) -> dict[str, tuple[list[list[str]], dict[int, str]]]:
    """Bad rows appended after the 7 good ones (lines 9...), as extra visits of P03 so that
    skipping them leaves every other patient intact."""
    clips = root / "clips"
    (clips / "notes.dcm").write_text("this is not DICOM")
    shutil.copy(clips / "p02_v1_L2.mp4", clips / "cut.mp4")
    fx.truncate(clips / "cut.mp4", 0.3)
    fx.truncate(fx.write_us_dicom(clips / "cut_native.dcm"), 0.6)
    fx.truncate(fx.copy_sonosite(clips / "cut_jpeg.dcm"), 0.5)
    fx.write_empty_video(clips / "empty.avi")
    fx.write_npy(clips / "empty.npy", np.zeros((0, 48, 64), np.uint8))
    fx.write_dicom_without_pixels(clips / "sr.dcm")
    fx.write_npy(clips / "p09.npy", fx.us_frames(n_frames=5))  # its own clip: a shared one would leak

    def visit(day: int, path: str, spo2="95", fio2="0.5", patient="P03") -> list[str]:
        return [patient, f"2021-04-{day:02d}", path, spo2, fio2, "R1"]

    return {
        "missing file": ([visit(1, "clips/missing.dcm")], {9: "file not found"}),
        "unreadable, truncated or zero-frame clip": (
            [visit(1, "clips/notes.dcm"), visit(2, "clips/cut.mp4"), visit(3, "clips/cut_native.dcm"),
             visit(4, "clips/cut_jpeg.dcm"), visit(5, "clips/empty.avi"), visit(6, "clips/empty.npy")],
            {9: "not a readable DICOM", 10: "unreadable video", 11: "truncated DICOM file",
             12: "truncated DICOM file: pixel data cut off", 13: "zero decodable frames",
             14: "zero frames"}),
        "DICOM without pixel data": ([visit(1, "clips/sr.dcm")], {9: "no pixel data"}),
        "NaN or out-of-range score": (
            [visit(1, "clips/p03_v1_R1.npy", spo2=""), visit(2, "clips/p03_v1_R1.npy", fio2="15"),
             visit(3, "clips/p03_v1_R1.npy", spo2="0.95"), visit(4, "clips/p03_v1_R1.npy", spo2="n/a")],
            {9: "spo2 '' is not a number", 10: "fio2 '15' is neither a fraction",
             11: "not a percentage", 12: "spo2 'n/a' is not a number"}),
        "duplicate scan row": ([["P03", "2021-03-09", "clips/p03_v3_R1.mp4", "95", "0.4", "R1"]],
                               {9: "duplicate scan row"}),
        "patient with one visit": ([visit(1, "clips/p09.npy", patient="P09")],
                                   {9: "only one visit"}),
        "unparseable or ambiguous dates": (
            [["P03", "2021-13-45", "clips/p03_v1_R1.npy", "95", "0.5", "R1"],
             ["P03", "yesterday", "clips/p03_v1_R1.npy", "95", "0.5", "R1"],
             ["P03", "3/4/21", "clips/p03_v1_R1.npy", "95", "0.5", "R1"]],
            {9: "is not a date", 10: "'yesterday' is not a date", 11: "two-digit year"}),
    }


@pytest.mark.parametrize("case", ["missing file", "unreadable, truncated or zero-frame clip",
                                  "DICOM without pixel data", "NaN or out-of-range score",
                                  "duplicate scan row", "patient with one visit",
                                  "unparseable or ambiguous dates"])
def test_lus_bad_input(lus, case):
    root, rows = lus
    bad_rows, expected = _bad_lus_cases(root)[case]
    dataset = _expect_fail_and_skip(_manifest(root, rows + bad_rows), expected)
    assert len(dataset) == 7  # exactly the good rows survive


def test_lus_every_problem_in_one_error(lus):
    """All bad kinds at once: one DataError lists every one of them, each with row and path."""
    root, rows = lus
    bad, expected, line = [], {}, 9
    for case_rows, case_expected in _bad_lus_cases(root).values():
        for r, offset in zip(case_rows, sorted(case_expected)):
            bad.append(r)
            expected[line] = case_expected[offset]
            line += 1
    spec = _manifest(root, rows + bad)
    dataset = _expect_fail_and_skip(spec, expected)
    assert len(dataset) == 7
    # check-data walks the same validation: the same problems, without raising.
    report = check_data(spec)
    assert [(p.row, p.message) for p in report.problems] == \
        [(p.row, p.message) for p in dataset.skipped]
    text = format_report(report)
    for p in report.problems:
        assert f"row {p.row}, {p.path}: {p.message}" in text
    assert f"scans: 7 usable of {7 + len(bad)} found, patients: 3" in text


def test_score_column_range(lus):
    root, rows = lus
    header = ["patient_id", "visit", "path", "score", "zone"]
    good = [[r[0], r[1], r[2], "300", r[5]] for r in rows]
    bad = [["P03", "2021-04-01", "clips/p03_v1_R1.npy", s, "R1"] for s in ("nan", "700", "0", "")]
    expected = {9: "'nan' is blank or not a number", 10: "outside the plausible S/F range",
                11: "outside the plausible S/F range", 12: "'' is blank or not a number"}
    _expect_fail_and_skip(_manifest(root, good + bad, header), expected)


@pytest.mark.parametrize("header, message", [
    (["pateint_id", "visit", "path", "spo2", "fio2", "zone"], "unknown column 'pateint_id' (did you mean 'patient_id'?)"),
    (["patient_id", "path", "spo2", "fio2", "zone"], "missing required column 'visit'"),
    (["patient_id", "visit", "path", "spo2", "fio2", "zones"], "unknown column 'zones' (did you mean 'zone'?)"),
    (["patient_id", "visit", "path", "spo2", "fi02", "zone"], "(did you mean 'fio2'?)"),
    (["patient_id", "visit", "path", "spo2", "zone"], "missing ['fio2']"),
])
def test_lus_column_problems(lus, header, message):
    root, rows = lus
    cut = [[dict(zip(fx.LUS_HEADER, r)).get(h, r[i]) for i, h in enumerate(header)] for r in rows]
    spec = _manifest(root, cut, header)
    for policy in ("fail", "skip"):  # nothing can be read per row: even skip must stop
        with pytest.raises(DataError) as err:
            load_dataset(spec, on_bad_input=policy)
        assert len(err.value.problems) == 1 and message in str(err.value)
        assert str(root / "manifest.csv") in str(err.value)
    report = check_data(spec)
    assert "nothing can be loaded" in format_report(report) and report.n_scans == 0


def test_visit_indices_sf_ratio_and_scan_ids(lus):
    root, rows = lus
    header = ["Patient_ID", "Visit", "Path", "SF_Ratio", "Scan_ID"]  # names are case-insensitive
    table = [[r[0], str(i % 3 + 1) if r[0] == "P03" else str(i % 2 + 1), r[2], sf, f"clip{i}"]
             for i, (r, sf) in enumerate(zip(rows, ["150", "300", "470", "200", "120", "190", "350"]))]
    dataset = load_dataset(_manifest(root, table, header))
    assert str(dataset.scans["visit"].dtype) == "Int64" and list(dataset.scans["scan_id"]) == [
        f"clip{i}" for i in range(7)]
    report = check_data(f"lus-manifest:{root / 'manifest.csv'}", seeds=1)  # three patients: one seed's split
    # P03 is listed out of visit order: v2 120, v3 190, v1 350 -> v1->v2 worse, v2->v3 better.
    assert report.pairs == {"deteriorated": 2, "same": 0, "improved": 2} and report.ok


def test_note_columns_are_ignored(lus):
    root, rows = lus
    spec = _manifest(root, [r + ["ok"] for r in rows], fx.LUS_HEADER + ["_comment"])
    assert len(load_dataset(spec)) == 7


# ----------------------------------------------------------------------------- ADNI

def _adni_spec(csv: Path, folder: Path, *options: str) -> str:
    return "adni:" + ",".join([str(csv), str(folder), *options])


def _uid(scans: pd.DataFrame, uid: int) -> pd.Series:
    return scans[scans["scan_id"].str.endswith(f"_I{uid}.nii.gz")].iloc[0]


def test_adni_join_auto(adni):
    csv, folder = adni
    dataset = load_dataset(_adni_spec(csv, folder))
    assert (dataset.kind, dataset.score_name, len(dataset), dataset.n_patients) == ("mri", "MMSE", 7, 3)
    scans, _ = adni_validate(f"{csv},{folder}")
    # By IMAGEUID ("55250.0" in the table still matches); dates "2006-04-18" / "11/02/2006" mixed.
    assert _uid(scans, 55250).name == 4 and _uid(scans, 55250)["score"] == 25
    assert _uid(scans, 32237)["visit"] == pd.Timestamp("2006-11-02")
    # By subject + nearest date: I40731 (2005-09-08) -> row 5 "9/8/2005"; I99911 -> row 9.
    assert _uid(scans, 40731).name == 5 and _uid(scans, 40732).name == 6
    assert _uid(scans, 99911).name == 9 and _uid(scans, 99911)["score"] == 22
    clip = dataset.load_clip(dataset.scans.iloc[0], FRAMES, SIZE)
    assert clip.shape == (FRAMES, SIZE, SIZE) and clip.dtype == np.uint8


def test_adni_join_by_date_only_and_sidecar(adni):
    csv, folder = adni
    # A dcm2niix-style conversion: no ADNI date or I-number in the name, a JSON sidecar.
    subject = folder / "011_S_0002" / "nifti"
    fx.write_nifti(subject / "011_S_0002_T1w.nii.gz")
    (subject / "011_S_0002_T1w.json").write_text(json.dumps({"AcquisitionDateTime": "2008-08-01T10:11:12.000000"}))
    scans, problems = adni_validate(f"{csv},{folder},join=date")
    # Its nearest row (m36, 2008-08-27) has MMSE -4: the join works, the score is reported.
    assert [(p.row, "missing-value code" in p.message) for p in problems] == [(7, True)]
    assert scans.loc[7, "scan_id"] == "011_S_0002/nifti/011_S_0002_T1w.nii.gz"
    assert len(scans) == 8


def test_adni_imageuid_only_reports_unmatched_volumes(adni):
    csv, folder = adni
    dataset = _expect_fail_and_skip(_adni_spec(csv, folder, "join=imageuid"), [
        (None, "IMAGEUID 40731 is not in the table"), (None, "IMAGEUID 40732 is not in the table"),
        (None, "IMAGEUID 99911 is not in the table"), (8, "only one visit")])
    assert len(dataset) == 3
    assert sum("IMAGEUID" in p.message for p in dataset.skipped) == 3


def test_adni_bad_input(adni):
    csv, folder = adni
    lines = csv.read_text().splitlines()
    lines += [
        "295,002_S_0295,m06,11/02/2006,CN,29,28,84.8,32237",    # line 11: duplicate of line 3
        "4001,123_S_4001,bl,2010-01-05,CN,31,31,70.1,70001",    # line 12: MMSE out of range
        "4001,123_S_4001,m12,2011-02-30,CN,29,31,70.1,70002",   # line 13: impossible date
        "4001,123_S_4001,m24,2012-01-09,CN,,31,70.1,70003",     # line 14: blank MMSE
        "4002,123_S_4002,bl,2010-01-05,CN,28,28,70.1,70004",    # line 15: one visit only
    ]
    csv.write_text("\n".join(lines) + "\n")
    for uid, ptid, date in ((70001, "123_S_4001", "20100105"), (70002, "123_S_4001", "20110301"),
                            (70003, "123_S_4001", "20120109"), (70004, "123_S_4002", "20100105")):
        fx.write_nifti(folder / ptid / fx.adni_name(ptid, date, uid, 1))
    fx.write_nifti(folder / "999_S_9999" / fx.adni_name("999_S_9999", "20100101", 1, 1))  # no row
    fx.truncate(fx.write_nifti(folder / "011_S_0002" / fx.adni_name("011_S_0002", "20080827", 2, 2)), 0.5)
    dataset = _expect_fail_and_skip(_adni_spec(csv, folder), [
        (3, "duplicate table rows: rows 3, 11 describe the same visit of 002_S_0295"),
        (7, "MMSE '-4' is ADNI's missing-value code"),  # harmless until a volume joins to it
        (7, "truncated"),
        (12, "MMSE '31' is outside 0–30"),
        (13, "EXAMDATE '2011-02-30' is not a date"),
        (14, "MMSE is blank"),
        (15, "only one visit"),
        (None, "volume has no matching table row: IMAGEUID 1 is not in the table, and by "
               "subject+date: subject 999_S_9999 is not in the table"),
    ])
    assert all(p.path.endswith(".nii.gz") for p in dataset.skipped)
    assert sorted(dataset.scans["patient_id"].unique()) == ["002_S_0295", "011_S_0002", "100_S_1286"]
    assert len(dataset) == 6  # the m06 volume of 002_S_0295 (ambiguous duplicate rows) is dropped


# ----------------------------------------------------------------------------- check-data

def test_check_data_clean_fixture(lus):
    root, _ = lus
    text = format_report(check_data(f"lus-manifest:{root / 'manifest.csv'}", seeds=1))  # three patients: one split
    assert "scans: 7 usable of 7 found, patients: 3" in text
    assert "visits per patient: min 2, mean 2.33, max 3" in text
    assert "pairs: 4 (deteriorated 1, same 1, improved 2)" in text
    assert "problems: none" in text and "not cropped" in text


def test_check_data_other_sources():
    import bench.data.scans as scans_mod

    @register_source("test-tiny")
    def tiny(arg, *, on_bad_input="fail", **_):
        table = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "visit": [0, 1, 0, 1],
                              "scan_id": list("1234"), "score": [20, 25, 28, 20.0],
                              "source": list("wxyz")})
        return scans_mod.LongitudinalDataset("tiny", "mri", table, lambda *a: None, "k", "MMSE", rule=MMSE_RULE)

    report = check_data("test-tiny")
    assert report.pairs == {"deteriorated": 1, "same": 0, "improved": 1} and not report.problems
    # two patients: what a sweep refuses, check-data refuses too
    assert not report.ok and report.split_problem == "seed 0: need at least 3 patients for train/val/test splits, have 2"
    assert "problems in rows: none" in format_report(report)
    report = check_data("test-tiny:delta=6")  # the spec's rule over the source's: |change| < 6 is "same"
    assert report.pairs == {"deteriorated": 1, "same": 1, "improved": 0}
