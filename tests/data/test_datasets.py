"""Tests of lth.data.fetch: fetch (generated and torchvision-backed), load_splits, augment_batch.

The torchvision-backed datasets are read by torchvision's real classes (download=False) from tiny
files written here in each dataset's on-disk format. Nothing downloads anything.
"""

import hashlib
import os
import pickle
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lth.core.errors import LTHError
from lth.core.parts import DATASETS
from lth.data.augment import augment_batch
from lth.data.fetch import fetch, file_sha256
from lth.data.sources import TORCHVISION
from lth.data.splits import load_splits
from lth.plan.layout import dataset_dir

# --------------------------------------------------------------------------- raw-file writers


def _write_idx(path, arr: np.ndarray) -> None:
    """IDX (SN3 Pascal Vincent) file: magic 0,0,type=8 (uint8),ndim; big-endian dims; payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def _write_pickle(path, obj) -> None:
    # Real CIFAR pickles are Python 2 pickles with str keys; torchvision loads them with encoding="latin1".
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _rng_images(rng, n, shape):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def write_raw(name: str, data_dir, seed: int = 0):
    """Write tiny raw files for `name` where fetch reads them; return the expected tensors (NCHW)."""
    rng = np.random.default_rng(seed)
    raw = dataset_dir(data_dir, name) / "raw"
    if name in ("mnist", "fashionmnist", "kmnist"):
        folder = raw / TORCHVISION[name] / "raw"
        exp = {}
        for split, prefix, n in (("train", "train", 7), ("test", "t10k", 3)):
            x = _rng_images(rng, n, (28, 28))
            y = rng.integers(0, 10, size=n).astype(np.uint8)
            _write_idx(folder / f"{prefix}-images-idx3-ubyte", x)
            _write_idx(folder / f"{prefix}-labels-idx1-ubyte", y)
            exp[f"x_{split}"], exp[f"y_{split}"] = x[:, None], y.astype(np.int64)
        return exp
    if name == "cifar10":
        folder = raw / "cifar-10-batches-py"
        batches = []
        for i in range(1, 6):
            x, y = _rng_images(rng, 2, (3072,)), [int(v) for v in rng.integers(0, 10, size=2)]
            _write_pickle(folder / f"data_batch_{i}", {"batch_label": f"b{i}", "data": x, "labels": y, "filenames": []})
            batches.append((x, y))
        xt, yt = _rng_images(rng, 4, (3072,)), [9, 0, 3, 5]
        _write_pickle(folder / "test_batch", {"data": xt, "labels": yt})
        _write_pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
        x_train = np.concatenate([b[0] for b in batches])
        y_train = [v for b in batches for v in b[1]]
        return {
            "x_train": x_train.reshape(-1, 3, 32, 32),
            "y_train": np.array(y_train),
            "x_test": xt.reshape(-1, 3, 32, 32),
            "y_test": np.array(yt),
        }
    if name == "cifar100":
        folder = raw / "cifar-100-python"
        exp = {}
        for split, n, labels in (("train", 6, [0, 99, 42, 7, 99, 1]), ("test", 3, [98, 0, 50])):
            x = _rng_images(rng, n, (3072,))
            _write_pickle(folder / split, {"data": x, "fine_labels": labels, "coarse_labels": [0] * n})
            exp[f"x_{split}"], exp[f"y_{split}"] = x.reshape(-1, 3, 32, 32), np.array(labels)
        _write_pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": []})
        return exp
    if name == "svhn":
        import scipy.io

        raw.mkdir(parents=True, exist_ok=True)
        exp = {}
        for split, labels in (("train", [10, 1, 2, 9, 10]), ("test", [3, 10, 7])):
            n = len(labels)
            x = _rng_images(rng, n, (3, 32, 32))  # NCHW, stored as X[h, w, c, n]
            mat = {"X": x.transpose(2, 3, 1, 0), "y": np.array(labels, np.uint8)[:, None]}
            scipy.io.savemat(raw / f"{split}_32x32.mat", mat)
            exp[f"x_{split}"] = x
            exp[f"y_{split}"] = np.array([0 if v == 10 else v for v in labels])
        return exp
    raise AssertionError(name)


TV_NAMES = ["mnist", "fashionmnist", "kmnist", "cifar10", "cifar100", "svhn"]


@pytest.fixture
def tv_no_md5(monkeypatch):
    """Tiny test files cannot match the real md5 sums: in tests only, replace torchvision's
    check_integrity in the CIFAR and SVHN modules by an existence check (MNIST only checks existence)."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.svhn as svhn

    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    monkeypatch.setattr(cifar, "check_integrity", exists)
    monkeypatch.setattr(svhn, "check_integrity", exists)


