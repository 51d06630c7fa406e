"""Reading and writing run artifacts: atomically, verified, and without unpickling arbitrary objects.

Weights and masks are safetensors files that carry the sha256 of their tensors in their own
header, recorded when written and checked whenever read, so a damaged file is reported (naming it
and what to do) before it is used; metrics are JSON (lth.store.results checks those); the resume
checkpoint (model + optimiser state) is a torch file read back with `weights_only=True`. Every
write is atomic (`lth.core.files.atomic_path`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.core.errors import LTHError
from lth.core.files import DAMAGED, atomic_path

CHECKSUM = "lth.sha256"  # the header entry holding the tensors' checksum


def digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def save_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path, size=sum(t.nbytes for t in tensors.values())) as tmp:
        save_file(tensors, str(tmp), metadata={CHECKSUM: digest(tensors)})


def load_tensors(path: str | Path, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a file written by `save_tensors`, on `device` (default: the CPU); LTHError naming
    it if missing or damaged. They are read and checked on the CPU, then moved once."""
    tensors = read_checked(path)
    if device is not None and torch.device(device).type != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors


def read_checked(path: str | Path) -> dict[str, torch.Tensor]:
    """The CPU tensors of a file written by `save_tensors`, their checksum checked."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise LTHError(f"file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            expected = (f.metadata() or {}).get(CHECKSUM)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise LTHError(f"{path}: unreadable or corrupted tensor file ({exc}); {DAMAGED}") from None
    if expected is None or digest(tensors) != expected:
        why = "no checksum" if expected is None else "checksum mismatch"
        raise LTHError(f"{path}: damaged tensor file ({why}); {DAMAGED}")
    return tensors


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
    with atomic_path(path, size=_nbytes(state)) as tmp:
        torch.save(state, tmp)


def _nbytes(obj: Any) -> int:
    """The bytes of the tensors in a nested state (what a checkpoint file takes, nearly)."""
    if isinstance(obj, torch.Tensor):
        return obj.nbytes
    if isinstance(obj, Mapping):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise LTHError(f"{path}: unreadable resume checkpoint ({type(exc).__name__}: {exc}); delete it to restart the job") from None
