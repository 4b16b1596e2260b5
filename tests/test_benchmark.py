"""The throughput benchmark and the time-to-table estimate, CPU-sized."""
import pandas as pd
import pytest

from bench.benchmark import train_flops_per_clip
from bench.cli import bench_command, time_to_table_command
from bench.presets import get_preset


def test_flops_counted_on_meta_device_match_resnet18():
    # ResNet-18 forward at 224 px is 1.82 GMACs per frame; training ~ 3x forward; 16 frames.
    expected = 3 * 16 * 2 * 1.82e9
    assert train_flops_per_clip("tsm_r18", get_preset("paper")) == pytest.approx(expected, rel=0.05)
    assert train_flops_per_clip("vit", get_preset("paper")) > 5 * expected  # ViT-B/16 is ~4.8x ResNet-18


def test_bench_writes_csv_with_both_modes(tmp_path, capsys):
    argv = ["--preset", "smoke", "--backbones", "tsm_r18,videomae", "--steps", "2", "--warmup", "1",
            "--out", str(tmp_path)]
    assert bench_command(argv) == 0
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