def _load(path):
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """mnist1d (default args) and digits fetched once for the module."""
    root = tmp_path_factory.mktemp("data")
    return root, {"mnist1d": fetch("mnist1d", root), "digits": fetch("digits", root)}


# --------------------------------------------------------------------------- registry, paths


def test_registry_facts():
    assert set(DATASETS) == {"mnist1d", "digits", "mnist5k", "mnist", "fashionmnist", "kmnist", "cifar10", "cifar100",
                               "svhn", "sparse_linear", "modular", "grammar"}
    assert DATASETS["mnist1d"].input_shape == (40,)
    assert DATASETS["digits"].input_shape == (1, 8, 8)
    assert DATASETS["kmnist"].input_shape == (1, 28, 28)
    assert DATASETS["svhn"].input_shape == (3, 32, 32)
    assert DATASETS["cifar100"].num_classes == 100
    assert {n for n, i in DATASETS.items() if i.augment} == {"cifar10", "cifar100"}
    assert {n for n, i in DATASETS.items() if not i.downloadable} == {"mnist1d", "digits", "mnist5k", "sparse_linear",
                                                                        "modular", "grammar"}


def test_unknown_dataset_lists_known_names(tmp_path):
    for call in (lambda: DATASETS["imagenet"], lambda: fetch("imagenet", tmp_path),
                 lambda: load_splits("imagenet", tmp_path, val_size=1)):
        with pytest.raises(LTHError, match="imagenet") as e:
            call()
        assert "mnist1d" in str(e.value) and "cifar100" in str(e.value)


def test_dataset_dir(tmp_path):
    assert dataset_dir(tmp_path, "mnist1d") == tmp_path / "mnist1d"
    assert dataset_dir(str(tmp_path), "mnist1d", {}) == tmp_path / "mnist1d"
    a = dataset_dir(tmp_path, "mnist1d", {"seed": 43, "corr_noise_scale": 0.5})
    b = dataset_dir(tmp_path, "mnist1d", {"corr_noise_scale": 0.5, "seed": 43})
    c = dataset_dir(tmp_path, "mnist1d", {"seed": 44, "corr_noise_scale": 0.5})
    assert a == b != c
    assert a.parent == tmp_path and a.name.startswith("mnist1d-") and len(a.name) == len("mnist1d-") + 8
    int(a.name[-8:], 16)


def test_file_sha256_streams_whole_file(tmp_path):
    data = os.urandom((5 << 19) + 123)  # 2.5 MiB + a bit: several chunks
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- generated datasets


def test_mnist1d_default(fetched):
    root, paths = fetched
    assert paths["mnist1d"] == root / "mnist1d" / "tensors.safetensors"
    t = _load(paths["mnist1d"])
    assert t["x_train"].shape == (4000, 40) and t["x_test"].shape == (1000, 40)
    assert t["x_train"].dtype == torch.float32 and t["y_train"].dtype == torch.int64
    assert t["y_train"].shape == (4000,) and t["y_test"].shape == (1000,)
    assert set(t["y_train"].tolist()) == set(range(10))
    # the generator standardises the whole set: a sign of the real data, not zeros
    assert abs(float(torch.cat([t["x_train"], t["x_test"]]).std()) - 1.0) < 1e-3


