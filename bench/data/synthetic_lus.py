"""Seeded synthetic lung-ultrasound source (``synthetic-lus``): the paper's LUS setting without the data.

Why: the in-house LUS set is not public, yet the benchmark needs data with the paper's
structure — many patients, a few consecutive visits each, and a subtle score-driven
biomarker buried under large patient-specific appearance differences — so that "does
inter-patient contrastive pretraining help tell a single patient's changes" is a
meaningful question.

Spec: ``synthetic-lus`` or ``synthetic-lus:n_patients=40,seed=1,signal=0.5``. Knobs:

* ``n_patients`` (189) — the paper's LUS cohort.
* ``n_clips`` (718 at 189 patients, else ``round(718 * n_patients / 189)``) — hit
  exactly; every patient has at least two visits; each visit scans the left and/or right
  lung (``zone`` column, "L"/"R"); pairs only compare the same zone.
* ``seed`` (0) — the data seed; tables and pixels depend on it and on the scan's
  identity only, never on call order.
* ``signal`` (1.0) — slope of the rendered biomarker severity vs. the S/F-derived
  severity around mid-range; 0 makes the clips carry no score information (a null
  control), > 1 exaggerates it (saturating at the extremes).
* ``nuisance`` (1.0) — scales the spread of every per-patient appearance parameter and
  the share of the patient-fixed speckle texture; 0 gives all patients the same scanner
  settings, depth, footprint and rib position (the layout of fascia and B-line sites
  stays patient-specific), so mostly the score and per-clip jitter remain.
* ``label_noise`` (0.1, >= 0) — sd of the per-visit mismatch between the S/F-implied lung
  severity and the one the image shows, in units of the severity range (0.1 ≈ 40 S/F
  units): ``severity = (480 − S/F) / 390 + label_noise·ε``, ε ~ N(0, 1) per visit. 0 makes
  the image follow S/F exactly up to the per-patient offset below (which ``nuisance``
  scales); only this draw changes: the table (S/F) and the patient appearance stay the
  same, the rendered biomarker moves.
* ``shortcut`` (0, in [0, 1]) — coupling of the patient's scanner preset (gain, dynamic
  range and gamma of the log compression: how bright the whole image is) to the patient's
  mean S/F. Each of the three patient draws u ∈ [−1, 1] becomes ``(1 − s)·u + s·g`` with
  ``g = 1 − 2·(mean S/F over the patient's visits − 90) / 390`` (+1 sickest, −1 healthiest),
  oriented so that a sicker patient is imaged brighter: ``gain_db = 10·nuisance·((1−s)·u₁
  + s·g)``, ``range_db = 50 + 12·nuisance·((1−s)·u₂ + s·g)``, ``gamma = exp(0.3·nuisance·((1−s)·u₃
  − s·g))``. 0 is today's data (the preset independent of the score); 1 makes the preset a
  monotone function of the patient's mean S/F. It is patient-fixed, so it tells nothing about
  change within a patient (per-clip gain jitter stays random); it scales with ``nuisance``.

Knobs added after the first release (``label_noise``, ``shortcut``) enter the cache key only
when set away from their defaults, so the default data keep their key and caches; the
defaults render byte-identical clips to the generator before the knobs existed.

Score: S/F = 90 + 390·sigmoid(h) with a per-patient random walk h (baseline, drift,
per-visit step), rounded to an integer, shared by the zones of a visit. The walk's spread
is set so that improved / same / deteriorated consecutive pairs under the paper's bins
each make well over 15 % (measured over seeds 0-19 at the defaults: 25 / 49 / 27 % on
average, the smallest share seen 19.6 %). The lung severity the image shows is the
S/F-implied one plus a per-visit mismatch (sd ``label_noise``, 0.1 of the severity range,
~40 S/F units, by default: S/F also reflects oxygen therapy and more than the scanned lung)
and a per-patient offset (sd 0.1 × nuisance).

Image model (linear probe B-mode, amplitudes log-compressed to 8 bit): chest-wall speckle
with fascia bands above a bright pleural line; below it a sliding lung haze with A-lines
(reverberations at multiples of the pleural depth, fading with depth, weakening as the
lung gets sicker and vanishing under B-lines); B-lines (vertical comet tails from the
pleura to the bottom) whose count, width and brightness grow, and a pleura that gets
rougher, thicker and fragmented, as S/F falls; lung sliding weakens with severity.
Patient nuisance: imaging depth (4-6 cm, the paper's range) and chest-wall thickness
(pleural depth), gain, dynamic range, gamma, attenuation, probe footprint on screen,
speckle grain, rib spacing/position (dark shadows), patient-fixed speckle and fascia
pattern, respiratory rate. Per clip: probe position, pressure (pleural depth), gain.
Everything is evaluated on the requested ``frames×size×size`` grid directly (textures by
antialiased tent resampling of small base fields, lines with pixel-size-widened
profiles), so any size is rendered without a full-resolution pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from bench.data.generator import (COHORT_PREFIX, KEYED_IF_SET, KNOB_RANGES, ORACLE, TEST_PATIENTS, Generator,
                                  GeneratorKnobs, couple, parse_knobs, seeded_rng, tent_weights)
from bench.data.pairs import SF_RULE
from bench.data.scans import LongitudinalDataset
from bench.data.sources import register_source

VERSION = 1
PAPER_PATIENTS, PAPER_CLIPS = 189, 718
SF_LOW, SF_HIGH = 90.0, 480.0
ZONES = ("L", "R")
_SPAN = 3.0  # lateral extent of the patient's "chest" in probe widths; the probe sees [ℓ0, ℓ0 + 1]
# Independent random streams, so adding a knob or a visit never reshuffles another stream.
_TABLE, _TRAJ, _PATIENT, _ZONE, _CLIP = range(5)
LABEL_NOISE = 0.1  # default per-visit S/F-lung mismatch, in units of the severity range


@dataclass(frozen=True)
class LUSConfig(GeneratorKnobs):
    n_patients: int = PAPER_PATIENTS
    version: int = VERSION
    label_noise: float = field(default=LABEL_NOISE, metadata=KEYED_IF_SET)
    n_clips: int = PAPER_CLIPS

    SOURCE = "synthetic-lus"

    def __post_init__(self) -> None:
        if self.n_clips < 2 * self.n_patients:
            raise ValueError(f"synthetic-lus: n_clips={self.n_clips} < 2 * n_patients: every patient needs two visits")
        super().__post_init__()


# ----------------------------------------------------------------------------- the table

@lru_cache(maxsize=8)
def _visit_plan(cfg: LUSConfig) -> tuple[tuple[tuple[str, ...], ...], ...]:
    """Per patient, the zones scanned at each visit, with exactly ``n_clips`` scans in all.

    Visits and zones are drawn, then visits are removed / added at random patients until
    the count is hit; a one-clip gap with no one-zone patient left is filled by a visit
    that scans one zone only.
    """
    rng = seeded_rng(cfg.seed, _TABLE, cohort=cfg.cohort)
    n = cfg.n_patients
    zones = [ZONES if rng.random() < 0.6 else (ZONES[rng.integers(2)],) for _ in range(n)]
    visits = 2 + rng.choice(4, size=n, p=[0.62, 0.25, 0.09, 0.04])
    half_visit = np.zeros(n, bool)
    total = int(sum(v * len(z) for v, z in zip(visits, zones)))
    while total > cfg.n_clips:
        more = np.flatnonzero(visits > 2)
        if more.size:
            p = rng.choice(more)
            visits[p] -= 1
            total -= len(zones[p])
        else:
            p = rng.choice([i for i in range(n) if len(zones[i]) == 2])
            zones[p] = (zones[p][rng.integers(2)],)
            total -= visits[p]
    while total < cfg.n_clips:
        pool = range(n) if cfg.n_clips - total >= 2 else [i for i in range(n) if len(zones[i]) == 1]
        if pool:
            p = rng.choice(list(pool))
            visits[p] += 1
            total += len(zones[p])
        else:
            p = rng.choice([i for i in range(n) if not half_visit[i]])
            half_visit[p] = True
            visits[p] += 1
            total += 1
    plan = []
    for p in range(n):
        per_visit = [zones[p]] * int(visits[p])
        if half_visit[p]:
            per_visit[-1] = (zones[p][rng.integers(2)],)
        plan.append(tuple(per_visit))
    return tuple(plan)


def _trajectory(cfg: LUSConfig, p: int, n_visits: int) -> tuple[np.ndarray, np.ndarray]:
    """S/F per visit and the lung severity behind it (per-visit S/F–lung mismatch included)."""
    rng = seeded_rng(cfg.seed, _TRAJ, p, cohort=cfg.cohort)
    h = rng.normal(0.2, 1.3)
    drift = rng.normal(0.1, 0.6)
    hs, mismatch = [], []
    for _ in range(n_visits):
        hs.append(h)
        mismatch.append(rng.normal(0.0, cfg.label_noise))
        h += drift + rng.normal(0.0, 1.4)
    sf = np.rint(SF_LOW + (SF_HIGH - SF_LOW) / (1.0 + np.exp(-np.asarray(hs))))
    severity = (SF_HIGH - sf) / (SF_HIGH - SF_LOW) + np.asarray(mismatch)
    return sf, severity


def shortcut_anchor(cfg: LUSConfig, p: int) -> float:
    """The patient's mean S/F over its visits mapped linearly onto [-1, 1]: -1 at S/F 480, +1 at 90."""
    sf, _ = _trajectory(cfg, p, len(_visit_plan(cfg)[p]))
    return float(1.0 - 2.0 * (sf.mean() - SF_LOW) / (SF_HIGH - SF_LOW))


