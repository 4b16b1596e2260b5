"""Built-in encoders: interface, gradients, paper sizes, local weights, the TSM shift."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from safetensors.torch import save_file

from backbones import backbone_info, create, list_backbones, registry
from bench.plugins import Entry
from backbones.listing import backbone_rows, model_size
from backbones.timm_frame import swin_window_size
from backbones.tsm import temporal_shift
from backbones.weights import WeightsError

PAPER_BACKBONES = ("tsm_r18", "resnet2d_r18", "swin", "vit", "timesformer", "videomae")
FRAMES, SIZE = 4, 32  # VideoMAE needs an even frame count


def clips(batch: int = 2, frames: int = FRAMES, size: int = SIZE) -> torch.Tensor:
    return torch.randn(batch, frames, 3, size, size)


def tiny(name: str, num_frames: int = FRAMES, img_size: int = SIZE) -> torch.nn.Module:
    torch.manual_seed(0)
    return create(name, num_frames=num_frames, img_size=img_size, variant="tiny")


def test_paper_backbones_registered():
    assert set(PAPER_BACKBONES) <= set(list_backbones())
    labels = {backbone_info(name).paper_label for name in PAPER_BACKBONES}
    assert labels == {"TSM", "2D ResNet", "Swin", "ViT", "Timesformer", "Video MAE"}


@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_tiny_forward_backward(name):
    model = tiny(name)
    out = model(clips())
    assert out.shape == (2, model.embed_dim)
    out.square().mean().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname


@pytest.fixture(scope="module")
def rows():
    return {row["name"]: row for row in backbone_rows()}


# Without classifier heads, at 16 frames x 224 px (TimeSformer's time table grows by 768 per frame).
PAPER_PARAMS = {"tsm_r18": 11.18e6, "resnet2d_r18": 11.18e6, "swin": 27.52e6, "vit": 85.80e6,
                "timesformer": 121.26e6, "videomae": 86.23e6}
PAPER_DIMS = {"tsm_r18": 512, "resnet2d_r18": 16 * 512, "swin": 768, "vit": 768, "timesformer": 768,
              "videomae": 768}


@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_paper_sizes(rows, name):
    row = rows[name]
    assert (row["default_frames"], row["default_size"], row["source"]) == (16, 224, "built-in")
    assert row["params_paper"] == pytest.approx(PAPER_PARAMS[name], rel=0.05)
    assert row["embed_dim_paper"] == PAPER_DIMS[name]
    assert row["params_tiny"] < 1e6


def test_listing_builds_on_cpu_what_meta_cannot(monkeypatch):
    def factory(num_frames, img_size, pretrained=None, variant="paper"):
        model = torch.nn.Linear(3, 5)
        model.weight.sum().item()  # data-dependent: impossible on the meta device
        model.embed_dim = 5
        return model
    info = registry.BackboneInfo("needs_data", factory, "x", "plugin")
    monkeypatch.setitem(registry.BACKBONES._entries, "needs_data", Entry("needs_data", info, "plugin", "tests:needs_data"))
    assert model_size("needs_data") == (20, 5)


@pytest.mark.parametrize("size, window", [(224, 7), (112, 7), (96, 6), (64, 4), (32, 4)])
def test_swin_window_tiles_every_stage(size, window):
    assert swin_window_size(size) == window


def test_swin_builds_at_non_224_sizes():
    for size in (64, 112):
        model = tiny("swin", num_frames=2, img_size=size)
        assert model(clips(1, 2, size)).shape == (1, model.embed_dim)


def test_videomae_rejects_odd_frames():
    with pytest.raises(ValueError, match="multiple of 2"):
        tiny("videomae", num_frames=5)


@pytest.mark.parametrize("name", ["resnet2d_r18", "swin", "vit"])
def test_local_timm_checkpoint_loads(tmp_path, name):
    source = tiny(name)
    path = tmp_path / "weights.safetensors"
    state = {k: v.contiguous() for k, v in source.net.state_dict().items()}
    save_file({**state, "head.weight": torch.zeros(3, 1)}, str(path))  # a classifier head is ignored
    loaded = create(name, num_frames=FRAMES, img_size=SIZE, variant="tiny", pretrained=str(path))
    for key, value in loaded.net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_vit_checkpoint_of_another_size_is_resized(tmp_path):
    """timm's filter resamples the position embedding of a 64 px checkpoint for 32 px."""
    source = create("vit", num_frames=FRAMES, img_size=64, variant="tiny")
    path = tmp_path / "vit64.safetensors"
    save_file({k: v.contiguous() for k, v in source.net.state_dict().items()}, str(path))
    loaded = create("vit", num_frames=FRAMES, img_size=32, variant="tiny", pretrained=str(path))
    src, dst = source.net.state_dict(), loaded.net.state_dict()
    assert src["pos_embed"].shape != dst["pos_embed"].shape
    assert all(torch.equal(dst[k], src[k]) for k in dst if k != "pos_embed")


