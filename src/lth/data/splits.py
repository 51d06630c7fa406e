"""Loading a fetched dataset: its tensors file read and checked, a seeded validation split carved
from the training set, inputs normalised with statistics of the remaining training examples only
(never validation or test), and label noise when asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from lth.core.errors import LTHError
from lth.core.parts import DATASETS
from lth.core.registry import Part
from lth.core.seeding import derive_seed
from lth.plan.facts import dataset_facts
from lth.plan.layout import TENSORS_FILE, canonical_options, dataset_dir

KEYS = ("x_train", "y_train", "x_test", "y_test")  # the tensors of a dataset file
PIXEL_MAX = {"digits": 16.0}  # the value range of a uint8 source; others use 255


@dataclass
class Splits:
    info: Part
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str = "classification"  # or "regression": float targets, squared loss, no accuracy


def read_tensors(path: Path, info: Part, facts: dict) -> dict[str, torch.Tensor]:
    """Load and validate a tensors file against the dataset's facts (lth.plan.facts.dataset_facts);
    any problem is an LTHError naming the file."""
    try:
        t = load_file(str(path))
    except Exception as e:
        raise LTHError(
            f"dataset {info.name!r}: cannot read {path} ({e}); delete it and run `lth fetch {info.name}`"
        ) from e
    if set(t) != set(KEYS):
        raise LTHError(f"dataset {info.name!r}: {path} has keys {sorted(t)}, expected {list(KEYS)}")
    x_dtype = getattr(torch, info.info.get("x_dtype", "uint8"))
    for split in ("train", "test"):
        x, y = t[f"x_{split}"], t[f"y_{split}"]
        if tuple(x.shape[1:]) != facts["input_shape"] or x.dtype != x_dtype:
            raise LTHError(
                f"dataset {info.name!r}: {path} has x_{split} {x.dtype} {tuple(x.shape)}, "
                f"expected {x_dtype} (N, {', '.join(map(str, facts['input_shape']))})"
            )
        y_dtype = torch.float32 if facts.get("task") == "regression" else torch.int64
        if y.dtype != y_dtype or y.shape != (x.shape[0],):
            raise LTHError(
                f"dataset {info.name!r}: {path} has y_{split} {y.dtype} {tuple(y.shape)}, "
                f"expected {y_dtype} ({x.shape[0]},)"
            )
        if y_dtype == torch.int64 and len(y) and (int(y.min()) < 0 or int(y.max()) >= facts["num_classes"]):
            raise LTHError(f"dataset {info.name!r}: {path} has y_{split} labels outside 0..{facts['num_classes'] - 1}")
    return t


def load_splits(
    name: str,
    data_dir,
    *,
    val_size: int,
    split_seed: int = 0,
    options: dict | None = None,
    device="cpu",
    label_noise: float = 0.0,
    normalise: bool = True,
) -> Splits:
    """Train/val/test tensors, float32 normalised, labels int64, from the fetched tensors file.

    The validation set is `val_size` training examples chosen by a permutation seeded with
    `split_seed` (both parts keep their original order). Normalisation statistics come from the
    remaining training examples only, so validation and test stay unseen. `label_noise`: that
    fraction of the training labels (never validation or test) replaced by another class
    (`noisy_labels`), seeded by `split_seed` (sparse double descent, He et al. 2022). `normalise`
    False: the inputs as they are.
    """
    info = DATASETS[name]
    path = dataset_dir(data_dir, name, options) / TENSORS_FILE
    if not path.is_file():
        canonical_options(name, options)  # a bad options value is reported as such
        opts = "".join(f" --option {k}={json.dumps(v)}" for k, v in sorted((options or {}).items()))
        raise LTHError(f"dataset {name!r}: {path} not found; run `lth fetch {name}{opts}` first")
    facts = dataset_facts(name, options)
    t = read_tensors(path, info, facts)
    n = len(t["y_train"])
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < n:
        raise LTHError(f"dataset {name!r}: val_size={val_size!r} must be an integer in [0, {n}) (training set: {n})")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise LTHError(f"dataset {name!r}: split_seed={split_seed!r} must be an integer")

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device)
        if x.dtype == torch.uint8:
            return x.float() / PIXEL_MAX.get(name, 255.0)
        return x.float()

    x_train, x_val, x_test = prep(t["x_train"][train_idx]), prep(t["x_train"][val_idx]), prep(t["x_test"])
    mean, std = statistics(x_train, info, normalise)
    task = facts.get("task", "classification")
    if label_noise and task != "classification":
        raise LTHError(f"dataset {name!r}: label_noise needs class labels; this is a {task} task")
    y_train = noisy_labels(t["y_train"][train_idx], label_noise, facts["num_classes"], split_seed)
    return Splits(
        info=info,
        x_train=(x_train - mean) / std,
        y_train=y_train.to(device),
        x_val=(x_val - mean) / std,
        y_val=t["y_train"][val_idx].to(device),
        x_test=(x_test - mean) / std,
        y_test=t["y_test"].to(device),
        task=task,
    )


def statistics(x_train: torch.Tensor, info: Part, normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) the inputs are normalised with, from the training examples: per channel for images,
    one scalar for signals, none (0, 1) when not asked for or for a dataset that never is (one-hot tokens)."""
    if not normalise or not info.info.get("normalise", True):
        return torch.zeros((), device=x_train.device), torch.ones((), device=x_train.device)
    if x_train.dim() == 4:
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)[0]
        return mean, x_train.std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-8)  # a constant channel: no NaNs
    return x_train.mean(), x_train.std().clamp_min(1e-8)


def noisy_labels(y: torch.Tensor, fraction: float, num_classes: int, seed: int) -> torch.Tensor:
    """`y` with round(fraction * len(y)) labels, chosen by a seeded permutation, each replaced by a
    uniformly drawn *other* class, so that exactly that fraction is wrong."""
    if not 0.0 <= fraction < 1.0:
        raise LTHError(f"dataset.label_noise: {fraction!r} is not in [0, 1)")
    if not fraction:
        return y
    g = torch.Generator().manual_seed(derive_seed(seed, "label_noise"))
    which = torch.randperm(len(y), generator=g)[: round(fraction * len(y))]
    shift = torch.randint(1, num_classes, (len(which),), generator=g)
    out = y.clone()
    out[which] = (y[which] + shift) % num_classes
    return out
