"""Clip readers by file type: DICOM cine loops, videos, numpy arrays, NIfTI volumes.

Three entry points, one decoder per file type behind them:

* :func:`decode_clip` — what training reads: the model clip ``uint8[frames, size, size]``.
  Frames are *streamed*: each decoded frame is turned gray and resized to ``size``² as it
  arrives (a video frame far larger than that is first shrunk by FFmpeg's swscale), so memory
  stays flat whatever the input resolution.
* :func:`read_clip` — the raw clip at full resolution, ``uint8[T,H,W]`` or
  ``uint8[T,H,W,3]`` (for tests and inspection).
* :func:`probe_clip` — the cheap check (header, pixel data present, first and last frame
  decodable, frame size); :func:`verify_clip` decodes every frame, as training will.

Every decode checks what a decoded clip must be, so decode-time faults are found by the
same rules wherever they surface: a corrupt or truncated stream, fewer frames than the
header declares, NaN/inf values, frames smaller than :data:`MIN_SIDE` pixels, a clip with
no image content (one value everywhere). Every failure is a :class:`ClipReadError` naming
the file and the fault; an unexpected exception of a decoding library is turned into one.

DICOM pixel values are mapped the way a viewer shows them: pydicom's modality LUT
(rescale slope/intercept or a Modality LUT Sequence), then the VOI LUT or window when the
file has one (its output range maps to 0–255), otherwise — for data that is not already
unsigned 8-bit — the clip's 0.5th–99.5th percentiles map to 0–255. MONOCHROME1 is
inverted, palettes applied, YBR converted to RGB. A NIfTI volume becomes its
brain-containing axial slices (``T`` = slices).
"""
from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

DICOM_SUFFIXES = (".dcm", ".dicom")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")
ARRAY_SUFFIXES = (".npy", ".npz")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
SUPPORTED = DICOM_SUFFIXES + VIDEO_SUFFIXES + ARRAY_SUFFIXES + NIFTI_SUFFIXES
MIN_SIDE = 16  # frames smaller than this (either side) carry no usable image
MAX_FRAMES = 20_000  # a cine loop has tens to hundreds; more is a mislabelled recording
WINDOW_PERCENTILES = (0.5, 99.5)  # the robust window of DICOM data without a VOI LUT / window
BLANK_RANGE = 2  # 8-bit clips whose values all lie within this many levels show nothing


class ClipReadError(ValueError):
    """A clip/volume that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = " ".join(reason.split())  # one line, whatever a library's message holds
        super().__init__(f"{path}: {self.reason}")


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
    try:
        if not path.exists():
            raise ClipReadError(path, "file not found")
        if not path.is_file():
            raise ClipReadError(path, "not a file")
        if path.stat().st_size == 0:
            raise ClipReadError(path, "file is empty (0 bytes)")
    except OSError as e:  # name too long, permission denied on a folder, ...
        raise ClipReadError(path, f"cannot access the file ({e.strerror or e})") from None
    return path


def _guarded(path: str | Path, work: Callable[[Path], object]):
    """Run a reader; any failure is a :class:`ClipReadError` naming ``path``, never a traceback."""
    try:
        path = _existing(path)
        return work(path)
    except ClipReadError:
        raise
    except OSError as e:
        raise ClipReadError(path, f"cannot read the file ({e.strerror or e})") from None
    except MemoryError:
        raise ClipReadError(path, "too large to decode in memory") from None
    except Exception as e:  # a decoding library failing on input it does not expect
        raise ClipReadError(path, f"cannot be decoded ({type(e).__name__}: {e})") from None


def read_clip(path: str | Path) -> np.ndarray:
    """The raw clip of any supported file, ``uint8[T,H,W]`` or ``uint8[T,H,W,3]``."""
    return _guarded(path, lambda p: _DECODERS[file_kind(p)](p, _Frames(p, None)))


def decode_clip(path: str | Path, frames: int, size: int) -> np.ndarray:
    """The model clip ``uint8[frames, size, size]``: gray, every frame resized while decoding,
    then ``frames`` equi-spaced frames (see :func:`~bench.data.preprocess.resample_indices`)."""
    return _guarded(path, lambda p: _DECODERS[file_kind(p)](p, _Frames(p, size, frames)))


def verify_clip(path: str | Path) -> None:
    """Decode every frame of a file with all the checks training applies; raises on any fault.
    The probe runs first: its cheaper checks name a fault more precisely, and it warns
    (:class:`ClipWarning`) about usable oddities once per file."""
    probe_clip(path)
    decode_clip(path, 1, MIN_SIDE)


def probe_clip(path: str | Path) -> None:
    """Cheap validity check of one file; raises :class:`ClipReadError` on any fault."""
    _guarded(path, lambda p: _PROBES[file_kind(p)](p))


# ----------------------------------------------------------------------------- frames

def _resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of one float32 frame to ``size``² (aspect not kept), as
    :func:`~bench.data.preprocess.to_model_clip` does for a whole clip."""
    import torch
    import torch.nn.functional as F

    if gray.shape == (size, size):
        return gray
    t = torch.from_numpy(np.ascontiguousarray(gray))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0, 0].numpy()


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