def test_mismatched_timm_checkpoint_names_keys(tmp_path):
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in tiny("vit").net.state_dict().items()}, str(path))
    with pytest.raises(WeightsError, match="missing keys: layers.0.*unexpected keys: blocks.0"):
        create("swin", num_frames=FRAMES, img_size=SIZE, variant="tiny", pretrained=str(path))


@pytest.mark.parametrize("name, for_classification", [("timesformer", "TimesformerForVideoClassification"),
                                                      ("videomae", "VideoMAEForVideoClassification")])
def test_save_pretrained_dir_loads(tmp_path, name, for_classification):
    """Both the bare model's and a video classifier's save_pretrained layouts load."""
    import transformers  # the test extra includes the video extra

    bare = tiny(name).model
    bare.save_pretrained(tmp_path / "bare")
    classifier = getattr(transformers, for_classification)(bare.config)
    classifier.save_pretrained(tmp_path / "classifier")
    for saved, directory in ((bare, "bare"), (getattr(classifier, name), "classifier")):
        loaded = create(name, num_frames=FRAMES, img_size=SIZE, pretrained=str(tmp_path / directory))
        assert loaded.embed_dim == bare.config.hidden_size
        expected = saved.state_dict()
        for key, value in loaded.model.state_dict().items():
            assert torch.equal(value, expected[key]), (directory, key)
        assert loaded(clips()).shape == (2, loaded.embed_dim)


@pytest.mark.parametrize("name", ["timesformer", "videomae"])
def test_pretrained_video_transformer_takes_other_geometry(tmp_path, name):
    """TimeSformer interpolates its learned tables; VideoMAE's positions are sinusoids."""
    tiny(name).model.save_pretrained(tmp_path)
    loaded = create(name, num_frames=2 * FRAMES, img_size=2 * SIZE, pretrained=str(tmp_path))
    assert loaded(clips(1, 2 * FRAMES, 2 * SIZE)).shape == (1, loaded.embed_dim)


def test_mismatched_hf_checkpoints(tmp_path):
    tiny("videomae").model.save_pretrained(tmp_path / "videomae")
    with pytest.raises(WeightsError, match="'videomae' checkpoint, not 'timesformer'"):
        create("timesformer", num_frames=FRAMES, img_size=SIZE, pretrained=str(tmp_path / "videomae"))
    other = tmp_path / "timesformer"
    tiny("timesformer").model.save_pretrained(other)
    (other / "config.json").unlink()  # no config: the variant's architecture, keys checked
    with pytest.raises(WeightsError, match="missing keys: .*query.*unexpected keys: .*cls_token"):
        create("videomae", num_frames=FRAMES, img_size=SIZE, variant="tiny", pretrained=str(other))
    with pytest.raises(WeightsError, match="save_pretrained directory"):
        create("videomae", num_frames=FRAMES, img_size=SIZE, pretrained=str(other / "model.safetensors"))


def test_temporal_shift_moves_one_eighth_each_way():
    b, t, c = 2, 5, 16
    x = torch.arange(1, b * t * c * 4 + 1, dtype=torch.float32).view(b * t, c, 2, 2)
    out = temporal_shift(x, t).view(b, t, c, 2, 2)
    x = x.view(b, t, c, 2, 2)
    fold = c // 8
    assert torch.equal(out[:, :-1, :fold], x[:, 1:, :fold])  # channels [0, C/8): from the next frame
    assert (out[:, -1, :fold] == 0).all()
    assert torch.equal(out[:, 1:, fold:2 * fold], x[:, :-1, fold:2 * fold])  # [C/8, 2C/8): from the previous
    assert (out[:, 0, fold:2 * fold] == 0).all()
    assert torch.equal(out[:, :, 2 * fold:], x[:, :, 2 * fold:])  # the other 3/4 stay put


def test_pytorchvideo_zoo_registers_only_when_installed():
    installed = importlib.util.find_spec("pytorchvideo") is not None
    zoo = {name for name in list_backbones() if backbone_info(name).source == "pytorchvideo"}
    assert zoo == ({"x3d_s", "slow_r50"} if installed else set())


@pytest.mark.parametrize("name", ["x3d_s", "slow_r50"])
def test_pytorchvideo_zoo_forward_backward(name):
    pytest.importorskip("pytorchvideo.models")
    model = tiny(name)
    out = model(clips())
    assert out.shape == (2, model.embed_dim)
    out.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_misspelt_variant_is_an_error():
    with pytest.raises(ValueError, match="unknown variant 'Tiny'; valid: paper, tiny"):
        create("tsm_r18", num_frames=4, img_size=32, variant="Tiny")