def test_mnist1d_options_change_data_and_directory(fetched, tmp_path):
    root, paths = fetched
    state = np.random.get_state()
    p43 = fetch("mnist1d", tmp_path, options={"seed": 43, "num_samples": 500})
    p44 = fetch("mnist1d", tmp_path, options={"seed": 44, "num_samples": 500})
    assert np.array_equal(np.random.get_state()[1], state[1])  # global numpy stream untouched
    assert p43.parent == dataset_dir(tmp_path, "mnist1d", {"num_samples": 500, "seed": 43})
    assert p43.parent != p44.parent != tmp_path / "mnist1d"
    t43, t44 = _load(p43), _load(p44)
    assert t43["x_train"].shape == (400, 40) and t43["x_test"].shape == (100, 40)
    assert not torch.equal(t43["x_train"], t44["x_train"])


def test_mnist1d_bad_options(tmp_path):
    with pytest.raises(LTHError, match="'no_such_option'"):
        fetch("mnist1d", tmp_path, options={"no_such_option": 1})
    with pytest.raises(LTHError, match="'final_seq_length'"):
        fetch("mnist1d", tmp_path, options={"final_seq_length": 50})
    with pytest.raises(LTHError, match="digits.*no options"):
        fetch("digits", tmp_path, options={"seed": 1})
    assert not list(tmp_path.rglob("*.safetensors"))


def test_digits(fetched):
    from sklearn.datasets import load_digits

    _, paths = fetched
    t = _load(paths["digits"])
    assert t["x_train"].shape == (1437, 1, 8, 8) and t["x_test"].shape == (360, 1, 8, 8)
    assert t["x_train"].dtype == torch.uint8 and int(t["x_train"].max()) == 16
    d = load_digits()
    test_idx = torch.randperm(1797, generator=torch.Generator().manual_seed(0))[:360].sort().values
    assert torch.equal(t["x_test"][:, 0], torch.as_tensor(d.images[test_idx.numpy()]).to(torch.uint8))
    assert torch.equal(t["y_test"], torch.as_tensor(d.target[test_idx.numpy()]))


def test_fetch_is_idempotent(tmp_path, monkeypatch):
    p = fetch("digits", tmp_path)
    mtime, digest = p.stat().st_mtime_ns, file_sha256(p)

    def boom():
        raise AssertionError("regenerated")

    monkeypatch.setattr("lth.data.sources.make_digits", boom)
    assert fetch("digits", tmp_path) == p
    assert p.stat().st_mtime_ns == mtime
    # a corrupt file is rebuilt, not returned
    monkeypatch.undo()
    with open(p, "r+b") as f:
        f.truncate(100)
    assert fetch("digits", tmp_path) == p and file_sha256(p) == digest


def test_fetch_writes_atomically(tmp_path, monkeypatch):
    p = fetch("digits", tmp_path)
    assert sorted(q.name for q in p.parent.iterdir()) == ["tensors.safetensors", "tensors.safetensors.md5"]
    assert oct(p.stat().st_mode & 0o777) == "0o644"  # datasets are meant to be shared

    def half_write(tensors, filename):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("lth.data.fetch.save_file", half_write)
    with pytest.raises(KeyboardInterrupt):
        fetch("digits", tmp_path / "other")
    assert list((tmp_path / "other" / "digits").iterdir()) == []


# --------------------------------------------------------------------------- torchvision datasets


@pytest.mark.parametrize("name", TV_NAMES)
def test_torchvision_formats(name, tmp_path, tv_no_md5):
    exp = write_raw(name, tmp_path)
    p = fetch(name, tmp_path, download=False)
    assert p == tmp_path / name / "tensors.safetensors"
    t = _load(p)
    for key, want in exp.items():
        assert t[key].dtype == (torch.uint8 if key[0] == "x" else torch.int64), key
        assert torch.equal(t[key], torch.as_tensor(want).to(t[key].dtype)), key
    s = load_splits(name, tmp_path, val_size=2)
    assert s.x_train.shape == (len(exp["y_train"]) - 2, *DATASETS[name].input_shape)


