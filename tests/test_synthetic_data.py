"""The synthetic sources keep the properties the benchmark relies on (see their module docstrings)."""
from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd
import pytest

from bench.data.describe import describe, format_description, icc1
from bench.data.pairs import MMSE_RULE, SF_RULE, label_counts, make_pairs
from bench.data.sources import load_dataset
from bench.data.synthetic_lus import make_synthetic_lus
from bench.data.synthetic_lus import render as render_lus


def _clips(ds, rows, frames, size):
    return [ds.load_clip(ds.scans.iloc[i], frames, size) for i in rows]


# ----------------------------------------------------------------------------- LUS

def test_lus_paper_sizes_without_rendering():
    start = time.perf_counter()
    ds = load_dataset("synthetic-lus")
    assert time.perf_counter() - start < 2.0
    s = ds.scans
    assert (ds.n_patients, len(ds)) == (189, 718)
    assert s.groupby("patient_id")["visit"].nunique().min() >= 2
    assert list(s.columns) == ["patient_id", "visit", "scan_id", "score", "source", "zone"]
    assert s.index.equals(pd.RangeIndex(len(s))) and s["scan_id"].is_unique
    assert set(s["zone"]) == {"L", "R"}
    assert s["score"].between(90, 480).all()
    # A visit's zones share its S/F.
    assert (s.groupby(["patient_id", "visit"])["score"].nunique() == 1).all()
    assert ds.kind == "lus" and ds.score_name == "S/F" and ds.skipped == []


def test_lus_label_balance_at_paper_size():
    counts = label_counts(make_pairs(load_dataset("synthetic-lus").scans, SF_RULE))
    total = sum(counts.values())
    assert all(c / total >= 0.15 for c in counts.values()), counts


@pytest.mark.parametrize("n_patients,n_clips", [(10, 20), (10, 21), (10, 37), (7, 40), (50, None)])
def test_lus_clip_count_is_exact(n_patients, n_clips):
    ds = make_synthetic_lus(n_patients=n_patients, n_clips=n_clips)
    expected = n_clips if n_clips is not None else round(718 * n_patients / 189)
    assert len(ds) == expected and ds.n_patients == n_patients
    assert ds.scans.groupby("patient_id")["visit"].nunique().min() >= 2


def test_lus_too_few_clips_is_an_error():
    with pytest.raises(ValueError, match="two visits"):
        make_synthetic_lus(n_patients=10, n_clips=19)


def test_lus_spec_and_preset_defaults():
    ds = load_dataset("synthetic-lus:seed=3", n_patients=20, some_other_hint=1)
    assert ds.n_patients == 20 and len(ds) == round(718 * 20 / 189)
    assert load_dataset("synthetic-lus:n_patients=12", n_patients=20).n_patients == 12
    with pytest.raises(ValueError, match="unknown option 'n_patient'"):
        load_dataset("synthetic-lus:n_patient=12")
    keys = {load_dataset(f"synthetic-lus:n_patients=12,{kv}").cache_key
            for kv in ("seed=0", "seed=1", "signal=0.5", "nuisance=0.5", "n_clips=30")}
    assert len(keys) == 5 and all(k.startswith("synthetic-lus-v1-") for k in keys)
    assert load_dataset("synthetic-lus:n_patients=12").cache_key == load_dataset("synthetic-lus:n_patients=12").cache_key


def test_lus_deterministic_regardless_of_call_order():
    a, b = make_synthetic_lus(n_patients=6), make_synthetic_lus(n_patients=6)
    pd.testing.assert_frame_equal(a.scans, b.scans)
    forward = _clips(a, [0, 3, 7], 4, 32)
    backward = _clips(b, [7, 3, 0], 4, 32)[::-1]
    assert all(np.array_equal(x, y) for x, y in zip(forward, backward))
    copied = pickle.loads(pickle.dumps(a.load_clip))       # process-pool workers get a copy
    assert np.array_equal(copied(a.scans.iloc[0], 4, 32), forward[0])
    other = make_synthetic_lus(n_patients=6, seed=1)
    assert not other.scans["score"].equals(a.scans["score"])
    assert not np.array_equal(_clips(other, [0], 4, 32)[0], forward[0])


@pytest.mark.parametrize("frames,size", [(4, 32), (3, 17), (16, 64)])
def test_lus_clip_dtype_and_shape(frames, size):
    ds = make_synthetic_lus(n_patients=3)
    clip = ds.load_clip(ds.scans.iloc[1], frames, size)
    assert clip.dtype == np.uint8 and clip.shape == (frames, size, size)
    assert 20 < clip.mean() < 235 and clip.std() > 10
    assert np.abs(np.diff(clip.astype(int), axis=0)).mean() > 0.5   # lung sliding moves the texture


def test_lus_renders_consistently_across_sizes():
    """A small render is close to a downsampled large one: the cache may key on (frames, size)."""
    ds = make_synthetic_lus(n_patients=3)
    big = ds.load_clip(ds.scans.iloc[0], 4, 128).astype(float)
    small = ds.load_clip(ds.scans.iloc[0], 4, 32).astype(float)
    pooled = big.reshape(4, 32, 4, 32, 4).mean((2, 4))
    assert np.corrcoef(pooled.ravel(), small.ravel())[0, 1] > 0.9


