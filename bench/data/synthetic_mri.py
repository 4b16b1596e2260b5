"""Seeded synthetic longitudinal brain-MRI source (``synthetic-mri``), built on the real MNI152 template.

Why: ADNI needs a data-use agreement, yet the benchmark's second setting needs T1 volumes
whose subtle, score-driven atrophy (MMSE) sits under large head-to-head differences.
nilearn's wheel ships the MNI152 2009 T1 / GM / WM templates (no download), which give
real anatomy to deform.

Spec: ``synthetic-mri`` or ``synthetic-mri:n_patients=40,seed=1``. Knobs:

* ``n_patients`` (150) — the paper gives no ADNI counts; 150 subjects with 2-5 visits
  (about 3.3 on average, ~500 volumes) keeps the set on the LUS set's scale.
* ``seed`` (0) — tables and voxels depend on it and on the scan's identity only.
* ``signal`` (1.0) — scales the atrophy driven by the (latent) MMSE; 0 = no score
  information in the images (null control).
* ``nuisance`` (1.0) — scales every per-patient appearance spread (head pose and size,
  smooth shape deformation, bias field, contrast, baseline atrophy, noise).
* ``label_noise`` (1.0, >= 0) — sd, in MMSE points, of the per-visit mismatch between the
  recorded MMSE and the latent MMSE the anatomy follows (the test-retest noise below):
  ``MMSE = clip(rint(latent + label_noise·ε), 0, 30)``, ε ~ N(0, 1) per visit. 0 leaves only
  the rounding; the images do not change, only the recorded scores.
* ``shortcut`` (0, in [0, 1]) — coupling of the subject's head size to the subject's mean
  recorded MMSE. The two patient draws u ∈ [−1, 1] of the in-plane head scale become
  ``(1 − s)·u + s·g`` with ``g = tanh((mean MMSE over visits − 25) / 4)``:
  ``scale = exp(0.07·nuisance·((1 − s)·u + s·g))`` (a larger head for a higher MMSE, as
  cognitive reserve would have it). 0 is today's data; 1 makes the head size a monotone
  function of the mean MMSE (both axes alike). Patient-fixed: it says nothing about change
  within a subject; it scales with ``nuisance``.

As for ``synthetic-lus``, ``label_noise`` and ``shortcut`` enter the cache key only when set
away from their defaults, and the defaults render byte-identical volumes to before.

Scores: an ADNI-like mixture — cognitively normal (35 %: MMSE ~28-30, stable), MCI (45 %:
24-28.5, 0.3-1.5 points/year) and AD (20 %: 18-25, 1.5-4.5 points/year); visits every 6-12
months, 2-5 per subject; the recorded MMSE is the latent value plus test-retest noise
(sd ``label_noise``, 1 point by default), rounded and clipped to 0-30. Pairs use
``MMSE_RULE`` (a change of 2 points); most pairs are "same", as in ADNI, and "improved" pairs come only from
test-retest noise (about 30 / 63 / 7 % deteriorated / same / improved over seeds 0-19).

Image model: atrophy a = patient baseline (age) + signal·(30 − latent MMSE)/15, so between
visits it grows with the cumulative latent decline. It enlarges the ventricles (a smooth
field pulling sample points toward the lateral ventricles, up to ~4.5 mm) and thins grey
matter (GM probability turned to CSF intensity, doubled around the hippocampi). Per patient:
head size/shape (anisotropic scale), pose (in-plane rotation, through-plane tilt,
translation), a smooth random displacement field, a multiplicative bias field, gamma and
gain; per visit: small repositioning, Rician noise. A volume becomes ``frames`` evenly
spaced axial slices between the lowest and highest slices with substantial brain, each
``size×size`` over a 200 mm field of view (anterior at the top). The deformation is
evaluated on a coarse output grid, interpolated to the output grid, and the template is
read only at the output points (``map_coordinates``, order 1) from a pre-smoothed pyramid
level matched to the pixel size, so no full-volume warp is ever computed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from bench.data.generator import (COHORT_PREFIX, KEYED_IF_SET, KNOB_RANGES, ORACLE, TEST_PATIENTS, Generator,
                                  GeneratorKnobs, couple, parse_knobs, seeded_rng, tent_weights)
from bench.data.pairs import MMSE_RULE
from bench.data.scans import LongitudinalDataset
from bench.data.sources import register_source

VERSION = 1
FOV_MM = 200.0
CSF_LEVEL = 0.25           # template T1 intensity that atrophied grey matter tends to
LABEL_NOISE = 1.0          # default test-retest sd of the recorded MMSE around the latent one (points)
_TRAJ, _PATIENT, _VISIT = range(3)
GROUPS = {"CN": (0.35, (28.0, 30.5), (0.0, 0.15)),      # share, baseline MMSE range, decline/year range
          "MCI": (0.45, (24.0, 28.5), (0.3, 1.5)),
          "AD": (0.20, (18.0, 25.0), (1.5, 4.5))}


@dataclass(frozen=True)
class MRIConfig(GeneratorKnobs):
    n_patients: int = 150
    version: int = VERSION
    label_noise: float = field(default=LABEL_NOISE, metadata=KEYED_IF_SET)

    SOURCE = "synthetic-mri"


# ----------------------------------------------------------------------------- the table

def _trajectory(cfg: MRIConfig, p: int) -> tuple[str, np.ndarray, np.ndarray]:
    """Group, recorded MMSE per visit and the latent MMSE the anatomy follows."""
    rng = seeded_rng(cfg.seed, _TRAJ, p, cohort=cfg.cohort)
    names = list(GROUPS)
    group = names[rng.choice(len(names), p=[GROUPS[g][0] for g in names])]
    _, (lo, hi), (r_lo, r_hi) = GROUPS[group]
    n_visits = 2 + rng.choice(4, p=[0.3, 0.3, 0.25, 0.15])
    years = np.concatenate([[0.0], np.cumsum(rng.integers(6, 13, n_visits - 1))]) / 12.0
    latent = rng.uniform(lo, hi) - rng.uniform(r_lo, r_hi) * years
    recorded = np.clip(np.rint(latent + rng.normal(0.0, cfg.label_noise, n_visits)), 0, 30)
    return group, recorded, np.clip(latent, 0, 30)


def shortcut_anchor(cfg: MRIConfig, p: int) -> float:
    """The subject's mean recorded MMSE over its visits mapped onto (-1, 1): tanh((mean - 25) / 4)."""
    return float(np.tanh((_trajectory(cfg, p)[1].mean() - 25.0) / 4.0))


