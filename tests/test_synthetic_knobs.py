"""The generators' ``label_noise`` and ``shortcut`` knobs and the oracle hook (``latent_severity``)."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from scipy.stats import spearmanr

from bench.data.describe import describe, format_description
from bench.references import oracle_figures as oracle
from bench.data.sources import load_dataset
from bench.data.synthetic_lus import render as render_lus
from bench.data.synthetic_mri import render as render_mri

DEFAULTS = {"synthetic-lus": "label_noise=0.1,shortcut=0", "synthetic-mri": "label_noise=1.0,shortcut=0"}
# The cache keys of the default data before the knobs existed: a default run keeps its caches.
PRE_KNOB_KEYS = {"synthetic-lus": "synthetic-lus-v1-4ff84799b7", "synthetic-mri": "synthetic-mri-v1-bce296379b"}


def _same_clips(a, b, rows, frames=4, size=32) -> bool:
    return all(np.array_equal(a.load_clip(a.scans.iloc[i], frames, size), b.load_clip(b.scans.iloc[i], frames, size))
               for i in rows)


@pytest.mark.parametrize("source", ["synthetic-lus", "synthetic-mri"])
def test_defaults_equal_the_explicit_knob_spec(source):
    implicit = load_dataset(f"{source}:n_patients=8")
    explicit = load_dataset(f"{source}:n_patients=8,{DEFAULTS[source]}")
    assert implicit.cache_key == explicit.cache_key
    assert implicit.scans.equals(explicit.scans)
    assert _same_clips(implicit, explicit, [0, 5, len(implicit) - 1])
    assert load_dataset(source).cache_key == PRE_KNOB_KEYS[source]


@pytest.mark.parametrize("source", ["synthetic-lus", "synthetic-mri"])
def test_knobs_are_in_the_cache_key(source):
    keys = {load_dataset(f"{source}:n_patients=8{kv}").cache_key
            for kv in ("", ",shortcut=0.5", ",shortcut=1", ",label_noise=0", ",label_noise=0.3")}
    assert len(keys) == 5


@pytest.mark.parametrize("spec,message", [
    ("synthetic-lus:shortcut=1.5", r"synthetic-lus: shortcut must be a number in \[0, 1\], got 1.5"),
    ("synthetic-lus:shortcut=-0.1", r"shortcut must be a number in \[0, 1\]"),
    ("synthetic-lus:shortcut=abc", r"shortcut='abc' is not a valid float; valid: a number in \[0, 1\]"),
    ("synthetic-lus:label_noise=-1", r"synthetic-lus: label_noise must be a finite number >= 0, got -1.0"),
    ("synthetic-lus:label_noise=nan", r"label_noise must be a finite number >= 0, got nan"),
    ("synthetic-mri:shortcut=inf", r"synthetic-mri: shortcut must be a number in \[0, 1\], got inf"),
    ("synthetic-mri:label_noise=x", r"label_noise='x' is not a valid float; valid: a finite number >= 0"),
])
def test_bad_knob_values_are_one_clear_error(spec, message):
    with pytest.raises(ValueError, match=message) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)


def test_lus_knobs_change_only_what_they_define():
    base = load_dataset("synthetic-lus:n_patients=10")
    sev = base.scans.apply(base.latent_severity, axis=1)
    quiet = load_dataset("synthetic-lus:n_patients=10,label_noise=0")
    assert quiet.scans.equals(base.scans)                                   # S/F untouched
    assert not np.allclose(quiet.scans.apply(quiet.latent_severity, axis=1), sev)
    coupled = load_dataset("synthetic-lus:n_patients=10,shortcut=1")
    assert coupled.scans.equals(base.scans)
    assert np.array_equal(coupled.scans.apply(coupled.latent_severity, axis=1), sev)   # same biomarker
    assert not _same_clips(coupled, base, [0])                              # other appearance


def test_mri_label_noise_changes_scores_not_images():
    base, quiet = load_dataset("synthetic-mri:n_patients=10"), load_dataset("synthetic-mri:n_patients=10,label_noise=0")
    assert not quiet.scans["score"].equals(base.scans["score"])
    assert quiet.scans.drop(columns="score").equals(base.scans.drop(columns="score"))
    assert _same_clips(quiet, base, [0, 7])


@pytest.mark.parametrize("source,field", [("synthetic-lus", "gain_db"), ("synthetic-lus", "range_db"),
                                          ("synthetic-mri", "scale")])
def test_full_shortcut_makes_the_factor_monotone_in_the_mean_score(source, field):
    """The image-model definition: at shortcut=1 the patient factor is a function of the mean score."""
    from importlib import import_module

    def factor_vs_mean_score(shortcut):
        ds = load_dataset(f"{source}:n_patients=40,shortcut={shortcut}")
        mod, cfg = import_module(type(ds.load_clip).__module__), ds.load_clip.cfg
        factor = [np.mean(getattr(mod._patient(cfg, p), field)) for p in range(40)]
        mean = ds.scans.groupby(["patient_id", "visit"])["score"].mean().groupby(level=0).mean()
        return abs(spearmanr(factor, mean.to_numpy()).statistic)

    assert factor_vs_mean_score(1) == pytest.approx(1.0)
    assert factor_vs_mean_score(0) < 0.5


@pytest.mark.parametrize("source,frames", [("synthetic-lus:n_patients=40", 2), ("synthetic-mri:n_patients=30", 3)])
def test_shortcut_shows_across_patients_not_within(source, frames):
    """Measured from pixels by ``describe``: the appearance statistic follows the mean score only at shortcut=1."""
    d = {s: describe(load_dataset(f"{source},shortcut={s}"), frames=frames, size=24)["shortcut"] for s in (0, 1)}
    assert abs(d[1]["spearman_across"]) >= 0.8, d
    assert abs(d[0]["spearman_across"]) < 0.5, d
    assert abs(d[1]["spearman_within"]) < 0.3, d                            # says nothing about change


def test_label_noise_sets_how_often_the_oracle_agrees():
    """At label_noise=0 the oracle's pair labels agree with the S/F-derived ones far more often."""
    acc, rho = {}, {}
    for noise in (0.0, 0.1):
        runs = [oracle(load_dataset(f"synthetic-lus:n_patients=200,seed={seed},label_noise={noise}"))
                for seed in (0, 1)]
        acc[noise] = np.mean([o["accuracy"] for o in runs])
        rho[noise] = np.mean([o["spearman_within"] for o in runs])
    assert acc[0.0] >= acc[0.1] + 8, acc
    assert rho[0.0] < -0.97 and rho[0.1] > -0.9, rho
    mri = {n: oracle(load_dataset(f"synthetic-mri:label_noise={n}"))["accuracy"] for n in (0.0, 1.0)}
    assert mri[0.0] >= 95 and mri[1.0] < 80, mri