def build_table(cfg: LUSConfig) -> tuple[pd.DataFrame, dict[str, tuple[int, int, int, float]]]:
    """Scan table plus, per scan_id, what the renderer needs: (patient, visit, zone, severity)."""
    width = max(3, len(str(cfg.n_patients - 1)))
    prefix = COHORT_PREFIX.get(cfg.cohort, "p")
    rows, latent = [], {}
    for p, per_visit in enumerate(_visit_plan(cfg)):
        sf, severity = _trajectory(cfg, p, len(per_visit))
        pid = f"{prefix}{p:0{width}d}"
        for v, zones in enumerate(per_visit, start=1):
            for zone in zones:
                scan_id = f"lus-{pid}-v{v}-{zone}"
                rows.append((pid, v, scan_id, float(sf[v - 1]), f"synthetic-lus/{pid}/v{v}/{zone}", zone))
                latent[scan_id] = (p, v, ZONES.index(zone), float(severity[v - 1]))
    table = pd.DataFrame(rows, columns=["patient_id", "visit", "scan_id", "score", "source", "zone"])
    return table, latent


# ----------------------------------------------------------------------------- appearance

@dataclass(frozen=True)
class _Patient:
    """Scanner settings and anatomy that stay with a patient across visits (the nuisance)."""

    depth_cm: float
    wall_cm: float
    gain_db: float
    range_db: float
    gamma: float
    atten: float
    footprint: float
    foot_shift: float
    top: float
    grain: float
    rib_spacing: float
    rib_width: float
    a_line: float
    pleura_gain: float
    breath_cycles: float
    slide_amp: float
    fixed_share: float
    bias: float