@pytest.mark.parametrize("name", TV_NAMES)
def test_missing_raw_files_without_download(name, tmp_path, tv_no_md5):
    with pytest.raises(LTHError) as e:
        fetch(name, tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / name / "raw") in msg and "--download" in msg and name in msg
    assert not (tmp_path / name / "tensors.safetensors").exists()


def test_cifar_md5_is_checked_in_production(tmp_path):
    write_raw("cifar10", tmp_path)  # tiny files: wrong md5 sums
    with pytest.raises(LTHError, match="corrupted"):
        fetch("cifar10", tmp_path)


def test_download_failure_is_lth_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def fail(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(tvd.MNIST, "download", fail)
    with pytest.raises(LTHError, match="download into .*raw failed"):
        fetch("mnist", tmp_path, download=True)


# --------------------------------------------------------------------------- load_splits


def _write_tensors(data_dir, name, **t):
    d = dataset_dir(data_dir, name)
    d.mkdir(parents=True, exist_ok=True)
    save_file(t, str(d / "tensors.safetensors"))
    return d / "tensors.safetensors"


def _id_dataset(data_dir, n=50):
    """mnist1d-shaped file whose examples carry their index: col0 = i, col1 = 0, col2 = 1."""
    x = torch.randn(n, 40, generator=torch.Generator().manual_seed(1))
    x[:, 0], x[:, 1], x[:, 2] = torch.arange(n), 0.0, 1.0
    y = torch.arange(n) % 10
    _write_tensors(data_dir, "mnist1d", x_train=x, y_train=y, x_test=x[:5].clone(), y_test=y[:5].clone())


def _ids(x):
    # undo the shared scalar affine normalisation using the constant 0 and 1 columns
    scale = 1.0 / (x[:, 2] - x[:, 1])
    return torch.round((x[:, 0] - x[:, 1]) * scale).long().tolist()


def test_val_split_deterministic_disjoint_and_seeded(tmp_path):
    _id_dataset(tmp_path)
    a = load_splits("mnist1d", tmp_path, val_size=12, split_seed=3)
    b = load_splits("mnist1d", tmp_path, val_size=12, split_seed=3)
    c = load_splits("mnist1d", tmp_path, val_size=12, split_seed=4)
    va, ta = _ids(a.x_val), _ids(a.x_train)
    assert len(va) == 12 and len(ta) == 38
    assert set(va).isdisjoint(ta) and set(va) | set(ta) == set(range(50))
    assert a.y_val.tolist() == [i % 10 for i in va] and a.y_train.tolist() == [i % 10 for i in ta]
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:12].sort().values.tolist()
    assert va == expected
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.x_train, b.x_train)
    assert set(_ids(c.x_val)) != set(va)


def test_val_size_bounds(tmp_path):
    _id_dataset(tmp_path)
    s = load_splits("mnist1d", tmp_path, val_size=0)
    assert s.x_val.shape == (0, 40) and s.y_val.shape == (0,) and _ids(s.x_train) == list(range(50))
    assert load_splits("mnist1d", tmp_path, val_size=49).x_train.shape == (1, 40)
    for bad in (50, 51, -1, 2.5):
        with pytest.raises(LTHError, match=f"val_size={bad}"):
            load_splits("mnist1d", tmp_path, val_size=bad)
    with pytest.raises(LTHError, match="split_seed='1'"):
        load_splits("mnist1d", tmp_path, val_size=1, split_seed="1")