class _Frames:
    """What a decoder hands its frames to, one at a time.

    Checks each frame (shape, size, finite values) and the value range of the whole clip,
    and keeps the frame either as it is (``size`` None: the raw clip) or reduced to a gray
    ``size``² frame (uint8 when the values are display values, float32 when a window
    is applied at the end). ``finish`` returns the clip.
    """

    def __init__(self, path: Path, size: int | None, frames: int | None = None):
        self.path, self.size, self.frames = path, size, frames
        self.kept: list[np.ndarray] = []
        self.lo, self.hi = np.inf, -np.inf

    @property
    def count(self) -> int:
        return len(self.kept)

    def add(self, frame: np.ndarray, native: tuple[int, int] | None = None) -> None:
        """One decoded frame ``[H,W]`` or ``[H,W,C]``; ``native`` is its size before any shrink."""
        if frame.ndim == 3 and frame.shape[-1] == 1:
            frame = frame[..., 0]
        if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[-1] not in (3, 4)):
            raise ClipReadError(self.path, f"expected [T,H,W] or [T,H,W,C] frames, got frames of shape "
                                           f"{frame.shape}")
        h, w = native or frame.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ClipReadError(self.path, f"frames are {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} "
                                           f"are needed for an image")
        if frame.dtype.kind not in "biuf":
            raise ClipReadError(self.path, f"pixel type {frame.dtype} is not a real number type")
        if frame.dtype.kind == "f" and not np.isfinite(frame).all():
            raise ClipReadError(self.path, f"frame {self.count} contains NaN or infinite values")
        if self.count >= MAX_FRAMES:
            raise ClipReadError(self.path, f"more than {MAX_FRAMES} frames; a cine loop has far fewer "
                                           f"(cut the recording into clips)")
        channels = frame.reshape(-1, frame.shape[-1]) if frame.ndim == 3 else frame.reshape(-1, 1)
        self.lo = np.minimum(self.lo, channels.min(axis=0).astype(np.float64))
        self.hi = np.maximum(self.hi, channels.max(axis=0).astype(np.float64))
        if self.size is not None:
            from bench.data.preprocess import to_gray

            gray = _resize(to_gray(frame[None])[0], self.size)
            frame = _to_uint8(gray) if frame.dtype == np.uint8 else gray
        self.kept.append(frame)

    def finish(self, none: str, window: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """The clip; ``none``: the message for zero frames; ``window``: float -> 0–255 values."""
        if not self.kept:
            raise ClipReadError(self.path, none)
        spread = np.max(self.hi - self.lo)  # per channel: a uniformly red clip is blank too
        if spread <= (BLANK_RANGE if window is None else 0):
            lo, hi = float(self.lo[0]), float(self.hi[0])
            value = ("the same colour" if len(self.lo) > 1 else f"{lo:g}" if spread == 0
                     else f"within {lo:g}–{hi:g}")
            raise ClipReadError(self.path, f"clip has no image content: every pixel of every frame is {value}")
        clip = np.stack(self.kept)
        self.kept = []
        if window is not None:
            clip = _to_uint8(window(clip))
        if self.frames is not None:
            from bench.data.preprocess import resample_indices

            clip = clip[resample_indices(len(clip), self.frames)]
        return np.ascontiguousarray(clip)


def _scale_to_uint8(clip: np.ndarray, max_value: float) -> np.ndarray:
    if clip.dtype == np.uint8:
        return clip
    return _to_uint8(clip.astype(np.float32) * (255.0 / max_value))


def percentile_window(clip: np.ndarray, low: float = WINDOW_PERCENTILES[0],
                      high: float = WINDOW_PERCENTILES[1]) -> np.ndarray:
    """Values at the ``low``–``high`` percentiles of the clip map to 0–255 (clipped outside)."""
    lo, hi = np.percentile(clip, [low, high])
    if hi <= lo:  # a tiny bright object on a flat background: fall back to the full range
        lo, hi = float(clip.min()), float(clip.max())
    return (clip.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-12))


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
        which = "" if index is None else f"frame {index} of the {_n_frames(ds)} declared: "
        raise ClipReadError(path, f"cannot decode {ts.name} pixel data ({which}{type(e).__name__}: {e})") from None


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


