"""Builders for real-data fixtures, written the way such data arrives.

DICOM cine loops written with pydicom (plus the real SonoSite JPEG cine pydicom ships),
mp4/avi written with PyAV, ``.npy`` arrays, NIfTI volumes with a non-canonical affine, a
LUS manifest and an ADNIMERGE-style table with ADNI's real column names and messy cells.
Imported explicitly by the tests that need them (not a conftest, so nothing auto-loads).
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

# A LUS region with a white frame around it: the crop must remove the frame exactly.
US_REGION = (10, 6, 49, 37)  # x0, y0, x1, y1 (inclusive, as DICOM writes them)
US_SHAPE = (8, 48, 64)  # frames, rows, columns
BORDER = 255


def us_frames(n_frames: int = US_SHAPE[0], rows: int = US_SHAPE[1], cols: int = US_SHAPE[2],
              region=US_REGION) -> np.ndarray:
    """Gray frames: a moving pattern (< 200) inside the region, BORDER outside it."""
    x0, y0, x1, y1 = region
    clip = np.full((n_frames, rows, cols), BORDER, np.uint8)
    yy, xx = np.mgrid[0:y1 - y0 + 1, 0:x1 - x0 + 1]
    for t in range(n_frames):
        clip[t, y0:y1 + 1, x0:x1 + 1] = (20 + (3 * xx + 5 * yy + 11 * t) % 180).astype(np.uint8)
    return clip


def _dicom_base(modality: str = "US"):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # US Multi-frame Image
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID = "ANON"
    return ds


def write_us_dicom(path: Path, clip: np.ndarray | None = None, region=US_REGION) -> Path:
    """Uncompressed multi-frame MONOCHROME2 cine with a Sequence of Ultrasound Regions."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import set_pixel_data
    from pydicom.sequence import Sequence

    clip = us_frames() if clip is None else clip
    ds = _dicom_base()
    set_pixel_data(ds, clip, "MONOCHROME2", 8)
    if region is not None:
        item = Dataset()
        item.RegionSpatialFormat = 1
        item.RegionDataType = 1
        item.RegionFlags = 0
        (item.RegionLocationMinX0, item.RegionLocationMinY0,
         item.RegionLocationMaxX1, item.RegionLocationMaxY1) = region
        ds.SequenceOfUltrasoundRegions = Sequence([item])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def copy_sonosite(path: Path) -> Path:
    """The real SonoSite cine: 30 frames 240x320, YBR_FULL_422, JPEG Baseline."""
    from pydicom.data import get_testdata_file

    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(get_testdata_file("examples_ybr_color.dcm"), path)
    return path


def write_dicom_without_pixels(path: Path) -> Path:
    """A valid DICOM header with no Pixel Data (e.g. a report exported next to the cines)."""
    ds = _dicom_base()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 48, 64, 8
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_jpegls_dicom(path: Path) -> Path:
    """A JPEG-LS cine: no JPEG-LS decoder is installed here, so reading must name one."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    ds = _dicom_base()
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.Rows, ds.Columns, ds.NumberOfFrames = 16, 16, 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\0" * 60] * 2)
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_video(path: Path, n_frames: int = 10, size=(48, 64), phase: int = 0) -> Path:
    """Gray moving-bar clip; codec by extension (mp4: H.264, avi: MJPEG, mov: mpeg4). Clips
    of different ``phase`` differ (one file per scan: identical clips of two patients leak)."""
    import av

    codec, pix_fmt = {".mp4": ("libx264", "yuv420p"), ".avi": ("mjpeg", "yuvj420p"),
                      ".mov": ("mpeg4", "yuv420p")}[path.suffix.lower()]
    h, w = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=path.suffix.lower()[1:]) as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for t in range(n_frames):
            rgb = np.full((h, w, 3), 30 + phase, np.uint8)
            rgb[:, (4 * t) % w: (4 * t) % w + 8] = 220
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_empty_video(path: Path) -> Path:
    """A valid AVI container whose MJPEG stream has no frames (a recording that never started)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        out.start_encoding()
    return path


def write_npy(path: Path, clip: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, us_frames() if clip is None else clip)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file short, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# ----------------------------------------------------------------------------- NIfTI

NIFTI_SHAPE = (32, 40, 36)