@lru_cache(maxsize=512)
def _patient(cfg: LUSConfig, p: int) -> _Patient:
    rng = seeded_rng(cfg.seed, _PATIENT, p, cohort=cfg.cohort)
    k = cfg.nuisance
    u = lambda: rng.uniform(-1.0, 1.0)  # noqa: E731  (one draw per parameter, fixed order)
    anchor = shortcut_anchor(cfg, p) if cfg.shortcut else 0.0
    return _Patient(
        depth_cm=max(2.5, 5.0 + 1.0 * k * u()), wall_cm=max(0.4, 1.2 + 0.6 * k * u()),
        gain_db=10.0 * k * couple(u(), anchor, cfg.shortcut),
        range_db=max(25.0, 50.0 + 12.0 * k * couple(u(), anchor, cfg.shortcut)),
        gamma=float(np.exp(0.3 * k * couple(u(), -anchor, cfg.shortcut))), atten=max(0.0, 1.0 + 0.6 * k * u()),
        footprint=float(np.clip(0.82 + 0.15 * k * u(), 0.4, 1.0)), foot_shift=0.05 * k * u(),
        top=max(0.0, 0.03 + 0.03 * k * u()),
        grain=float(np.exp(0.4 * k * u())), rib_spacing=max(0.6, 1.15 + 0.2 * k * u()),
        rib_width=0.3 + 0.06 * k * u(), a_line=max(0.1, 0.6 + 0.3 * k * u()),
        pleura_gain=float(np.exp(0.3 * k * u())), breath_cycles=max(0.3, 0.9 + 0.3 * k * u()),
        slide_amp=max(0.005, 0.04 + 0.02 * k * u()), fixed_share=min(0.95, 0.8 * k),
        bias=0.1 * k * rng.normal(),
    )


