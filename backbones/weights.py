"""Loading local pretrained weights (no hub access at run time, ever).

Accepted: a ``.safetensors`` file, a torch checkpoint (``.pt``/``.pth``/``.bin``, a bare
state dict or one under ``state_dict`` / ``model``), or a directory holding one
``model.safetensors`` / ``pytorch_model.bin`` (transformers' ``save_pretrained`` layout).
A key mismatch is an error that lists the missing and unexpected keys: silently training
from a half-loaded model would corrupt a whole ablation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

# Classifier heads of ImageNet / Kinetics checkpoints; our encoders have none.
HEAD_PREFIXES = ("fc.", "head.", "classifier.", "head_drop.")
_DIR_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt", "model.pth")


class WeightsError(ValueError):
    pass


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.is_dir():
        found = [path / f for f in _DIR_FILES if (path / f).is_file()]
        if not found:
            raise WeightsError(f"{path}: no weights file in directory (looked for {', '.join(_DIR_FILES)})")
        path = found[0]
    if not path.is_file():
        raise WeightsError(f"{path}: pretrained weights file does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def mismatch_error(path: str | Path, target: str, problems: dict[str, list[str]]) -> WeightsError:
    """One message naming the first keys of each kind of problem (missing, unexpected, shape)."""
    def show(keys: list[str]) -> str:
        keys = sorted(keys)
        return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
    return WeightsError(f"{path}: weights do not fit {target}; " + "; ".join(
        f"{kind}: {show(keys)}" for kind, keys in problems.items() if keys))


def load_local_weights(module: nn.Module, path: str | Path,
                       key_map: Callable[[str], str] | None = None,
                       ignore_prefixes: tuple[str, ...] = HEAD_PREFIXES,
                       state_filter: Callable[[dict], dict] | None = None) -> None:
    """Load ``path`` into ``module`` strictly (classifier heads excepted), or raise listing keys.

    ``state_filter`` adapts a checkpoint before the strict load (e.g. timm's filter that
    resizes position embeddings to the model's input size).
    """
    state = read_state_dict(path)
    if key_map is not None:
        state = {key_map(k): v for k, v in state.items()}
    if state_filter is not None:
        state = state_filter(state)
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(ignore_prefixes)}
    problems = {
        "missing keys": list(set(own) - set(state)),
        "unexpected keys": list(set(state) - set(own)),
        "shape mismatch": [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                           for k in set(own) & set(state) if own[k].shape != state[k].shape],
    }
    if any(problems.values()):
        raise mismatch_error(path, type(module).__name__, problems)
    module.load_state_dict(state, strict=True)