def test_oracle_hook_returns_the_rendered_severity():
    lus = load_dataset("synthetic-lus:n_patients=6,shortcut=0.5")
    for i in (0, 4, len(lus) - 1):
        row = lus.scans.iloc[i]
        p, v, z, _ = lus.load_clip.latent[row["scan_id"]]
        sev = lus.latent_severity(row)
        clip = lus.load_clip(row, 4, 32)
        assert np.array_equal(render_lus(lus.load_clip.cfg, p, v, z, sev, 4, 32), clip)
        assert not np.array_equal(render_lus(lus.load_clip.cfg, p, v, z, min(1.0, sev + 0.1) if sev < 0.9
                                             else sev - 0.1, 4, 32), clip)
    assert pickle.loads(pickle.dumps(lus.latent_severity))(row) == sev      # process-pool workers get a copy
    mri = load_dataset("synthetic-mri:n_patients=4")
    for i in (0, len(mri) - 1):
        row = mri.scans.iloc[i]
        p, v, _ = mri.load_clip.latent[row["scan_id"]]
        a = mri.latent_severity(row)
        clip = mri.load_clip(row, 4, 24)
        assert np.array_equal(render_mri(mri.load_clip.cfg, p, v, a, 4, 24), clip)
        assert not np.array_equal(render_mri(mri.load_clip.cfg, p, v, a + 0.5, 4, 24), clip)


def test_describe_reports_the_knobs_and_no_oracle_for_real_data():
    ds = load_dataset("synthetic-lus:n_patients=12")
    text = format_description({**describe(ds, frames=2, size=16), "oracle": oracle(ds)})
    assert "shortcut statistic: near-field brightness" in text and "oracle (classifier" in text
    real = dataclasses.replace(ds, latent_severity=None)
    assert oracle(real) is None
    assert "oracle: none" in format_description({**describe(real, frames=2, size=16), "oracle": None})
    assert "oracle" not in format_description(describe(ds, frames=2, size=16))  # not computed: not printed