def head_volume(seed: int = 0, ventricle: float = 0.25) -> np.ndarray:
    """Canonical (RAS) head-like volume in a 32x40x36 grid: an ellipsoid 'brain' with a
    dark central 'ventricle', empty slices above and below, and faint background noise."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in NIFTI_SHAPE), indexing="ij")
    r = np.sqrt((x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.6) ** 2)
    vol = np.where(r < 1, 600 + 200 * x + 100 * y, 0.0)  # asymmetric: orientation is testable
    vol[np.sqrt(x ** 2 + y ** 2 + z ** 2) < ventricle] = 150
    return (vol + rng.normal(0, 5, vol.shape).clip(0)).astype(np.float32)


def write_nifti(path: Path, volume: np.ndarray | None = None, axcodes=("P", "S", "L")) -> Path:
    """Store a canonical volume in a non-canonical orientation (default PSL, 2 mm voxels)."""
    import nibabel as nib
    from nibabel.orientations import axcodes2ornt, ornt_transform

    volume = head_volume() if volume is None else volume
    canonical = nib.Nifti1Image(volume, np.diag([2.0, 2.0, 2.0, 1.0]))
    img = canonical.as_reoriented(ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(axcodes)))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


# ----------------------------------------------------------------------------- tables

def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


LUS_HEADER = ["patient_id", "visit", "path", "spo2", "fio2", "zone"]


def lus_rows(root: Path) -> list[list[str]]:
    """Manifest rows for the clips of :func:`build_lus` under ``root``.

    Visits are dates in mixed formats; FiO2 is given both as fraction and as percent; one
    path is absolute, the others relative to the manifest's folder.
    """
    return [
        ["P01", "2021-03-01", "clips/p01_v1_R1.dcm", "88", "0.6", "R1"],
        ["P01", "03/08/2021", "clips/p01_v2_R1.dcm", "95", "40", "R1"],
        ["P02", "15.03.2021", "clips/p02_v1_L2.mp4", "97", "21", "L2"],
        ["P02", "March 22, 2021", "clips/p02_v2_L2.avi", "90", "100", "L2"],
        ["P03", "20210301", "clips/p03_v1_R1.npy", "85", "0.8", "R1"],
        ["P03", "2021-03-05 14:30", "clips/p03_v2_R1", "93", "0.35", "R1"],
        ["P03", "2021-03-09", str((root / "clips" / "p03_v3_R1.mp4").resolve()), "95", "0.4", "R1"],
    ]


def build_lus(root: Path) -> Path:
    """Clips of three patients — DICOM (uncompressed with a US region, the SonoSite JPEG,
    an extension-less one), mp4, avi, npy — and their manifest; returns the manifest."""
    clips = root / "clips"
    write_us_dicom(clips / "p01_v1_R1.dcm")
    copy_sonosite(clips / "p01_v2_R1.dcm")
    write_video(clips / "p02_v1_L2.mp4")
    write_video(clips / "p02_v2_L2.avi")
    write_npy(clips / "p03_v1_R1.npy")
    write_us_dicom(clips / "p03_v2_R1")  # extension-less DICOM, as PACS exports name them
    write_video(clips / "p03_v3_R1.mp4", phase=1)
    return write_csv(root / "manifest.csv", LUS_HEADER, lus_rows(root))


ADNI_HEADER = ["RID", "PTID", "VISCODE", "EXAMDATE", "DX", "MMSE", "MMSE_bl", "AGE", "IMAGEUID"]


def adni_name(ptid: str, date: str, image_uid: int, series: int) -> str:
    """ADNI download naming: subject, sequence, 'raw', acquisition timestamp, series, image."""
    return f"ADNI_{ptid}_MR_MPRAGE_br_raw_{date}095829123_S{series}_I{image_uid}.nii.gz"


def build_adni(root: Path) -> tuple[Path, Path]:
    """ADNIMERGE-like table (messy cells) and a folder of NIfTI volumes in ADNI layout.

    * 002_S_0295: three visits joined by IMAGEUID; dates in two formats.
    * 011_S_0002: files whose I-numbers are not in the table (a raw download where the
      table lists the processed image): joined by subject + nearest date.
    * 100_S_1286: one joined by IMAGEUID, one by date; table also has visits without a
      scan, MMSE coded -4 and blank (no volume: not a problem).
    """
    table = [
        [295, "002_S_0295", "bl", "2006-04-18", "CN", "28", "28", "84.8", "13722"],
        [295, "002_S_0295", "m06", "11/02/2006", "CN", "29", "28", "84.8", "32237"],
        [295, "002_S_0295", "m12", "2007-05-25", "MCI", "25", "28", "84.8", "55250.0"],
        [2, "011_S_0002", "bl", "9/8/2005", "CN", "29", "29", "74.3", "35475"],
        [2, "011_S_0002", "m06", "2006-03-13", "CN", "30", "29", "74.3", ""],
        [2, "011_S_0002", "m36", "2008-08-27", "CN", "-4", "29", "74.3", ""],
        [1286, "100_S_1286", "bl", "2007-03-06", "MCI", "27", "27", "71.0", "46190"],
        [1286, "100_S_1286", "m12", "3/12/2008", "Dementia", "22", "27", "71.0", ""],
        [1286, "100_S_1286", "m24", "", "Dementia", "", "27", "71.0", ""],
    ]
    csv_path = write_csv(root / "ADNIMERGE.csv", ADNI_HEADER, table)
    volumes = root / "ADNI"
    files = [
        ("002_S_0295", "20060418", 13722, 13408, 0.20),
        ("002_S_0295", "20061102", 32237, 22113, 0.24),
        ("002_S_0295", "20070525", 55250, 30012, 0.30),
        ("011_S_0002", "20050908", 40731, 9136, 0.18),
        ("011_S_0002", "20060320", 40732, 12471, 0.19),
        ("100_S_1286", "20070306", 46190, 27003, 0.22),
        ("100_S_1286", "20080401", 99911, 48811, 0.27),
    ]
    for i, (ptid, date, uid, series, ventricle) in enumerate(files):
        folder = volumes / ptid / "MPRAGE" / f"{date[:4]}-{date[4:6]}-{date[6:]}_09_58_29.0" / f"I{uid}"
        write_nifti(folder / adni_name(ptid, date, uid, series), head_volume(i, ventricle))
    return csv_path, volumes


def add_adni_patients(csv_path: Path, volumes: Path, n: int) -> int:
    """Append ``n`` subjects with three visits each (MMSE 28, 28, 24: one 'same' and one
    'deteriorated' pair), so any patient split trains on two labels; returns the volumes added."""
    with open(csv_path, "a", newline="") as f:
        writer = csv.writer(f)
        for k in range(n):
            ptid, rid = f"200_S_{k + 1:04d}", 2000 + k
            for m, (code, date, mmse) in enumerate((("bl", "20100105", 28), ("m12", "20110107", 28),
                                                    ("m24", "20120110", 24))):
                uid = 80000 + 10 * k + m
                writer.writerow([rid, ptid, code, f"{date[:4]}-{date[4:6]}-{date[6:]}", "MCI", mmse, 28, "70", uid])
                write_nifti(volumes / ptid / adni_name(ptid, date, uid, uid), head_volume(100 + 3 * k + m))
    return 3 * n


# ----------------------------------------------------------------------------- damaged and odd files

def write_noise_video(path: Path, n_frames: int = 30, size=(48, 64), seed: int = 0) -> Path:
    """A clip of noise frames (its frame data dominates the file, so damage lands in it)."""
    import av

    codec, pix_fmt = {".mp4": ("libx264", "yuv420p"), ".avi": ("mjpeg", "yuvj420p"),
                      ".mov": ("mpeg4", "yuv420p")}[path.suffix.lower()]
    rng = np.random.default_rng(seed)
    h, w = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for _ in range(n_frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def damage_middle(path: Path, seed: int = 0) -> Path:
    """Overwrite the middle third of a video's frame data with random bytes (the container's
    index intact): the header and first frames read, decoding fails part-way."""
    import struct

    data = bytearray(path.read_bytes())
    start, length = 0, len(data)
    if path.suffix.lower() in (".mp4", ".mov"):  # the 'mdat' box holds the frames
        i = 0
        while i + 8 <= len(data):
            size, kind = struct.unpack(">I4s", data[i:i + 8])
            if kind == b"mdat":
                start, length = i + 8, size - 8
                break
            i += max(size, 8)
    lo, hi = start + length // 3, start + 2 * length // 3
    data[lo:hi] = np.random.default_rng(seed).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def damage_dicom_frame(path: Path, frame: int) -> Path:
    """Garble one JPEG frame of an encapsulated cine (the other frames stay intact)."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_fragmented_frames

    ds = pydicom.dcmread(path)
    frames = [b"".join(f) for f in generate_fragmented_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
    frames[frame] = frames[frame][:20] + bytes(np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8))
    ds.PixelData = encapsulate(frames)
    ds.save_as(path)
    return path