def _complex_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return (rng.standard_normal(shape, dtype=np.float32)
            + 1j * rng.standard_normal(shape, dtype=np.float32)).astype(np.complex64)


def _rough_profile(rng: np.random.Generator, n: int, corr: float) -> np.ndarray:
    """Unit-variance smooth 1-D noise over the lateral span (pleural roughness, fragmentation)."""
    x = rng.standard_normal(n)
    k = np.exp(-0.5 * (np.arange(-3 * corr, 3 * corr + 1) / corr) ** 2)
    x = np.convolve(np.concatenate([x[-len(k):], x, x[:len(k)]]), k / k.sum(), mode="same")[len(k):-len(k)]
    return ((x - x.mean()) / x.std()).astype(np.float32)


@dataclass(frozen=True)
class _Zone:
    """What belongs to one lung region of one patient: its texture, ribs and B-line sites."""

    wall_cm: float
    offset: float
    rib_phase: float
    tilt: float
    fascia: np.ndarray       # [n, 2]: relative depth (fraction of chest wall), brightness
    wall_field: np.ndarray   # complex [Hw, Ww], the patient-fixed chest-wall speckle
    lung_field: np.ndarray   # complex [Hl, Wl], the patient-fixed lung-haze speckle
    rough: np.ndarray        # [R] pleural-line roughness over the span
    gaps: np.ndarray         # [R] pleural-line fragmentation over the span
    sites: np.ndarray        # [n, 4]: B-line position (span), threshold, width and brightness factors


_PROFILE_RES = 600  # samples of the 1-D lateral profiles over _SPAN


