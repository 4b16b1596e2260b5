"""The throughput benchmark and the time-to-table estimate, CPU-sized."""
import pandas as pd
import pytest

from bench.benchmark import train_flops_per_clip
from bench.cli import main, time_to_table_command
from bench.presets import get_preset


def test_flops_counted_on_meta_device_match_resnet18():
    # ResNet-18 forward at 224 px is 1.82 GMACs per frame; training ~ 3x forward; 16 frames.
    expected = 3 * 16 * 2 * 1.82e9
    assert train_flops_per_clip("tsm_r18", get_preset("paper")) == pytest.approx(expected, rel=0.05)
    assert train_flops_per_clip("vit", get_preset("paper")) > 5 * expected  # ViT-B/16 is ~4.8x ResNet-18


def test_bench_writes_csv_with_both_modes(tmp_path, capsys):
    argv = ["--preset", "smoke", "--backbones", "tsm_r18,videomae", "--steps", "2", "--warmup", "1",
            "--out", str(tmp_path)]
    assert main(["bench", *argv]) == 0
    (csv,) = tmp_path.glob("*.csv")
    df = pd.read_csv(csv)
    assert sorted(zip(df["backbone"], df["mode"])) == [("tsm_r18", "fast"), ("tsm_r18", "naive"),
                                                        ("videomae", "fast"), ("videomae", "naive")]
    assert (df["clips_per_s"] > 0).all() and (df["gflops_per_clip"] > 0).all()
    assert (df["achieved_tflops"] > 0).all() and df["mfu"].isna().all()  # a CPU has no listed peak
    fast = df[df["mode"] == "fast"].set_index("backbone")
    naive = df[df["mode"] == "naive"].set_index("backbone")
    ratio = fast["clips_per_s"] / naive["clips_per_s"]
    pd.testing.assert_series_equal(fast["fast_over_naive"], ratio, check_names=False, rtol=1e-3)