def test_normalisation_per_channel_from_remaining_train(tmp_path):
    g = torch.Generator().manual_seed(0)
    n = 60
    x = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
    x[:, 0] = torch.randint(0, 50, (n, 32, 32), generator=g)
    x[:, 1] = torch.randint(100, 140, (n, 32, 32), generator=g)
    x[:, 2] = torch.randint(200, 256, (n, 32, 32), generator=g)
    x[:7] = 255  # bright outliers: stats must depend on which examples stay in train
    y = torch.arange(n) % 10
    _write_tensors(tmp_path, "cifar10", x_train=x, y_train=y, x_test=x[:4].clone(), y_test=y[:4].clone())
    s = load_splits("cifar10", tmp_path, val_size=10, split_seed=5)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert s.x_train.shape == (50, 3, 32, 32) and s.x_val.shape == (10, 3, 32, 32) and s.x_test.shape == (4, 3, 32, 32)
    m, sd = s.x_train.mean(dim=(0, 2, 3)), s.x_train.std(dim=(0, 2, 3))
    assert torch.allclose(m, torch.zeros(3), atol=1e-4) and torch.allclose(sd, torch.ones(3), atol=1e-4)
    # val/test use the remaining-train statistics (recomputed here by hand)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(5))
    tr, va = perm[10:].sort().values, perm[:10].sort().values
    xf = x.float() / 255
    mu, sigma = xf[tr].mean(dim=(0, 2, 3), keepdim=True), xf[tr].std(dim=(0, 2, 3), keepdim=True)
    assert torch.allclose(s.x_val, (xf[va] - mu) / sigma, atol=1e-5)
    assert torch.allclose(s.x_test, (xf[:4] - mu) / sigma, atol=1e-5)
    assert not torch.allclose(m, s.x_val.mean(dim=(0, 2, 3)), atol=1e-2)


def test_load_splits_real_digits_and_mnist1d(fetched):
    root, _ = fetched
    s = load_splits("digits", root, val_size=200, split_seed=1)
    assert s.info is DATASETS["digits"]
    assert s.x_train.shape == (1237, 1, 8, 8) and s.x_val.shape == (200, 1, 8, 8)
    assert s.x_test.shape == (360, 1, 8, 8)
    assert abs(float(s.x_train.mean())) < 1e-5 and abs(float(s.x_train.std()) - 1) < 1e-4
    t = load_splits("mnist1d", root, val_size=500)
    assert t.x_train.shape == (3500, 40) and t.x_test.shape == (1000, 40) and t.y_test.dtype == torch.int64
    assert abs(float(t.x_train.mean())) < 1e-5 and abs(float(t.x_train.std()) - 1) < 1e-4


def test_load_splits_missing_file(tmp_path):
    with pytest.raises(LTHError) as e:
        load_splits("digits", tmp_path, val_size=10)
    assert str(tmp_path / "digits" / "tensors.safetensors") in str(e.value) and "lth fetch digits" in str(e.value)
    with pytest.raises(LTHError, match="`lth fetch mnist1d --option seed=43`"):
        load_splits("mnist1d", tmp_path, val_size=10, options={"seed": 43})