def build_table(cfg: MRIConfig) -> tuple[pd.DataFrame, dict[str, tuple[int, int, float]]]:
    """Scan table plus, per scan_id, (patient, visit, latent MMSE) for the renderer."""
    width = max(3, len(str(cfg.n_patients - 1)))
    rows, latent = [], {}
    for p in range(cfg.n_patients):
        _, recorded, hidden = _trajectory(cfg, p)
        pid = f"{COHORT_PREFIX.get(cfg.cohort, 's')}{p:0{width}d}"
        for v, (score, m) in enumerate(zip(recorded, hidden), start=1):
            scan_id = f"mri-{pid}-v{v}"
            rows.append((pid, v, scan_id, float(score), f"synthetic-mri/{pid}/v{v}"))
            latent[scan_id] = (p, v, float(m))
    return pd.DataFrame(rows, columns=["patient_id", "visit", "scan_id", "score", "source"]), latent


# ----------------------------------------------------------------------------- the atlas

@dataclass(frozen=True)
class _Atlas:
    """MNI152 in (z, y, x) voxel order (x fastest, matching the output rows for cache-friendly reads)."""

    t1: np.ndarray           # [Z, Y, X] T1 intensity in [0, 1]
    thin: np.ndarray         # [Z, Y, X] intensity a fully atrophied voxel loses (GM-weighted)
    vent: np.ndarray         # [3, Z/2, Y/2, X/2] unit-max field pointing toward the lateral ventricles
    origin: np.ndarray       # voxel index (z, y, x) of MNI (0, 0, 0)
    z_range: tuple[float, float]   # MNI z (mm) of the lowest / highest slice with substantial brain


