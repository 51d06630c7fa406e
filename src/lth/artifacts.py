"""Reading and writing run artifacts: atomically, and without unpickling arbitrary objects.

Weights and masks are safetensors files; metrics are JSON; the resume checkpoint (model +
optimiser state) is a torch file read back with `weights_only=True`. Every write goes to a
temporary file in the same folder and is renamed into place, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.errors import LTHError


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LTHError(f"file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise LTHError(f"{path}: corrupted JSON ({exc})") from None


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise LTHError(f"{path}: unreadable resume checkpoint ({type(exc).__name__}: {exc}); delete it to restart the job") from None