def test_load_splits_corrupt_file(tmp_path):
    p = fetch("digits", tmp_path)
    size = p.stat().st_size
    with open(p, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(LTHError, match="cannot read") as e:
        load_splits("digits", tmp_path, val_size=10)
    assert str(p) in str(e.value)


def test_load_splits_wrong_content(tmp_path):
    x = torch.zeros(5, 1, 28, 28, dtype=torch.uint8)
    y = torch.zeros(5, dtype=torch.int64)
    xt, yt = x[:2].clone(), y[:2].clone()
    p = _write_tensors(tmp_path, "cifar10", x_train=x, y_train=y, x_test=xt, y_test=yt)  # MNIST-shaped
    with pytest.raises(LTHError, match=r"x_train.*\(N, 3, 32, 32\)") as e:
        load_splits("cifar10", tmp_path, val_size=1)
    assert str(p) in str(e.value)
    p = _write_tensors(tmp_path, "kmnist", x_train=x, y_train=y, x_test=x[:2].clone())
    with pytest.raises(LTHError, match="keys") as e:
        load_splits("kmnist", tmp_path, val_size=1)
    assert str(p) in str(e.value)
    _write_tensors(tmp_path, "mnist", x_train=x, y_train=y + 10, x_test=x[:2].clone(), y_test=y[:2].clone())
    with pytest.raises(LTHError, match="labels outside"):
        load_splits("mnist", tmp_path, val_size=1)


# --------------------------------------------------------------------------- augmentation


def _reference_augment(x, generator, pad=4):
    """Per-example reference: same draws (row offsets, column offsets, flips), crop then flip."""
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = []
    for i in range(n):
        img = torch.nn.functional.pad(x[i], (pad, pad, pad, pad))[:, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out.append(img.flip(-1) if flip[i] else img)
    return torch.stack(out), dy, dx, flip


def test_augment_batch_matches_reference():
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0)) + 5  # no zeros inside
    x0 = x.clone()
    out = augment_batch(x, torch.Generator().manual_seed(7))
    ref, dy, dx, flip = _reference_augment(x, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.equal(x, x0)
    assert torch.equal(out, ref)
    # the randomness is real: both flip states and many crops occur; crops bring in zero padding
    assert 10 < int(flip.sum()) < 54 and len(set(zip(dy.tolist(), dx.tolist()))) > 20
    assert int((out == 0).any(dim=(1, 2, 3)).sum()) > 40
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(7)), out)
    assert not torch.equal(augment_batch(x, torch.Generator().manual_seed(8)), out)


def test_augment_batch_is_a_crop_or_flipped_crop():
    # independent of draw order: every output is one of the 9x9x2 candidate windows of its input
    x = torch.arange(2 * 1 * 6 * 5, dtype=torch.float32).reshape(2, 1, 6, 5) + 1
    out = augment_batch(x, torch.Generator().manual_seed(3))
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (4, 4, 4, 4))
        cands = [padded[:, r : r + 6, c : c + 5] for r in range(9) for c in range(9)]
        cands += [cd.flip(-1) for cd in cands]
        assert any(torch.equal(out[i], cd) for cd in cands)


# --------------------------------------------------------------------------- start-up cost


def test_import_and_load_stay_light(fetched):
    root, _ = fetched
    code = textwrap.dedent(f"""
        import sys
        heavy = ("torchvision", "mnist1d", "sklearn", "scipy", "matplotlib")
        from lth.data.splits import load_splits
        after_import = [m for m in heavy if m in sys.modules]
        s = load_splits("digits", {str(root)!r}, val_size=100)
        after_load = [m for m in heavy if m in sys.modules]
        print(after_import, after_load, tuple(s.x_val.shape))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[] [] (100, 1, 8, 8)", r.stderr


def test_label_noise_changes_exactly_its_fraction_of_training_labels_and_never_validation_or_test(data_dir):
    from lth.data.splits import load_splits

    clean = load_splits("mnist1d", data_dir, val_size=500, split_seed=3)
    noisy = load_splits("mnist1d", data_dir, val_size=500, split_seed=3, label_noise=0.2)
    again = load_splits("mnist1d", data_dir, val_size=500, split_seed=3, label_noise=0.2)
    changed = int((clean.y_train != noisy.y_train).sum())
    assert changed == round(0.2 * len(clean.y_train))  # exactly the fraction, each to another class
    assert torch.equal(noisy.y_train, again.y_train)  # deterministic
    assert torch.equal(clean.y_val, noisy.y_val) and torch.equal(clean.y_test, noisy.y_test)
    assert torch.equal(clean.x_train, noisy.x_train)
    assert int(noisy.y_train.max()) < 10 and int(noisy.y_train.min()) >= 0


@pytest.mark.parametrize("name, module", [("grammar", "lth.data.grammar"), ("sparse_linear", "lth.data.sparse_linear"),
                                          ("modular", "lth.data.modular_arithmetic")])
def test_registered_options_are_the_generators_defaults(name, module):
    """parts.py spells the options out (torch-free, never importing the generator): they stay its own."""
    import importlib

    assert dict(DATASETS[name].info["options"]) == importlib.import_module(module).DEFAULTS