class _DicomPixels:
    """How a DICOM file's stored values become display values 0–255 (see the module doc).

    ``frame(arr)`` maps one decoded frame; ``window`` is the clip-level step (the percentile
    window) or None when every frame is already in display values.
    """

    def __init__(self, ds, path: Path):
        from pydicom.pixels import apply_voi_lut

        self.ds, self.path = ds, path
        self.photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
        self.mono = self.photometric in ("MONOCHROME1", "MONOCHROME2")
        self.voi = None
        if self.mono and (ds.get("VOILUTSequence") or ("WindowCenter" in ds and "WindowWidth" in ds)):
            try:  # the VOI output range: what lies below / above the window (or LUT) entirely
                lo, hi = apply_voi_lut(np.array([-1e15, 1e15]), ds).astype(np.float64)
                if hi > lo:
                    self.voi = (float(lo), float(hi))
            except Exception as e:  # a width below 1, an unknown VOI function, a broken LUT
                warnings.warn(ClipWarning(f"{path}: VOI LUT / window unusable ({e}); the percentile "
                                          f"window is used instead"), stacklevel=2)
        unsigned8 = int(ds.get("BitsStored", 8)) <= 8 and int(ds.get("PixelRepresentation", 0)) == 0
        rescaled = "ModalityLUTSequence" in ds or float(ds.get("RescaleSlope", 1) or 1) != 1 \
            or float(ds.get("RescaleIntercept", 0) or 0) != 0
        self.as_stored = self.mono and self.voi is None and unsigned8 and not rescaled
        self.window = percentile_window if self.mono and self.voi is None and not self.as_stored else None

    def frame(self, arr: np.ndarray) -> np.ndarray:
        from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

        ds = self.ds
        if self.photometric == "PALETTE COLOR":
            rgb = apply_color_lut(arr, ds)
            return _scale_to_uint8(rgb, 2 ** (16 if rgb.dtype == np.uint16 else 8) - 1)
        if not self.mono:  # RGB (YBR already converted)
            return _scale_to_uint8(arr, 2 ** int(ds.get("BitsStored", 8)) - 1)
        if self.as_stored:
            out = arr.astype(np.uint8)
        elif self.voi is not None:
            lo, hi = self.voi
            out = _to_uint8((apply_voi_lut(apply_modality_lut(arr, ds), ds) - lo) * (255.0 / (hi - lo)))
        else:  # windowed over the whole clip at the end
            out = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
            return -out if self.photometric == "MONOCHROME1" else out
        return 255 - out if self.photometric == "MONOCHROME1" else out


def read_dicom(path: str | Path, frames: _Frames | None = None) -> np.ndarray:
    """Multi-frame (or single-frame) DICOM -> uint8 clip in display values, cropped to the
    first US region; frames are decoded one at a time."""
    path = Path(path)
    frames = frames or _Frames(path, None)
    ds = _dicom_dataset(path)
    n = _n_frames(ds)
    pixels = _DicomPixels(ds, path)
    region = ultrasound_region(ds, path, (int(ds.Rows), int(ds.Columns)))
    for i in range(n):
        arr = _decode_dicom(path, ds, index=i if n > 1 else None)
        if region is not None:
            y0, y1, x0, x1 = region
            arr = arr[y0:y1, x0:x1]
        frames.add(pixels.frame(arr))
    return frames.finish("DICOM file has zero frames", pixels.window)


def _probe_dicom(path: Path) -> None:
    ds = _dicom_dataset(path)
    n = _n_frames(ds)
    for index in sorted({0, n - 1}):
        _decode_dicom(path, ds, index=index if n > 1 else None)
    shape = (int(ds.Rows), int(ds.Columns))
    region = ultrasound_region(ds, path, shape, warn=True)
    h, w = (region[1] - region[0], region[3] - region[2]) if region else shape
    if min(h, w) < MIN_SIDE:
        raise ClipReadError(path, f"frames are {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} are needed "
                                  f"for an image")


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