def _template(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One MNI152 2009 template shipped in nilearn's wheel, in (z, y, x) order, scaled to max 1.

    The same files and scaling as ``nilearn.datasets.load_mni152_{kind}_template(resolution=1)``,
    read with nibabel directly: importing ``nilearn.datasets`` costs ~2 s (scikit-learn) per process.
    """
    import nibabel
    from importlib.resources import files

    path = files("nilearn") / "datasets" / "data" / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    img = nibabel.load(str(path))
    data = np.ascontiguousarray(img.get_fdata(dtype=np.float32).transpose(2, 1, 0))
    return data / data.max(), img.affine


@lru_cache(maxsize=1)
def _atlas() -> _Atlas:
    """Load the templates once per process and derive the atrophy maps from them."""
    try:
        t1, affine = _template("t1")
        gm, _ = _template("gm")
        wm, _ = _template("wm")
    except (ImportError, FileNotFoundError) as e:
        raise RuntimeError("synthetic-mri needs nilearn's MNI152 templates and nibabel: "
                           "pip install 'learner-bench[mri]'") from e
    mask = t1 > 0.2                  # nilearn's load_mni152_brain_mask threshold
    origin = np.round(-np.linalg.solve(affine[:3, :3], affine[:3, 3]))[::-1]
    zyx = np.indices(t1.shape, dtype=np.float32, sparse=True)
    mm = [zyx[i] - origin[i] for i in range(3)]

    # Hippocampi near MNI (±26, -22, -14) mm atrophy early: twice the cortical rate there.
    hippo = sum(np.exp(-((mm[2] - sx) ** 2 + (mm[1] + 22) ** 2 + (mm[0] + 14) ** 2) / (2 * 9.0 ** 2))
                for sx in (-26.0, 26.0)).astype(np.float32)
    thin = (gm * (1.0 + 2.0 * hippo) * np.clip(t1 - CSF_LEVEL, 0, None)).astype(np.float32)

    # Lateral ventricles: dark CSF components in a central box; their blurred mask's gradient.
    csf = np.clip(mask - gm - wm, 0, 1)
    box = (np.abs(mm[2]) < 35) & (mm[1] > -50) & (mm[1] < 30) & (mm[0] > -5) & (mm[0] < 40)
    lab, _ = ndi.label((csf > 0.5) & box & (t1 < 0.35))
    ventricles = np.isin(lab, np.flatnonzero(np.bincount(lab.ravel())[1:] > 1000) + 1)
    smooth = ndi.gaussian_filter(ventricles[::2, ::2, ::2].astype(np.float32), sigma=3.0)
    vent = np.stack(np.gradient(smooth)).astype(np.float32)
    vent /= np.sqrt((vent ** 2).sum(0)).max()

    area = mask.sum((1, 2))
    z_idx = np.flatnonzero(area > 0.2 * area.max())
    return _Atlas(t1, thin, vent, origin, (z_idx[0] - origin[0], z_idx[-1] - origin[0]))


@lru_cache(maxsize=3)
def _level(factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(t1, thin) pre-smoothed and subsampled by ``factor``: antialiasing for small outputs."""
    atlas = _atlas()
    if factor == 1:
        return atlas.t1, atlas.thin
    return tuple(np.ascontiguousarray(ndi.gaussian_filter(v, 0.45 * factor)[::factor, ::factor, ::factor])
                 for v in (atlas.t1, atlas.thin))


# ----------------------------------------------------------------------------- appearance

@dataclass(frozen=True)
class _Patient:
    scale: tuple[float, float]
    rot_deg: float
    tilt_deg: tuple[float, float]
    shift_mm: tuple[float, float]
    warp: np.ndarray          # [3, 5, 5, 5] smooth displacement (mm) over the template box
    bias: np.ndarray          # [6] low-order log bias-field coefficients
    gamma: float
    gain: float
    noise: float
    base_atrophy: float


@lru_cache(maxsize=512)
def _patient(cfg: MRIConfig, p: int) -> _Patient:
    rng = seeded_rng(cfg.seed, _PATIENT, p, cohort=cfg.cohort)
    k = cfg.nuisance
    u = lambda n=None: rng.uniform(-1.0, 1.0, n)  # noqa: E731  (draws in a fixed order)
    anchor = shortcut_anchor(cfg, p) if cfg.shortcut else 0.0
    return _Patient(
        scale=tuple(np.exp(0.07 * k * couple(u(2), anchor, cfg.shortcut))),
        rot_deg=8.0 * k * u(), tilt_deg=tuple(4.0 * k * u(2)),
        shift_mm=tuple(6.0 * k * u(2)), warp=(3.0 * k * rng.standard_normal((3, 5, 5, 5))).astype(np.float32),
        bias=0.12 * k * rng.standard_normal(6), gamma=float(np.exp(0.2 * k * u())),
        gain=float(np.exp(0.12 * k * u())), noise=max(0.005, 0.02 + 0.01 * k * u()),
        base_atrophy=0.25 + 0.2 * k * u(),
    )


def atrophy(cfg: MRIConfig, p: int, latent_mmse: float) -> float:
    """The anatomy's atrophy index: patient baseline plus the score-driven part."""
    return max(0.0, _patient(cfg, p).base_atrophy + cfg.signal * (30.0 - latent_mmse) / 15.0)


class MRIRenderer:
    """``load_clip`` of the synthetic MRI source; picklable, deterministic per scan."""

    def __init__(self, cfg: MRIConfig, latent: dict[str, tuple[int, int, float]]):
        self.cfg = cfg
        self.latent = latent

    def _scan(self, row: pd.Series) -> tuple[int, int, float]:
        scan_id = str(row["scan_id"])
        if scan_id not in self.latent:
            raise KeyError(f"synthetic-mri: scan {scan_id!r} ({row.get('source')}) is not in this generator's table")
        return self.latent[scan_id]

    def latent_severity(self, row: pd.Series) -> float:
        """The dataset's oracle hook: the atrophy index the row's volume is rendered with."""
        p, _, m = self._scan(row)
        return atrophy(self.cfg, p, m)

    def __call__(self, row: pd.Series, frames: int, size: int) -> np.ndarray:
        p, v, _ = self._scan(row)
        return render(self.cfg, p, v, self.latent_severity(row), frames, size)


def render(cfg: MRIConfig, p: int, v: int, a: float, frames: int, size: int) -> np.ndarray:
    """Subject ``p`` at visit ``v`` with atrophy ``a`` as ``uint8[frames, size, size]`` axial slices."""
    atlas, pat = _atlas(), _patient(cfg, p)
    rng = seeded_rng(cfg.seed, _VISIT, p, v, cohort=cfg.cohort)
    F, S = frames, size
    G = min(S, 24)                                   # coarse grid for the smooth parts

    # Coarse grid nodes spanning the output pixel centres (scanner mm; rows run anterior->posterior).
    half = FOV_MM / 2 - FOV_MM / (2 * S)
    qx = np.linspace(-half, half, G)
    qy = -qx
    z_lo, z_hi = atlas.z_range
    qz = z_lo + (np.arange(F) + 0.5) / F * (z_hi - z_lo)
    QZ, QY, QX = np.meshgrid(qz, qy, qx, indexing="ij")

    # Patient pose and head shape, plus this visit's repositioning, -> template mm.
    rot = np.deg2rad(pat.rot_deg + 1.5 * rng.uniform(-1, 1))
    tilt = np.tan(np.deg2rad(np.asarray(pat.tilt_deg) + 1.0 * rng.uniform(-1, 1, 2)))
    shift = np.asarray(pat.shift_mm) + 1.5 * rng.uniform(-1, 1, 2)
    x = (np.cos(rot) * QX - np.sin(rot) * QY) / pat.scale[0] + shift[0]
    y = (np.sin(rot) * QX + np.cos(rot) * QY) / pat.scale[1] + shift[1] - 17.0   # brain centre at y = -17 mm
    z = QZ + tilt[0] * QY + tilt[1] * QX
    mm = np.stack([z, y, x])                                                  # [3, F, G, G] (z, y, x)

    # Smooth patient-specific shape: a 5^3 control grid over the template box, cubic spline.
    box = np.array(atlas.t1.shape, float)
    ctrl = ((mm + atlas.origin[:, None, None, None]) / (box - 1)[:, None, None, None] * 4).reshape(3, -1)
    mm = mm + np.stack([ndi.map_coordinates(w, ctrl, order=3, mode="nearest") for w in pat.warp]).reshape(mm.shape)

    # Ventricle enlargement: sample closer to the ventricles, so they look larger.
    vidx = ((mm + atlas.origin[:, None, None, None]) / 2.0).reshape(3, -1)
    pull = np.stack([ndi.map_coordinates(c, vidx, order=1, mode="nearest") for c in atlas.vent])
    mm = mm + min(4.5, 2.5 * a) * pull.reshape(mm.shape)

    # Bias field (log-polynomial in scanner coordinates), then everything up to the output grid.
    n = np.stack([QX / 100, QY / 100, QZ / 100])
    log_bias = (pat.bias[:3, None, None, None] * n).sum(0) + pat.bias[3] * n[0] * n[1] \
        + pat.bias[4] * n[1] * n[2] + pat.bias[5] * (n[0] ** 2 - n[1] ** 2)
    fine = np.arange(S) * (G - 1) / max(S - 1, 1)
    up = tent_weights(fine, G, 1.0).astype(np.float32)                      # [S, G]
    coarse = np.concatenate([mm, log_bias[None]]).astype(np.float32)      # [4, F, G, G]
    # Two plain GEMMs (a batched matmul stalls on BLAS thread start-up per slice).
    cols = (coarse.reshape(-1, G) @ up.T).reshape(4 * F, G, S)             # [4F, G(rows), S]
    dense = (up @ cols.transpose(1, 0, 2).reshape(G, -1)).reshape(S, 4, F, S).transpose(1, 2, 0, 3)

    # Read the template at the output points only, from the pyramid level of this pixel size.
    factor = 1 if FOV_MM / S < 2.0 else 2 if FOV_MM / S < 4.0 else 4
    t1, thin = _level(factor)
    idx = ((dense[:3] + atlas.origin[:, None, None, None]) / factor).reshape(3, -1)
    img = ndi.map_coordinates(t1, idx, order=1, mode="constant", cval=0.0, prefilter=False)
    img -= min(1.0, 0.25 * a) * ndi.map_coordinates(thin, idx, order=1, mode="constant", cval=0.0, prefilter=False)
    img = np.clip(img.reshape(F, S, S), 0, None) * np.exp(dense[3]) * pat.gain * (1 + 0.03 * rng.standard_normal())
    img = img ** pat.gamma

    # Rician noise, as magnitude MRI has.
    sigma = np.float32(pat.noise)
    noisy = np.hypot(img + sigma * rng.standard_normal(img.shape, dtype=np.float32),
                     sigma * rng.standard_normal(img.shape, dtype=np.float32))
    return np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the source

_KNOBS = {"n_patients": int, "seed": int, "signal": float, "nuisance": float,
          "label_noise": float, "shortcut": float, "test_patients": int}


def further_patients(cfg: MRIConfig, n: int, cohort: int) -> MRIConfig:
    return replace(cfg, n_patients=n, cohort=cohort)


def latent_cohort(cfg: MRIConfig, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The dataset's ``latent_cohort`` hook: scan table and atrophy index of ``n`` oracle-cohort
    subjects, without voxels."""
    oracle_cfg = further_patients(cfg, n, ORACLE)
    table, latent = build_table(oracle_cfg)
    return table, np.array([atrophy(oracle_cfg, p, m) for p, _, m in latent.values()], dtype=np.float32)


GENERATOR = Generator("synthetic-mri", "mri", "MMSE", MMSE_RULE, build_table, MRIRenderer, latent_cohort,
                      further_patients)


def make_synthetic_mri(n_patients: int = 150, seed: int = 0, signal: float = 1.0, nuisance: float = 1.0,
                       label_noise: float = LABEL_NOISE, shortcut: float = 0.0, test_patients: int = TEST_PATIENTS,
                       *, on_bad_input: str = "fail") -> LongitudinalDataset:
    """The training cohort with a held-out cohort of ``test_patients`` further subjects (none at 0)
    and the oracle's cohort hook."""
    cfg = MRIConfig(n_patients=int(n_patients), seed=int(seed), signal=float(signal), nuisance=float(nuisance),
                    label_noise=float(label_noise), shortcut=float(shortcut))
    return GENERATOR.dataset(cfg, test_patients, on_bad_input)


@register_source("synthetic-mri")
def synthetic_mri(arg: str | None = None, *, on_bad_input: str = "fail", **defaults) -> LongitudinalDataset:
    return make_synthetic_mri(**parse_knobs(arg, defaults, _KNOBS, "synthetic-mri", KNOB_RANGES),
                              on_bad_input=on_bad_input)