def test_time_to_table_estimate_from_flops(capsys):
    assert time_to_table_command(["--assume-mfu", "0.35", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "estimated total:" in out and "35% MFU of 989 TFLOP/s" in out


def test_time_to_table_passes_its_flags_on(monkeypatch, tmp_path):
    """--cache-dir and --workers reach the throughput measurement; --measure runs the grid on --device."""
    import bench.benchmark
    import bench.cli
    seen = {}

    def fake_benchmark(names, cfg, device):
        seen["cfg"] = cfg
        return pd.DataFrame({"backbone": names, "mode": "fast", "step_ms": 10.0, "device": "cpu"})
    monkeypatch.setattr(bench.benchmark, "run_benchmark", fake_benchmark)
    monkeypatch.setattr(bench.cli, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    cache = tmp_path / "clips"
    assert time_to_table_command(["--grid", "table3", "--preset", "smoke", "--seeds", "1", "--out", str(tmp_path),
                                  "--cache-dir", str(cache), "--workers", "1", "--device", "cpu", "--measure"]) == 0
    assert seen["cfg"].cache_dir == cache and seen["cfg"].workers == 1
    argv = seen["argv"]
    assert argv[argv.index("--device") + 1] == "cpu" and argv[argv.index("--cache-dir") + 1] == str(cache)


def test_cuda_device_is_named_and_gets_its_peak(monkeypatch):
    """The GPU branch of the naming helpers, which a CPU-only run never takes otherwise."""
    import torch

    from bench.benchmark import device_peak, device_slug
    from bench.runner import device_name
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    gpu = torch.device("cuda", 0)
    assert device_name(gpu) == "NVIDIA H100 80GB HBM3"
    assert device_slug(gpu) == "nvidia-h100-80gb-hbm3"
    assert device_peak(gpu) == (989.0, 67.0)


def test_benchmark_steps_with_the_runners_train_step_and_batcher(monkeypatch, tmp_path):
    """The benchmark times exactly the runner's step: ``bench.train.train_step`` (which
    ``pretrain`` calls) on the runner's ``ClipBatcher``, not a copy of either."""
    import numpy as np
    import torch

    import backbones
    from bench import train
    from bench.benchmark import BenchConfig, _RenderEveryTime, measure
    from bench.losses import LossSpec
    from bench.data import load_dataset
    real, calls = train.train_step, []

    def spy(model, opt, loss, batcher, idx, y, groups, gen, amp):
        calls.append((type(batcher), amp))
        return real(model, opt, loss, batcher, idx, y, groups, gen, amp)
    monkeypatch.setattr(train, "train_step", spy)
    preset = get_preset("smoke").with_overrides(epochs=1)
    # The runner's pretraining steps through the same (patched) function ...
    torch.manual_seed(0)
    model = train.Regressor(backbones.create("tsm_r18", num_frames=preset.frames, img_size=preset.img_size,
                                             variant=preset.variant), preset.head_hidden)
    clips = torch.randint(0, 255, (12, preset.cache_frames, preset.img_size, preset.img_size), dtype=torch.uint8)
    train.pretrain(model, train.ClipBatcher(clips, preset.frames), torch.randn(12), torch.zeros(12, dtype=torch.long),
                   np.arange(8), np.arange(8, 12), preset, LossSpec("cl"), seed=0)
    assert calls == [(train.ClipBatcher, True)]
    calls.clear()
    # ... and so does the benchmark, on the fast path with the runner's batcher.
    cfg = BenchConfig(preset, steps=2, warmup=1, cache_dir=tmp_path)
    measure("tsm_r18", cfg, torch.device("cpu"), "fast", flops=1.0)
    assert calls == [(train.ClipBatcher, True)] * 3  # warm-up + timed steps; amp (bf16 on CUDA) as the runner
    calls.clear()
    measure("tsm_r18", cfg, torch.device("cpu"), "naive", flops=1.0)
    assert len(calls) == 3 and not any(amp for _, amp in calls)
    # The naive loader normalises with the runner's batcher (centred frames), not a copy.
    ds = load_dataset("synthetic-lus", **preset.data_defaults)
    x, _ = _RenderEveryTime(ds, preset)[5]
    clip = torch.from_numpy(ds.load_clip(ds.scans.iloc[5], preset.cache_frames, preset.img_size))
    want = train.ClipBatcher(clip[None], preset.frames)(torch.zeros(1, dtype=torch.long))[0]
    assert torch.equal(x, want)


GiB = 2**30


@pytest.mark.parametrize("cell_gib, free_gib, kw, jobs", [
    (10, 80, {}, 4),                     # 5 would fit (78 / 13.5): capped at 4
    (10, 80, {"cap": 8}, 5),
    (30, 80, {}, 2),                     # 78 / 38.5
    (70, 80, {}, 1),                     # does not fit twice; one cell always runs
    (1, 1, {}, 1),                       # less free than the reserve
    (20, 80, {"margin": 0, "process_bytes": 0, "reserve_bytes": 0, "cap": 9}, 4),  # exactly 4
])
def test_auto_jobs_per_gpu_rule(cell_gib, free_gib, kw, jobs):
    from bench.packing import auto_jobs_per_gpu
    assert auto_jobs_per_gpu(cell_gib * GiB, free_gib * GiB, **kw) == jobs


@pytest.mark.parametrize("args, kw", [((0, 80 * GiB), {}), ((GiB, -1), {}), ((GiB, 80 * GiB), {"cap": 0}),
                                      ((GiB, 80 * GiB), {"margin": -0.1})])
def test_auto_jobs_per_gpu_rejects_nonsense(args, kw):
    from bench.packing import auto_jobs_per_gpu
    with pytest.raises(ValueError):
        auto_jobs_per_gpu(*args, **kw)


def test_measured_cell_peak_holds_the_presets_clips():
    import torch

    from bench.benchmark import measure_cell_peak_bytes
    preset = get_preset("smoke")
    assert measure_cell_peak_bytes("tsm_r18", preset, torch.device("cpu")) > 0


def test_a_cells_sizes_count_the_heldout_clips_it_embeds():
    """Time-to-table charges a cell for embedding its held-out evaluation cohort, and each
    epoch for validating the validation split only."""
    from bench.benchmark import lus_cell_sizes
    from bench.data.sources import load_dataset
    from bench.data.splits import evaluation_scans
    from bench.presets import get_preset
    preset = get_preset("smoke")
    n_train, n_val, n_embed = lus_cell_sizes(preset)
    ds = load_dataset("synthetic-lus", **preset.data_defaults)
    assert ds.heldout is not None and n_embed == len(evaluation_scans(ds)) == len(ds) + len(ds.heldout)
    assert n_train + n_val < len(ds)  # the cohort's own test share is neither trained nor validated
    unheld = lus_cell_sizes(get_preset("smoke").with_overrides(data_defaults={**preset.data_defaults, "test_patients": 0}))
    assert unheld[2] == len(ds) and unheld[:2] == (n_train, n_val)