@lru_cache(maxsize=512)
def _zone(cfg: LUSConfig, p: int, z: int) -> _Zone:
    pat = _patient(cfg, p)
    rng = seeded_rng(cfg.seed, _ZONE, p, z, cohort=cfg.cohort)
    k = cfg.nuisance
    hw, ww = _texture_shape(pat.grain)
    n_fascia = int(rng.integers(2, 5))
    n_sites = 30
    return _Zone(
        wall_cm=max(0.3, pat.wall_cm + 0.15 * k * rng.uniform(-1, 1)),
        offset=1.0 + 0.2 * k * rng.uniform(-1, 1),
        rib_phase=pat.rib_spacing * (0.5 + 0.5 * k * rng.uniform(-1, 1)),
        tilt=0.04 * k * rng.uniform(-1, 1),
        fascia=np.stack([rng.uniform(0.15, 0.9, n_fascia), rng.uniform(0.4, 1.5, n_fascia)], 1),
        wall_field=_complex_field(rng, (hw, ww)),
        lung_field=_complex_field(rng, (hw, ww // 2)),
        rough=_rough_profile(rng, _PROFILE_RES, 4.0),
        gaps=_rough_profile(rng, _PROFILE_RES, 6.0),
        sites=np.stack([rng.uniform(0, _SPAN, n_sites), rng.uniform(0, 1, n_sites),
                        rng.uniform(0.6, 1.4, n_sites), rng.uniform(0.6, 1.4, n_sites)], 1),
    )


def _texture_shape(grain: float) -> tuple[int, int]:
    """Base speckle grid: coarser grain = fewer cells; lateral cells are wider (as in B-mode)."""
    return max(16, int(round(72 / grain))), max(48, int(round(_SPAN * 48 / grain)))


def _line(d: np.ndarray, centre: np.ndarray, sigma: float, px: float) -> np.ndarray:
    """Gaussian line profile widened to at least a pixel, keeping its integral (no aliasing)."""
    eff = np.float32(np.hypot(sigma, 0.6 * px))
    return np.exp(-0.5 * ((d - centre) / eff) ** 2) * np.float32(sigma / eff)


def _speckle(fixed: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """Rayleigh speckle (mean 1) correlated with the patient's fixed pattern by ``share``."""
    z = np.sqrt(share) * fixed + np.sqrt(1.0 - share) * _complex_field(rng, fixed.shape)
    mag = np.abs(z)
    return mag / mag.mean()


class LUSRenderer:
    """``load_clip`` of the synthetic LUS source; picklable, deterministic per scan."""

    def __init__(self, cfg: LUSConfig, latent: dict[str, tuple[int, int, int, float]]):
        self.cfg = cfg
        self.latent = latent

    def severity(self, scan_id: str) -> float:
        """Biomarker severity in [0, 1] the clip is rendered with (0 healthy, 1 white lung)."""
        p, _, _, sev = self.latent[scan_id]
        b = 0.5 + self.cfg.signal * (sev - 0.5) + _patient(self.cfg, p).bias
        return float(np.clip(b, 0.0, 1.0))

    def latent_severity(self, row: pd.Series) -> float:
        """The dataset's oracle hook: :meth:`severity` of the row's scan."""
        return self.severity(self._scan(row))

    def _scan(self, row: pd.Series) -> str:
        scan_id = str(row["scan_id"])
        if scan_id not in self.latent:
            raise KeyError(f"synthetic-lus: scan {scan_id!r} ({row.get('source')}) is not in this generator's table")
        return scan_id

    def __call__(self, row: pd.Series, frames: int, size: int) -> np.ndarray:
        scan_id = self._scan(row)
        p, v, z, _ = self.latent[scan_id]
        return render(self.cfg, p, v, z, self.severity(scan_id), frames, size)


def render(cfg: LUSConfig, p: int, v: int, z: int, b: float, frames: int, size: int) -> np.ndarray:
    """One clip, ``uint8[frames, size, size]``, of patient ``p``, visit ``v``, zone ``z`` at severity ``b``."""
    pat, zone = _patient(cfg, p), _zone(cfg, p, z)
    rng = seeded_rng(cfg.seed, _CLIP, p, v, z, cohort=cfg.cohort)
    T, S = frames, size
    f32 = np.float32
    px = 1.0 / S

    # Per-clip jitter: probe position, pressure, gain, breathing phase, B-line flicker.
    offset = zone.offset + 0.08 * rng.standard_normal()
    wall = max(0.25, zone.wall_cm + 0.05 * rng.standard_normal())
    gain = pat.gain_db + 1.5 * rng.standard_normal()
    phase = rng.uniform(0, 1)
    flicker = 0.07 * rng.standard_normal(len(zone.sites))
    wall_spk = _speckle(zone.wall_field, rng, pat.fixed_share)
    lung_spk = _speckle(zone.lung_field, rng, pat.fixed_share)

    # Output grid -> probe coordinates: u across the footprint, d = fraction of imaging depth.
    grid = ((np.arange(S) + 0.5) / S).astype(f32)
    x0 = 0.5 - pat.footprint / 2 + pat.foot_shift
    u = (grid - x0) / pat.footprint
    d = (grid - pat.top) / (1.0 - pat.top)
    cover_x = np.clip((np.minimum(u, 1 - u) * pat.footprint * S) + 0.5, 0, 1)
    cover_y = np.clip(d * (1.0 - pat.top) * S + 0.5, 0, 1)
    lat = u + offset                                                        # [S] lateral span position
    t = ((np.arange(T) + 0.5) / T).astype(f32)
    slide = (pat.slide_amp * (1.0 - 0.6 * b) * np.sin(2 * np.pi * (pat.breath_cycles * t + phase))).astype(f32)
    lat_t = lat[None, :] + slide[:, None]                                   # [T, S] moves with the lung

    def profile(values: np.ndarray, where: np.ndarray) -> np.ndarray:
        return np.interp(where, np.linspace(0, _SPAN, len(values)), values).astype(f32)

    # Pleural line: depth set by chest wall / imaging depth; rough, thick, fragmented when sick.
    d_pl0 = wall / pat.depth_cm
    d_flat = d_pl0 + zone.tilt * (u - 0.5)                                  # [S]
    d_pl = d_flat[None, :] + 0.012 * b * profile(zone.rough, lat_t)          # [T, S]
    below = np.clip((d[None, :, None] - d_pl[:, None, :]) / (1.5 * px) + 0.5, 0, 1)   # [T, S, S]

    # Textures: separable tent resampling of the base speckle fields.
    hw, ww = wall_spk.shape
    rows_w = tent_weights(d * hw - 0.5, hw, max(1.0, hw * px))
    cols_w = tent_weights(lat / _SPAN * ww - 0.5, ww, max(1.0, ww / _SPAN * px / pat.footprint))
    tissue = rows_w @ wall_spk @ cols_w.T                                   # [S, S], static
    hl, wl = lung_spk.shape
    rows_l = tent_weights(d * hl - 0.5, hl, max(1.0, hl * px))
    cols_l = tent_weights(lat_t / _SPAN * wl - 0.5, wl, max(1.0, wl / _SPAN * px / pat.footprint))
    # One GEMM for all frames (a batched matmul stalls on BLAS thread start-up per frame).
    haze = ((rows_l @ lung_spk) @ cols_l.reshape(T * S, wl).T).reshape(S, T, S).transpose(1, 0, 2)  # slides

    # Chest wall: fascia bands at fixed fractions of the wall thickness, darker fat under the skin.
    rel = d / d_pl0
    wall_profile = 0.3 + 0.15 * np.exp(-d / 0.02)
    wall_profile = wall_profile * np.where(rel < 0.25, 0.6, 1.0)
    for depth_frac, bright in zone.fascia:
        wall_profile = wall_profile + 0.4 * bright * _line(rel, depth_frac, 0.03, px / d_pl0)
    above = (wall_profile[:, None] * tissue).astype(f32)

    gaps = np.clip(profile(zone.gaps, lat_t), 0.0, 2.0) / 2.0
    pleura = (2.0 * pat.pleura_gain * (1.0 - 0.9 * b * gaps))[:, None, :] \
        * _line(d[None, :, None], d_pl[:, None, :], 0.004 + 0.008 * b, px)

    # A-lines at multiples of the pleural depth; weaker with severity and under B-lines.
    a_lines = np.zeros((S, S), f32)
    for k in range(2, int(1.0 / d_pl0) + 1):
        a_lines += 0.75 ** (k - 2) * _line(d[:, None], k * d_flat[None, :], 0.006, px)
    a_lines *= pat.a_line * (1.0 - b) ** 1.5

    # B-lines: sites of this lung zone switch on as severity passes their threshold.
    pos, thr, wid, bright = zone.sites.T
    on = (thr + flicker < 0.08 + 0.92 * b) & (pos > lat[0] - 0.2) & (pos < lat[-1] + 0.2)
    b_lat = np.zeros((T, S), f32)
    for c, w, g in zip(pos[on], wid[on], bright[on]):
        sway = 0.004 * np.sin(2 * np.pi * (t * 1.7 + c))
        width = (0.008 + 0.02 * b) * w
        b_lat += (0.5 + 1.0 * b) * g * _line(lat_t, c + sway[:, None], width, px / pat.footprint)
    fade = np.exp(-0.4 * np.clip(d[None, :, None] - d_pl[:, None, :], 0, None))
    b_lines = b_lat[:, None, :] * fade
    lung = below * (haze * (0.04 + 0.35 * b * b + a_lines * (1.0 - np.clip(b_lat, 0, 1))[:, None, :])
                    + b_lines * (0.6 + 0.4 * haze))

    amp = (1.0 - below) * above + pleura + lung

    # Ribs: bright curved surface just above the pleura, near-total acoustic shadow below it.
    dist = np.abs((lat - zone.rib_phase + pat.rib_spacing / 2) % pat.rib_spacing - pat.rib_spacing / 2)
    rib = np.clip((pat.rib_width / 2 - dist) / (2 * px / pat.footprint) + 0.5, 0, 1)
    arc = np.sqrt(np.clip(1.0 - (2.0 * dist / pat.rib_width) ** 2, 0, 1))
    d_rib = d_flat - (0.35 / pat.depth_cm) * (0.5 + 0.5 * arc)
    shadow = rib[None, :] * np.clip((d[:, None] - d_rib[None, :]) / (1.5 * px) + 0.5, 0, 1)
    amp = amp * (1.0 - 0.99 * shadow) + 1.8 * rib[None, :] * _line(d[:, None], d_rib[None, :], 0.006, px)

    amp = amp * np.exp(-pat.atten * np.clip(d, 0, None))[:, None]
    amp = amp + 0.015 * rng.random((T, S, S), dtype=f32)                     # electronic noise floor

    # Log compression with the patient's gain, dynamic range and gamma; black outside the image.
    db = 20.0 * np.log10(amp + 1e-4)
    img = np.clip((db + pat.range_db - 6.0 + gain) / pat.range_db, 0, 1) ** pat.gamma
    img = img * (cover_y[:, None] * cover_x[None, :])
    return np.rint(img * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------- the source

_KNOBS = {"n_patients": int, "n_clips": int, "seed": int, "signal": float, "nuisance": float,
          "label_noise": float, "shortcut": float, "test_patients": int}


def further_patients(cfg: LUSConfig, n: int, cohort: int) -> LUSConfig:
    """``n`` further patients of the same generator and knobs, with the cohort's clips per patient."""
    return replace(cfg, n_patients=n, n_clips=max(2 * n, round(cfg.n_clips * n / cfg.n_patients)), cohort=cohort)


def latent_cohort(cfg: LUSConfig, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The dataset's ``latent_cohort`` hook: scan table and rendered severity of ``n`` oracle-cohort
    patients, without pixels."""
    oracle_cfg = further_patients(cfg, n, ORACLE)
    table, latent = build_table(oracle_cfg)
    renderer = LUSRenderer(oracle_cfg, latent)
    return table, np.array([renderer.severity(s) for s in table["scan_id"]], dtype=np.float32)


GENERATOR = Generator("synthetic-lus", "lus", "S/F", SF_RULE, build_table, LUSRenderer, latent_cohort,
                      further_patients)


def make_synthetic_lus(n_patients: int = PAPER_PATIENTS, n_clips: int | None = None, seed: int = 0,
                       signal: float = 1.0, nuisance: float = 1.0, label_noise: float = LABEL_NOISE,
                       shortcut: float = 0.0, test_patients: int = TEST_PATIENTS, *,
                       on_bad_input: str = "fail") -> LongitudinalDataset:
    """The training cohort (``n_clips`` defaults to the paper's clips-per-patient ratio) with a
    held-out cohort of ``test_patients`` further patients (none at 0) and the oracle's cohort hook."""
    if n_clips is None:
        n_clips = max(2 * n_patients, int(round(PAPER_CLIPS * n_patients / PAPER_PATIENTS)))
    cfg = LUSConfig(n_patients=int(n_patients), n_clips=int(n_clips), seed=int(seed), signal=float(signal),
                    nuisance=float(nuisance), label_noise=float(label_noise), shortcut=float(shortcut))
    return GENERATOR.dataset(cfg, test_patients, on_bad_input)


@register_source("synthetic-lus")
def synthetic_lus(arg: str | None = None, *, on_bad_input: str = "fail", **defaults) -> LongitudinalDataset:
    return make_synthetic_lus(**parse_knobs(arg, defaults, _KNOBS, "synthetic-lus", KNOB_RANGES),
                              on_bad_input=on_bad_input)
