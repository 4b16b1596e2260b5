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


def write_video(path: Path, n_frames: int = 10, size=(48, 64)) -> Path:
    """Gray moving-bar clip; codec by extension (mp4: H.264, avi: MJPEG, mov: mpeg4)."""
    import av

    codec, pix_fmt = {".mp4": ("libx264", "yuv420p"), ".avi": ("mjpeg", "yuvj420p"),
                      ".mov": ("mpeg4", "yuv420p")}[path.suffix]
    h, w = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for t in range(n_frames):
            rgb = np.full((h, w, 3), 30, np.uint8)
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
    write_video(clips / "p03_v3_R1.mp4")
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