def test_lus_severity_brightens_the_lung():
    """Same patient, zone and clip jitter: more B-lines below the pleura when sicker."""
    cfg = make_synthetic_lus(n_patients=8).load_clip.cfg
    for p in range(8):
        healthy, sick = (render_lus(cfg, p, 1, 0, b, 4, 64).astype(float) for b in (0.1, 0.8))
        assert sick[:, 40:].mean() > healthy[:, 40:].mean() + 5


def test_lus_describe_nuisance_dominates_and_score_is_recoverable():
    d = describe(make_synthetic_lus(n_patients=30), frames=4, size=32)
    assert d["icc"]["mean_intensity"] > 0.5
    assert d["biomarker"]["spearman_pooled"] < -0.3
    assert d["biomarker"]["spearman_within"] < -0.3
    text = format_description(d)
    assert "30 patients" in text and "ICC(1)" in text and "Spearman" in text


def test_lus_null_signal_renders_no_score():
    ds = make_synthetic_lus(n_patients=10, signal=0.0)
    sev = ds.scans["scan_id"].map(ds.load_clip.severity)
    assert (sev.groupby(ds.scans["patient_id"]).nunique() == 1).all()


def test_lus_nuisance_knob_sets_patient_dominance():
    icc = {k: describe(make_synthetic_lus(n_patients=30, nuisance=k), frames=4, size=32)["icc"]["mean_intensity"]
           for k in (0.0, 1.0)}
    assert icc[0.0] < icc[1.0] - 0.1


def test_icc1_hand_case():
    # Two groups, no within-group variance -> 1; identical group means -> <= 0.
    assert icc1(np.array([1.0, 1.0, 3.0, 3.0]), np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert icc1(np.array([1.0, 3.0, 1.0, 3.0]), np.array([0, 0, 1, 1])) <= 0.0


# ----------------------------------------------------------------------------- MRI

@pytest.fixture(scope="module")
def mri_small():
    return load_dataset("synthetic-mri:n_patients=24")


def test_mri_table():
    start = time.perf_counter()
    ds = load_dataset("synthetic-mri")
    assert time.perf_counter() - start < 2.0
    s = ds.scans
    visits = s.groupby("patient_id")["visit"].nunique()
    assert ds.n_patients == 150 and visits.min() >= 2 and visits.max() <= 5
    assert s["score"].between(0, 30).all() and (s["score"] == s["score"].round()).all()
    assert list(s.columns) == ["patient_id", "visit", "scan_id", "score", "source"]
    assert ds.kind == "mri" and ds.score_name == "MMSE"
    counts = label_counts(make_pairs(s, MMSE_RULE))
    assert counts["deteriorated"] > counts["improved"] > 0 and counts["same"] > 0


def test_mri_template_is_nilearns():
    from nilearn import datasets

    from bench.data.synthetic_mri import _atlas

    ref = np.asarray(datasets.load_mni152_template(resolution=1).dataobj).transpose(2, 1, 0)
    assert np.array_equal(_atlas().t1, ref)


def test_mri_deterministic_and_shapes(mri_small):
    again = load_dataset("synthetic-mri:n_patients=24")
    pd.testing.assert_frame_equal(mri_small.scans, again.scans)
    forward = _clips(mri_small, [0, 5], 4, 32)
    backward = _clips(again, [5, 0], 4, 32)[::-1]
    assert all(np.array_equal(x, y) for x, y in zip(forward, backward))
    for frames, size in [(4, 32), (3, 24), (16, 64)]:
        clip = mri_small.load_clip(mri_small.scans.iloc[2], frames, size)
        assert clip.dtype == np.uint8 and clip.shape == (frames, size, size)
        assert (clip[:, 0, :] < 40).all()            # background at the FOV edge
        assert (clip.reshape(frames, -1).max(1) > 100).all()   # every slice shows brain
    other = load_dataset("synthetic-mri:n_patients=24,seed=1")
    assert not np.array_equal(_clips(other, [0], 4, 32)[0], forward[0])


def test_mri_atrophy_darkens_the_centre():
    """Same subject and visit: larger ventricles / thinner grey matter at higher atrophy."""
    from bench.data.synthetic_mri import render

    cfg = load_dataset("synthetic-mri:n_patients=6").load_clip.cfg
    for p in range(6):
        mild, severe = (render(cfg, p, 1, a, 6, 48)[2:4].astype(float) for a in (0.2, 1.5))
        centre = (slice(None), slice(16, 32), slice(16, 32))
        assert severe[centre].mean() < mild[centre].mean() - 2


def test_mri_describe(mri_small):
    d = describe(mri_small, frames=6, size=32)
    assert d["icc"]["mean_intensity"] > 0.5
    assert d["biomarker"]["spearman_pooled"] < 0
