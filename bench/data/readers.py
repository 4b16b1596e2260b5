"""Clip readers by file type: DICOM cine loops, videos, numpy arrays, NIfTI volumes.

:func:`read_clip` returns the raw clip — ``uint8[T, H, W]`` or ``uint8[T, H, W, 3]`` — and
:func:`~bench.data.preprocess.to_model_clip` turns it into what the model sees. A NIfTI
volume becomes its brain-containing axial slices (``T`` = slices), so the equi-spaced frame
sampling of ``to_model_clip`` picks evenly spaced slices among them.

:func:`probe_clip` is the cheap pre-training check (header, pixel data present, first and
last frame decodable) used by the real-data sources to find every bad file before any
training starts. Every failure is a :class:`ClipReadError` naming the file and the fault.
"""
from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import numpy as np

DICOM_SUFFIXES = (".dcm", ".dicom")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")
ARRAY_SUFFIXES = (".npy", ".npz")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
SUPPORTED = DICOM_SUFFIXES + VIDEO_SUFFIXES + ARRAY_SUFFIXES + NIFTI_SUFFIXES


class ClipReadError(ValueError):
    """A clip/volume that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ClipWarning(UserWarning):
    """Usable input with something the user should know (e.g. an ignored US region)."""


def file_kind(path: str | Path) -> str:
    """``dicom`` / ``video`` / ``array`` / ``nifti`` from the name; extension-less DICOM
    files (common in PACS exports) are recognised by their ``DICM`` preamble."""
    path = Path(path)
    name = path.name.lower()
    for kind, suffixes in (("nifti", NIFTI_SUFFIXES), ("dicom", DICOM_SUFFIXES),
                           ("video", VIDEO_SUFFIXES), ("array", ARRAY_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    if not path.suffix and path.is_file():
        with open(path, "rb") as f:
            if f.read(132)[128:] == b"DICM":
                return "dicom"
    raise ClipReadError(path, f"unsupported file type {path.suffix or '(no extension)'!r}; "
                              f"supported: {', '.join(SUPPORTED)} or extension-less DICOM")


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ClipReadError(path, "file not found")
    if not path.is_file():
        raise ClipReadError(path, "not a file")
    if path.stat().st_size == 0:
        raise ClipReadError(path, "file is empty (0 bytes)")
    return path


def read_clip(path: str | Path) -> np.ndarray:
    """The raw clip of any supported file, ``uint8[T,H,W]`` or ``uint8[T,H,W,3]``."""
    path = _existing(path)
    kind = file_kind(path)
    return {"dicom": read_dicom, "video": read_video, "array": read_array,
            "nifti": read_nifti}[kind](path)


def probe_clip(path: str | Path) -> None:
    """Cheap validity check of one file; raises :class:`ClipReadError` on any fault."""
    path = _existing(path)
    kind = file_kind(path)
    {"dicom": _probe_dicom, "video": _probe_video, "array": _probe_array,
     "nifti": _probe_nifti}[kind](path)


def _check_frames(path: Path, clip: np.ndarray) -> np.ndarray:
    if clip.ndim not in (3, 4) or (clip.ndim == 4 and clip.shape[-1] not in (1, 3, 4)):
        raise ClipReadError(path, f"expected [T,H,W] or [T,H,W,C] frames, got shape {clip.shape}")
    if clip.shape[0] == 0:
        raise ClipReadError(path, "clip has zero frames")
    if min(clip.shape[1:3]) == 0:
        raise ClipReadError(path, f"frames are empty, shape {clip.shape}")
    return clip[..., 0] if clip.ndim == 4 and clip.shape[-1] == 1 else clip


def _scale_to_uint8(clip: np.ndarray, max_value: float) -> np.ndarray:
    if clip.dtype == np.uint8:
        return clip
    return np.clip(np.rint(clip.astype(np.float32) * (255.0 / max_value)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- DICOM

def _dicom_dataset(path: Path):
    """Read a DICOM file, insisting on pixel data and a decoder for its transfer syntax."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import get_decoder

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError as e:
            raise ClipReadError(path, f"not a readable DICOM file ({e})") from None
        except Exception as e:  # pydicom raises many types on corrupt headers
            raise ClipReadError(path, f"unreadable DICOM file ({type(e).__name__}: {e})") from None
    truncated = [str(w.message) for w in caught if "End of file" in str(w.message)]
    if "PixelData" not in ds:
        if truncated:
            raise ClipReadError(path, f"truncated DICOM file: pixel data cut off ({truncated[0]})")
        raise ClipReadError(path, "DICOM file has no pixel data (not an image/cine object)")
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is None:
        raise ClipReadError(path, "DICOM file has no transfer syntax in its file meta")
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise ClipReadError(path, f"no pixel decoder exists for transfer syntax {ts.name} ({ts})") from None
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies)
        raise ClipReadError(path, f"cannot decode {ts.name} pixel data: no decoder for it is "
                                  f"installed; install one of: {needs}")
    n = _n_frames(ds)
    if n < 1:
        raise ClipReadError(path, f"DICOM NumberOfFrames is {ds.get('NumberOfFrames')!r}: zero frames")
    if not ts.is_encapsulated:
        need = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * n
                * int(ds.BitsAllocated) + 7) // 8
        if len(ds.PixelData) < need:
            raise ClipReadError(path, f"truncated DICOM file: {len(ds.PixelData)} bytes of pixel data, "
                                      f"{need} expected for {n} frame(s)")
    return ds


