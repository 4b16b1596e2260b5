"""Raw clip -> model-ready clip: grayscale, equi-temporal resampling, square resize (uint8).

Every source funnels through :func:`to_model_clip` so that caching, sampling and the
models see one layout: ``uint8[frames, size, size]``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights (what DICOM viewers and PIL use for RGB -> L).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(clip: np.ndarray) -> np.ndarray:
    """``[T,H,W]`` or ``[T,H,W,3|4]`` -> ``[T,H,W]`` float32."""
    clip = np.asarray(clip)
    if clip.ndim == 4:
        if clip.shape[-1] not in (3, 4):
            raise ValueError(f"colour clip must have 3 or 4 channels last, got shape {clip.shape}")
        return clip[..., :3].astype(np.float32) @ _LUMA
    if clip.ndim != 3:
        raise ValueError(f"clip must be [T,H,W] or [T,H,W,C], got shape {clip.shape}")
    return clip.astype(np.float32)


def resample_indices(n_in: int, n_out: int) -> np.ndarray:
    """Equi-spaced frame indices (centres of ``n_out`` equal segments); repeats if ``n_in < n_out``."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def to_model_clip(clip: np.ndarray, frames: int, size: int) -> np.ndarray:
    """Grayscale, resample to ``frames`` frames, resize (antialiased, aspect not kept) to ``size``²."""
    gray = to_gray(clip)
    if gray.shape[0] == 0 or gray.shape[1] == 0 or gray.shape[2] == 0:
        raise ValueError(f"empty clip of shape {gray.shape}")
    gray = gray[resample_indices(gray.shape[0], frames)]
    if gray.shape[1:] != (size, size):
        t = torch.from_numpy(np.ascontiguousarray(gray))[:, None]
        gray = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)[:, 0].numpy()
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
