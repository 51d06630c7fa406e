"""Reading and writing run artifacts: atomically, and without unpickling arbitrary objects.

Weights and masks are safetensors files; metrics are JSON; the resume checkpoint (model +
optimiser state) is a torch file read back with `weights_only=True`. Every write is atomic
(`lth.files.atomic_path`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.errors import LTHError
from lth.files import atomic_path


def save_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise LTHError(f"file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise LTHError(f"{path}: unreadable or corrupted tensor file ({exc})") from None


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a weights file into `model`, refusing one saved from another architecture."""
    state = load_tensors(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise LTHError(
            f"{path}: weights do not fit model {type(model).__name__}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}"
        )
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise LTHError(f"{path}: weights do not fit model {type(model).__name__}: '{key}' has shape "
                           f"{tuple(value.shape)}, the model needs {tuple(own[key].shape)}")
    model.load_state_dict(state)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise LTHError(f"{path}: unreadable resume checkpoint ({type(exc).__name__}: {exc}); delete it to restart the job") from None
