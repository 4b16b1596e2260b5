"""Video transformers built from Hugging Face ``transformers`` configs: TimeSformer, VideoMAE.

``transformers`` (the ``video`` extra) is imported only when a model is built, so
registering these names costs nothing and the core works without it.

Embedding (``u``, what the contrastive loss and the downstream classifier see):

* TimeSformer: the last layer's CLS token (after its final LayerNorm), the token its own
  video-classification head reads, so a Kinetics checkpoint's features keep their meaning.
* VideoMAE: the mean of the last hidden states. VideoMAE has no CLS token, and its
  fine-tuning head mean-pools the tokens too.

``pretrained`` is a local ``save_pretrained`` directory of the bare model or of a
``*ForVideoClassification`` / ``VideoMAEForPreTraining`` model (heads and decoder are
dropped). It is read by ``from_pretrained`` because transformers' on-disk key names differ
from the modules' (VideoMAE's ``q_bias`` is saved as ``query.bias``), but loaded as strictly
as every other backbone: any missing, unexpected or mis-shaped key is a ``WeightsError``.
Its ``config.json`` decides the architecture (the variant only picks the config of a
randomly initialised model). Frames and size come from the arguments, except that a
pretrained TimeSformer keeps its checkpoint's learned position / time tables, which
transformers interpolates to the input on the fly (the paper feeds 16 frames, Kinetics
TimeSformers are 8-frame). VideoMAE's positions are fixed sinusoids, so its weights fit
any even frame count and size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from backbones.registry import register_backbone
from backbones.timm_frame import TINY_DEPTH, TINY_HEADS, TINY_WIDTH, tiny_patch_size
from backbones.weights import HEAD_PREFIXES, WeightsError, mismatch_error


@dataclass(frozen=True)
class _Family:
    model_type: str  # transformers' model_type, as in a checkpoint's config.json
    config_cls: str
    model_cls: str
    pool: str  # "cls" | "mean"
    resizes_embeddings: bool  # learned position tables that transformers resizes at run time
    not_encoder: tuple[str, ...] = ()  # checkpoint parts beyond the classifier heads, dropped


TIMESFORMER = _Family("timesformer", "TimesformerConfig", "TimesformerModel", "cls", True)
VIDEOMAE = _Family("videomae", "VideoMAEConfig", "VideoMAEModel", "mean", False,
                   ("fc_norm.", "decoder.", "encoder_to_decoder.", "mask_token"))


class HFVideoEncoder(nn.Module):
    """A transformers video model returning one pooled embedding per clip ``[B, T, C, H, W]``."""

    def __init__(self, model: nn.Module, pool: str):
        super().__init__()
        self.model, self.pool = model, pool
        self.embed_dim = int(model.config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=x).last_hidden_state
        return hidden[:, 0] if self.pool == "cls" else hidden.mean(1)


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ImportError("TimeSformer / VideoMAE need transformers: pip install 'learner-bench[video]'") from exc
    return transformers


def _saved_config(family: _Family, pretrained: str | None) -> dict | None:
    """``config.json`` of a ``save_pretrained`` directory, checked to be this family's."""
    path = Path(pretrained) / "config.json" if pretrained else None
    if path is None or not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved.get("model_type") != family.model_type:
        raise WeightsError(f"{pretrained}: a {saved.get('model_type')!r} checkpoint, not {family.model_type!r}")
    return saved


def build_hf_video(family: _Family, num_frames: int, img_size: int, pretrained: str | None,
                   variant: str) -> HFVideoEncoder:
    """Paper: the base config (ViT-B/16 sized); tiny: two blocks of width 96."""
    tf = _transformers()
    config_cls, model_cls = getattr(tf, family.config_cls), getattr(tf, family.model_cls)
    saved = _saved_config(family, pretrained)
    if saved is not None:
        config = config_cls.from_dict(saved)
    elif variant == "tiny":
        config = config_cls(hidden_size=TINY_WIDTH, num_hidden_layers=TINY_DEPTH, num_attention_heads=TINY_HEADS,
                            intermediate_size=4 * TINY_WIDTH, patch_size=tiny_patch_size(img_size))
    else:
        config = config_cls()
    if saved is None or not family.resizes_embeddings:
        config.num_frames, config.image_size = num_frames, img_size
    tubelet = getattr(config, "tubelet_size", 1)
    if num_frames % tubelet:
        raise ValueError(f"{family.model_type} embeds frames in tubelets of {tubelet}: num_frames must be a "
                         f"multiple of {tubelet}, got {num_frames}")
    model = _from_pretrained(family, model_cls, config, pretrained) if pretrained else model_cls(config)
    return HFVideoEncoder(model, family.pool)


def _from_pretrained(family: _Family, model_cls, config, path: str) -> nn.Module:
    """``from_pretrained`` (local files only; float32 whatever the saved dtype), then any key it
    could not place is an error."""
    if not Path(path).is_dir():
        raise WeightsError(f"{path}: {family.model_type} weights must be a save_pretrained directory")
    model, info = model_cls.from_pretrained(path, config=config, local_files_only=True,
                                            ignore_mismatched_sizes=True, output_loading_info=True)
    dropped = HEAD_PREFIXES + family.not_encoder
    problems = {"missing keys": info["missing_keys"],
                "unexpected keys": [key for key in info["unexpected_keys"] if not key.startswith(dropped)],
                "shape mismatch": [f"{key} {tuple(saved)} vs {tuple(own)}"
                                   for key, saved, own in info["mismatched_keys"]]}
    if any(problems.values()):
        raise mismatch_error(path, model_cls.__name__, problems)
    return model.float()


@register_backbone("timesformer", family="timesformer", paper_label="Timesformer")
def timesformer(num_frames: int, img_size: int, pretrained: str | None = None, variant: str = "paper",
                **kw) -> HFVideoEncoder:
    """Divided space-time attention (TimeSformer-Base: 121M parameters at 8 frames, 224 px)."""
    return build_hf_video(TIMESFORMER, num_frames, img_size, pretrained, variant)


@register_backbone("videomae", family="videomae", paper_label="Video MAE")
def videomae(num_frames: int, img_size: int, pretrained: str | None = None, variant: str = "paper",
             **kw) -> HFVideoEncoder:
    """ViT-B over 2x16x16 tubelets (86M parameters); frames must be even."""
    return build_hf_video(VIDEOMAE, num_frames, img_size, pretrained, variant)