def read_video(path: str | Path, frames: _Frames | None = None, limit: int | None = None) -> np.ndarray:
    """mp4 / avi / mov through PyAV (FFmpeg) -> ``uint8[T,H,W,3]``, frame by frame.

    With a model size set on ``frames``, FFmpeg (swscale) first shrinks a frame larger than
    twice that size, so a huge video never exists in memory at full size as RGB.
    A stream that declares more frames than decode is truncated or corrupt.
    """
    import av

    path = Path(path)
    frames = frames or _Frames(path, None)
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        declared = int(stream.frames or 0)
        try:
            for frame in container.decode(stream):
                native = (frame.height, frame.width)
                if frames.size is not None and max(native) > 2 * frames.size:
                    frame = frame.reformat(width=min(frame.width, 2 * frames.size),
                                           height=min(frame.height, 2 * frames.size))
                frames.add(frame.to_ndarray(format="rgb24"), native)
                if limit is not None and frames.count >= limit:
                    break
        except av.error.FFmpegError as e:
            raise ClipReadError(path, f"video is corrupt or truncated after {frames.count} "
                                      f"frame(s) ({e})") from None
    if limit is not None:  # a probe: decodable is enough (a clip may well start black)
        if not frames.count:
            raise ClipReadError(path, "video has zero decodable frames")
        return np.stack(frames.kept)
    if declared and 0 < frames.count < declared:
        raise ClipReadError(path, f"video declares {declared} frames but only {frames.count} decode "
                                  f"(truncated or corrupt stream)")
    return frames.finish("video has zero decodable frames")


def _probe_video(path: Path) -> None:
    read_video(path, limit=1)


# ----------------------------------------------------------------------------- arrays

def _load_array(path: Path, mmap: bool) -> np.ndarray:
    """A ``.npy`` array (memory-mapped when asked), or the single array (or the one named
    ``clip``) of an ``.npz``."""
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
    except ValueError as e:
        if "allow_pickle" in str(e) or "Python objects" in str(e):
            raise ClipReadError(path, "array holds Python objects (pickled data), not pixel values") from None
        raise ClipReadError(path, f"unreadable or truncated array file (ValueError: {e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ClipReadError(path, f"unreadable or truncated array file ({type(e).__name__}: {e})") from None


def _array_shape(path: Path, arr: np.ndarray) -> None:
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4)):
        raise ClipReadError(path, f"expected [T,H,W] or [T,H,W,C] frames, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ClipReadError(path, "clip has zero frames")
    if min(arr.shape[1:3]) < MIN_SIDE:
        raise ClipReadError(path, f"frames are {arr.shape[2]}x{arr.shape[1]} pixels; at least "
                                  f"{MIN_SIDE}x{MIN_SIDE} are needed for an image")
    if arr.dtype.kind not in "biuf":
        raise ClipReadError(path, f"array dtype {arr.dtype} is not a real number type")


def read_array(path: str | Path, frames: _Frames | None = None) -> np.ndarray:
    """``.npy`` / ``.npz`` clip, ``[T,H,W]`` or ``[T,H,W,C]``, read frame by frame (``.npy``
    memory-mapped).

    uint8 is taken as is; float data within 0–1 is taken as 0–1 intensities; other data
    within 0–255 is rounded; anything else is min–max scaled to 0–255. NaN/inf is a fault.
    """
    path = Path(path)
    frames = frames or _Frames(path, None)
    arr = _load_array(path, mmap=True)
    _array_shape(path, arr)
    scale = None
    if arr.dtype != np.uint8:  # the rule needs the whole clip's range: one pass first
        lo, hi = np.inf, -np.inf
        for t, frame in enumerate(arr):
            frame = np.asarray(frame, dtype=np.float32)
            if not np.isfinite(frame).all():
                raise ClipReadError(path, f"array contains NaN or infinite values (frame {t})")
            lo, hi = min(lo, float(frame.min())), max(hi, float(frame.max()))
        if arr.dtype.kind == "f" and lo >= 0 and hi <= 1:
            scale = (0.0, 255.0)
        elif lo >= 0 and hi <= 255:
            scale = (0.0, 1.0)
        else:
            scale = (lo, 255.0 / max(hi - lo, 1e-12))
    for frame in arr:
        frame = np.asarray(frame)
        if scale is not None:
            offset, factor = scale
            frame = _to_uint8((frame.astype(np.float32) - offset) * factor)
        frames.add(frame)
    return frames.finish("clip has zero frames")


def _probe_array(path: Path) -> None:
    _array_shape(path, _load_array(path, mmap=True))


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


def _decode_nifti(path: Path, frames: _Frames) -> np.ndarray:
    for axial in read_nifti(path):  # a volume is bounded by nature: read whole, then sliced
        frames.add(axial)
    return frames.finish("no axial slice has non-background content")


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


_DECODERS: dict[str, Callable[[Path, _Frames], np.ndarray]] = {
    "dicom": read_dicom, "video": read_video, "array": read_array, "nifti": _decode_nifti}
_PROBES: dict[str, Callable[[Path], None]] = {
    "dicom": _probe_dicom, "video": _probe_video, "array": _probe_array, "nifti": _probe_nifti}
