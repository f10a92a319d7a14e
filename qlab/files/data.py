"""MNIST from the copy shipped in ``data/``, verified by sha256 before use.

No code path here calls ``keras.datasets.mnist.load_data()``: it ignores our copy
and downloads its own, which fails on a machine (or in a workshop room) with no
network.
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import numpy as np

from qlab.files.io import atomic_path
from qlab.files.paths import data_dir

#: sha256 of ``data/mnist.npz`` as shipped (see data/README.md for its provenance).
SHIPPED_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
#: The canonical Keras copy: same arrays, different compression, so a different hash.
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
KNOWN_SHA256 = {SHIPPED_SHA256, KERAS_SHA256}

_EXPECTED = {
    "x_train": ((60000, 28, 28), np.uint8),
    "y_train": ((60000,), np.uint8),
    "x_test": ((10000, 28, 28), np.uint8),
    "y_test": ((10000,), np.uint8),
}

MnistArrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class ChecksumError(ValueError):
    """A data file's contents are not the ones qlab knows; using it would give wrong results."""


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_mnist_file(path: str | Path) -> None:
    """Raise :class:`ChecksumError` unless ``path`` is a known, intact copy of mnist.npz."""
    actual = sha256_of(path)
    if actual not in KNOWN_SHA256:
        raise ChecksumError(
            f"{path} has sha256 {actual}, which is not a known copy of MNIST "
            f"(expected {SHIPPED_SHA256}). The file is corrupted or was replaced. "
            "Restore it with `git checkout -- data/mnist.npz`, or delete it to let qlab "
            "download the canonical Keras copy."
        )


def _download_mnist(path: Path, timeout: float = 30.0) -> None:
    """Download the canonical copy to ``path`` atomically, verifying it before it lands."""
    url = KERAS_URL
    try:
        with atomic_path(path) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
            verify_mnist_file(tmp)
    except ChecksumError:
        raise
    except OSError as exc:  # URLError, timeouts and refused connections are all OSErrors
        raise FileNotFoundError(
            f"MNIST is not at {path} and downloading it from {url} failed ({exc}). "
            "Restore the shipped copy with `git checkout -- data/mnist.npz`, or copy a "
            "verified mnist.npz there (or into the folder named by $QLAB_DATA_DIR)."
        ) from exc


def mnist_path() -> Path:
    """Path of the verified MNIST file, downloading the canonical copy if it is missing."""
    path = data_dir() / "mnist.npz"
    if not path.exists():
        _download_mnist(path)
    verify_mnist_file(path)
    return path


def load_mnist() -> MnistArrays:
    """Return ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays, like Keras.

    Shapes are (60000, 28, 28), (60000,), (10000, 28, 28), (10000,). The file is
    checked against its sha256 first, so a corrupted copy raises a
    :class:`ChecksumError` instead of giving wrong data.
    """
    path = mnist_path()
    with np.load(path, allow_pickle=False) as f:
        arrays = {key: f[key] for key in _EXPECTED}
    for key, (shape, dtype) in _EXPECTED.items():
        if arrays[key].shape != shape or arrays[key].dtype != dtype:
            raise ChecksumError(f"{path}: {key} has shape {arrays[key].shape} and dtype "
                                f"{arrays[key].dtype}, expected {shape} {np.dtype(dtype)}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