def _n_frames(ds) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 0)
    except (TypeError, ValueError):
        return 0


def _decode_dicom(path: Path, ds, index: int | None = None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    try:
        # raw=False: YBR is converted to RGB, whatever the decoder (Pillow already does it).
        return pixel_array(ds, index=index, raw=False)
    except Exception as e:
        ts = ds.file_meta.TransferSyntaxUID
        raise ClipReadError(path, f"cannot decode {ts.name} pixel data "
                                  f"({type(e).__name__}: {e})") from None


def _dicom_to_uint8(ds, arr: np.ndarray) -> np.ndarray:
    """Frames-first, colour-resolved, 8-bit clip (MONOCHROME1 inverted, palettes applied)."""
    from pydicom.pixels import apply_color_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    single_frame = arr.ndim == (3 if int(ds.get("SamplesPerPixel", 1)) > 1 else 2)
    if single_frame:
        arr = arr[None]
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        bits = 16 if arr.dtype == np.uint16 else 8
    else:
        bits = int(ds.get("BitsStored", 8))
    clip = _scale_to_uint8(arr, 2 ** bits - 1)
    if photometric == "MONOCHROME1":
        clip = 255 - clip
    return clip


def ultrasound_region(ds, path: Path, shape: tuple[int, int],
                      warn: bool = False) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` (exclusive ends) of the first Sequence of Ultrasound Regions item.

    A region that does not lie inside the image (the header was written for another pixel
    grid, e.g. a downscaled export) is ignored, not clipped: clipping would cut an arbitrary
    part of the image. Validation (:func:`probe_clip`) says so with a :class:`ClipWarning`,
    once per file rather than on every read.
    """
    regions = ds.get("SequenceOfUltrasoundRegions")
    if not regions:
        return None
    r = regions[0]
    try:
        x0, y0 = int(r.RegionLocationMinX0), int(r.RegionLocationMinY0)
        x1, y1 = int(r.RegionLocationMaxX1), int(r.RegionLocationMaxY1)
    except AttributeError:
        return None
    rows, cols = shape
    if not (0 <= x0 <= x1 < cols and 0 <= y0 <= y1 < rows):
        if warn:
            warnings.warn(ClipWarning(
                f"{path}: ultrasound region x {x0}-{x1}, y {y0}-{y1} lies outside the "
                f"{cols}x{rows} image; not cropped"), stacklevel=2)
        return None
    return y0, y1 + 1, x0, x1 + 1


def read_dicom(path: str | Path) -> np.ndarray:
    """Multi-frame (or single-frame) DICOM -> uint8 clip, cropped to the first US region."""
    path = Path(path)
    ds = _dicom_dataset(path)
    clip = _check_frames(path, _dicom_to_uint8(ds, _decode_dicom(path, ds)))
    region = ultrasound_region(ds, path, clip.shape[1:3])
    if region is not None:
        y0, y1, x0, x1 = region
        clip = clip[:, y0:y1, x0:x1]
    return np.ascontiguousarray(clip)


def _probe_dicom(path: Path) -> None:
    ds = _dicom_dataset(path)
    n = _n_frames(ds)
    for index in sorted({0, n - 1}):
        _decode_dicom(path, ds, index=index if n > 1 else None)
    ultrasound_region(ds, path, (int(ds.Rows), int(ds.Columns)), warn=True)


# ----------------------------------------------------------------------------- video

def _open_video(path: Path):
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise ClipReadError(path, f"unreadable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise ClipReadError(path, "file has no video stream")
    return container


def _decode_video(path: Path, limit: int | None) -> list[np.ndarray]:
    import av

    frames: list[np.ndarray] = []
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if limit is not None and len(frames) >= limit:
                    break
        except av.error.FFmpegError as e:
            raise ClipReadError(path, f"video is corrupt or truncated after {len(frames)} "
                                      f"frame(s) ({e})") from None
    if not frames:
        raise ClipReadError(path, "video has zero decodable frames")
    return frames


def read_video(path: str | Path) -> np.ndarray:
    """mp4 / avi / mov through PyAV (FFmpeg) -> ``uint8[T,H,W,3]``."""
    path = Path(path)
    return _check_frames(path, np.stack(_decode_video(path, None)))


def _probe_video(path: Path) -> None:
    _decode_video(path, limit=1)


# ----------------------------------------------------------------------------- arrays

def _load_array(path: Path, mmap: bool) -> np.ndarray:
    """A ``.npy`` array, or the single array (or the one named ``clip``) of an ``.npz``."""
    import zipfile

    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            if len(keys) == 1:
                return npz[keys[0]]
            if "clip" in keys:
                return npz["clip"]
            raise ClipReadError(path, f"npz holds arrays {keys}; name the clip 'clip' or store one array")
    except ClipReadError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ClipReadError(path, f"unreadable or truncated array file ({type(e).__name__}: {e})") from None


def read_array(path: str | Path) -> np.ndarray:
    """``.npy`` / ``.npz`` clip, ``[T,H,W]`` or ``[T,H,W,C]``.

    uint8 is taken as is; float data within 0–1 is taken as 0–1 intensities; other data
    within 0–255 is rounded; anything else is min–max scaled to 0–255.
    """
    path = Path(path)
    clip = _check_frames(path, np.asarray(_load_array(path, mmap=False)))
    if clip.dtype == np.uint8:
        return clip
    if clip.dtype.kind not in "biuf":
        raise ClipReadError(path, f"array dtype {clip.dtype} is not a real number type")
    is_float = clip.dtype.kind == "f"
    clip = clip.astype(np.float32)
    if not np.isfinite(clip).all():
        raise ClipReadError(path, "array contains NaN or infinite values")
    lo, hi = float(clip.min()), float(clip.max())
    if is_float and lo >= 0 and hi <= 1:
        return _scale_to_uint8(clip, 1.0)
    if lo >= 0 and hi <= 255:
        return np.rint(clip).astype(np.uint8)
    return _scale_to_uint8(clip - lo, max(hi - lo, 1e-12))


def _probe_array(path: Path) -> None:
    arr = _load_array(path, mmap=True)
    _check_frames(path, arr)


# ----------------------------------------------------------------------------- NIfTI

def _nifti_image(path: Path):
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as e:  # nibabel raises ImageFileError, EOFError, gzip errors, ...
        raise ClipReadError(path, f"unreadable NIfTI file ({type(e).__name__}: {e})") from None
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3 or min(shape) == 0:
        raise ClipReadError(path, f"expected a 3-D volume, got shape {img.shape}")
    return img


def brain_slices(volume: np.ndarray, threshold: float = 0.1, min_area: float = 0.1) -> np.ndarray:
    """Indices of the axial slices (last axis) with non-background content.

    A voxel is foreground above ``threshold`` of the normalised range; a slice counts when
    its foreground area is at least ``min_area`` of the largest slice's, and the range from
    the first to the last such slice is kept (no holes from noisy mid-brain slices).
    """
    area = (volume > threshold * 255).mean(axis=(0, 1))
    keep = np.flatnonzero(area >= min_area * area.max()) if area.max() > 0 else np.array([], int)
    if keep.size == 0:
        return keep
    return np.arange(keep[0], keep[-1] + 1)


def read_nifti(path: str | Path, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """NIfTI volume -> ``uint8[S, A, R]``: canonical RAS, intensities at the ``low``–``high``
    percentiles mapped to 0–255, the brain's axial slices inferior to superior, anterior up."""
    import nibabel as nib

    path = Path(path)
    img = nib.as_closest_canonical(_nifti_image(path))
    try:
        vol = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as e:
        raise ClipReadError(path, f"truncated or corrupt NIfTI data ({type(e).__name__}: {e})") from None
    vol = np.nan_to_num(vol.reshape(vol.shape[:3]), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = np.percentile(vol, [low, high])
    if hi <= lo:
        raise ClipReadError(path, "volume is constant: no image content")
    vol = np.clip((vol - lo) * (255.0 / (hi - lo)), 0, 255)
    keep = brain_slices(vol)
    if keep.size == 0:
        raise ClipReadError(path, "no axial slice has non-background content")
    # [R, A, S] -> [S, A, R] with anterior at the top row.
    slices = np.transpose(vol[:, :, keep], (2, 1, 0))[:, ::-1, :]
    return np.ascontiguousarray(np.rint(slices).astype(np.uint8))


def _probe_nifti(path: Path) -> None:
    """Header check plus a size check of the voxel data (gzip: its stored length)."""
    img = _nifti_image(path)
    header = img.header
    need = int(header.get_data_offset()) + int(np.prod(img.shape)) * header.get_data_dtype().itemsize
    if path.name.lower().endswith(".gz"):
        with open(path, "rb") as f:
            f.seek(-4, 2)
            have = struct.unpack("<I", f.read(4))[0]  # ISIZE: uncompressed length mod 2**32
        if have == need % 2 ** 32:
            return
        try:  # the trailer may be misleading (multi-member gzip): decompress to be sure
            with gzip.open(path, "rb") as f:
                have = len(f.read())
        except (OSError, EOFError) as e:
            raise ClipReadError(path, f"truncated or corrupt gzip NIfTI ({e})") from None
    else:
        have = path.stat().st_size
    if have < need:
        raise ClipReadError(path, f"truncated NIfTI: {have} bytes of {need} expected")