def copy_testdata_dicom(name: str, path: Path) -> Path:
    """One of the DICOM files pydicom's wheel ships (e.g. the 16-bit MR_small.dcm, CT_small.dcm)."""
    from pydicom.data import get_testdata_file

    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(get_testdata_file(name), path)
    return path


def write_monochrome1_dicom(path: Path) -> Path:
    """12-bit MONOCHROME1 (white = low values) with no window: inverted, percentile-windowed."""
    from pydicom.pixels import set_pixel_data

    ds = _dicom_base("CR")
    ramp = np.tile(np.linspace(0, 4000, 32, dtype=np.uint16), (4, 32, 1))
    set_pixel_data(ds, ramp, "MONOCHROME1", 12)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def sf_scores(i: int) -> list[tuple[str, str]]:
    """(spo2, fio2) of patient i's two visits: the changes cycle improved / deteriorated /
    same across patients, so any patient split holds more than one label."""
    return [(("88", "0.6"), ("95", "0.4")), (("97", "0.21"), ("90", "1.0")),
            (("95", "0.4"), ("96", "0.4"))][i % 3]


def build_messy_lus(root: Path) -> tuple[Path, dict[str, dict[int, str]], list[str]]:
    """A clinical export as it arrives: 14 good patients (two visits each, clips of every
    supported kind, several valid oddities) and after them one bad row (or two) per kind
    of problem. Returns the manifest, ``{kind: {line: message fragment}}`` and the valid
    oddities. The manifest is UTF-8 with a BOM and CRLF line ends, with a trailing empty
    column and a note column; one row has a Latin-1 byte.
    """
    clips = root / "clips"
    good: list[list[str]] = []

    def add_good(i: int, name: str, writer) -> None:
        path = writer(clips / name)
        visit = len([r for r in good if r[0] == f"P{i:02d}"])
        spo2, fio2 = sf_scores(i)[visit]
        good.append([f"P{i:02d}", f"2021-03-{1 + 7 * visit:02d}", str(path.relative_to(root)), spo2, fio2,
                     "R1", ""])

    oddities = ["16-bit MR (MR_small.dcm)", "16-bit CT (CT_small.dcm)", "MONOCHROME1 12-bit DICOM",
                "2000x2000 video", "symlink to a clip", "spaces and unicode in the file name",
                "upper-case extension", "extension-less DICOM", "SonoSite JPEG cine"]
    for i in range(1, 15):
        for v in range(2):
            name = f"p{i:02d}_v{v + 1}"
            if (i, v) == (1, 0):
                add_good(i, name + ".dcm", lambda p: copy_testdata_dicom("MR_small.dcm", p))
            elif (i, v) == (1, 1):
                add_good(i, name + ".dcm", lambda p: copy_testdata_dicom("CT_small.dcm", p))
            elif (i, v) == (2, 0):
                add_good(i, name + ".dcm", write_monochrome1_dicom)
            elif (i, v) == (2, 1):
                add_good(i, name + ".mp4", lambda p: write_video(p, n_frames=3, size=(2000, 2000)))
            elif (i, v) == (3, 0):
                target = write_npy(clips / "store" / "p03_v1_target.npy", us_frames(n_frames=6))
                add_good(i, name + "_link.npy", lambda p: (p.symlink_to(target.resolve()), p)[1])
            elif (i, v) == (3, 1):
                add_good(i, "p03 v2 é.npy", lambda p: write_npy(p, us_frames(n_frames=7)))
            elif (i, v) == (4, 0):
                add_good(i, name + ".MP4", lambda p: write_video(p, phase=4))
            elif (i, v) == (4, 1):
                add_good(i, name, lambda p: write_us_dicom(p, us_frames(n_frames=5)))
            elif (i, v) == (5, 0):
                add_good(i, name + ".dcm", copy_sonosite)
            elif v == 0:
                add_good(i, name + ".avi", lambda p, i=i: write_video(p, phase=i))
            else:
                add_good(i, name + ".npy", lambda p, i=i: write_npy(p, us_frames(n_frames=4 + i)))

    # Files for the bad rows.
    (clips / "notes.dcm").write_text("this is not DICOM")
    truncate(write_video(clips / "cut.mp4", phase=40), 0.3)
    truncate(write_us_dicom(clips / "cut_native.dcm", us_frames(n_frames=9)), 0.6)
    truncate(copy_sonosite(clips / "cut_jpeg.dcm"), 0.5)
    write_empty_video(clips / "empty.avi")
    write_npy(clips / "zero_frames.npy", np.zeros((0, 48, 64), np.uint8))
    write_dicom_without_pixels(clips / "sr.dcm")
    (clips / "zero_bytes.mp4").write_bytes(b"")
    (clips / "a_folder.npy").mkdir()
    (clips / "clip.gif").write_bytes(b"GIF89a")
    write_jpegls_dicom(clips / "jpegls.dcm")
    np.savez(clips / "two.npz", a=us_frames(), b=us_frames())
    np.save(clips / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (clips / "loop_a").symlink_to("loop_b")
    (clips / "loop_b").symlink_to("loop_a")
    write_npy(clips / "tiny.npy", np.random.default_rng(0).integers(0, 255, (4, 1, 1), dtype=np.uint8))
    for k, name in enumerate(("p90a", "p90b", "p90c", "p91a", "p91b", "p92a", "p92b", "p92c", "p93a", "p93b", "p99")):
        write_npy(clips / f"{name}.npy", us_frames(n_frames=20 + k))
    shutil.copy(clips / "p92a.npy", clips / "p93_copy.npy")
    damage_middle(write_noise_video(clips / "corrupt_mid.mp4"))
    damage_middle(write_noise_video(clips / "corrupt_mid.avi"))
    damage_dicom_frame(copy_sonosite(clips / "bad_frame.dcm"), 15)
    write_npy(clips / "float_nan.npy", np.full((4, 32, 32), np.nan, np.float32))
    write_npy(clips / "black.npy", np.zeros((6, 48, 64), np.uint8))

    def row(patient: str, day: int, path: str, spo2="95", fio2="0.5", visit=None) -> list[str]:
        return [patient, visit or f"2021-05-{day:02d}", path, spo2, fio2, "R1", ""]

    def three(patient: str, files: list[str]) -> list[list[str]]:
        return [row(patient, 20 + d, f"clips/{f}.npy", *sf_scores(d)[0]) for d, f in enumerate(files)]

    # kind: (rows, {index of a row in rows: message fragment}); the first kind's row comes
    # before the good rows (extra cells in the first data row once broke the header).
    kinds: dict[str, tuple[list[list[str]], dict[int, str]]] = {
        "ragged row (extra cells, first data row)": ([row("P06", 1, "clips/p06_v2.npy") + ["x", "y"]],
                                                     {0: "row has 9 cells"}),
        "missing file": ([row("P06", 2, "clips/missing.dcm")], {0: "file not found"}),
        "not a DICOM file": ([row("P06", 3, "clips/notes.dcm")], {0: "not a readable DICOM"}),
        "truncated mp4": ([row("P06", 4, "clips/cut.mp4")], {0: "unreadable video"}),
        "truncated native DICOM": ([row("P06", 5, "clips/cut_native.dcm")], {0: "truncated DICOM file"}),
        "truncated JPEG DICOM": ([row("P06", 6, "clips/cut_jpeg.dcm")], {0: "pixel data cut off"}),
        "video without frames": ([row("P06", 7, "clips/empty.avi")], {0: "zero decodable frames"}),
        "array without frames": ([row("P06", 8, "clips/zero_frames.npy")], {0: "zero frames"}),
        "DICOM without pixel data": ([row("P06", 9, "clips/sr.dcm")], {0: "no pixel data"}),
        "empty file": ([row("P06", 10, "clips/zero_bytes.mp4")], {0: "file is empty"}),
        "folder as path": ([row("P06", 11, "clips/a_folder.npy")], {0: "not a file"}),
        "unsupported file type": ([row("P06", 12, "clips/clip.gif")], {0: "unsupported file type '.gif'"}),
        "no decoder installed": ([row("P06", 13, "clips/jpegls.dcm")], {0: "install one of"}),
        "npz with two arrays": ([row("P06", 14, "clips/two.npz")], {0: "npz holds arrays"}),
        "pickled array": ([row("P06", 15, "clips/objects.npy")], {0: "Python objects"}),
        "symlink loop": ([row("P06", 16, "clips/loop_a")], {0: "symlink loop"}),
        "1x1-pixel frames": ([row("P06", 17, "clips/tiny.npy")], {0: "frames are 1x1 pixels"}),
        "blank score": ([row("P07", 1, "clips/p07_v2.npy", spo2="")], {0: "spo2 '' is not a number"}),
        "FiO2 out of range": ([row("P07", 2, "clips/p07_v2.npy", fio2="15")], {0: "neither a fraction"}),
        "SpO2 as a fraction": ([row("P07", 3, "clips/p07_v2.npy", spo2="0.95")], {0: "not a percentage"}),
        "non-numeric score": ([row("P07", 4, "clips/p07_v2.npy", spo2="n/a")], {0: "spo2 'n/a' is not a number"}),
        "unparseable date": ([row("P07", 5, "clips/p07_v2.npy", visit="yesterday")], {0: "'yesterday' is not a date"}),
        "impossible date": ([row("P07", 6, "clips/p07_v2.npy", visit="2021-13-45")], {0: "is not a date"}),
        "two-digit year": ([row("P07", 7, "clips/p07_v2.npy", visit="3/4/21")], {0: "two-digit year"}),
        "blank path": ([row("P07", 8, "")], {0: "path is blank"}),
        "blank patient id": ([row("", 9, "clips/p07_v2.npy")], {0: "patient_id is blank"}),
        "duplicate scan row": ([good[13][:]], {0: "duplicate scan row"}),
        "patient with one visit": ([row("P99", 1, "clips/p99.npy")], {0: "only one visit"}),
        "ragged row (missing cells)": ([["P08", "2021-05-01", "clips/p08_v2.npy"]], {0: "row has 3 cells"}),
        "not UTF-8 (a Latin-1 byte)": ([row("P08", 2, "clips/p08_v2.npy")], {0: "not UTF-8"}),
        "same file for two patients": (three("P90", ["p90a", "p90b", "p90c"]) + three("P91", ["p91a", "p91b", "p90a"]),
                                       {0: "the same file is listed for another patient",
                                        5: "the same file is listed for another patient"}),
        "same content for two patients": (three("P92", ["p92a", "p92b", "p92c"]) + three("P93", ["p93a", "p93b", "p93_copy"]),
                                          {0: "identical content", 5: "identical content"}),
        "video with a damaged middle (mp4)": ([row("P09", 1, "clips/corrupt_mid.mp4")], {0: "corrupt or truncated after"}),
        "video with a damaged middle (avi)": ([row("P09", 2, "clips/corrupt_mid.avi")], {0: "corrupt or truncated after"}),
        "DICOM cine with a damaged frame": ([row("P09", 3, "clips/bad_frame.dcm")], {0: "frame 15 of the 30 declared"}),
        "float array full of NaN": ([row("P09", 4, "clips/float_nan.npy")], {0: "NaN"}),
        "all-black clip": ([row("P09", 5, "clips/black.npy")], {0: "no image content"}),
    }
    good[0][6] = "seen twice, fine"  # a quoted cell holding the delimiter
    first, *rest = kinds
    ordered = [(first, kinds[first])] + [(None, (good, {}))] + [(k, kinds[k]) for k in rest]
    lines, expected, line = [LUS_HEADER + ["_note", ""]], {}, 2
    for kind, (rows, fragments) in ordered:
        for i, r in enumerate(rows):
            if kind is not None and i in fragments:
                expected.setdefault(kind, {})[line] = fragments[i]
            lines.append(r)
            line += 1
    text = "\r\n".join(",".join(f'"{c}"' if "," in c else c for c in r) for r in lines)
    data = b"\xef\xbb\xbf" + text.encode() + b"\r\n"
    marker = ",".join(row("P08", 2, "clips/p08_v2.npy")).encode()
    assert data.count(marker) == 1
    data = data.replace(marker, marker.replace(b",R1,", b",R1 ant\xe9rieur,"))  # one Latin-1 byte
    manifest = root / "manifest.csv"
    manifest.write_bytes(data)
    return manifest, expected, oddities
