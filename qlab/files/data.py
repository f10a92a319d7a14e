"""MNIST from the copy shipped in ``data/``, verified by sha256 before use.

Nothing here touches the network: a workshop room may have none, so a missing file
is an error that says where qlab looked and what to set. For the same reason no code
path calls ``keras.datasets.mnist.load_data()``, which ignores our copy and downloads
its own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from qlab.files.paths import DATA_ENV, data_dir

#: sha256 of ``data/mnist.npz`` as shipped (see data/README.md for its provenance).
SHIPPED_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
#: The canonical Keras copy (tf-keras-datasets/mnist.npz): same arrays, different
#: compression, so a different hash. Either file may be placed in the data folder.
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
            "In a qlab checkout restore it with `git checkout -- data/mnist.npz`; otherwise "
            f"set {DATA_ENV} to a folder holding a verified copy (the shipped one, or the "
            f"canonical Keras one with sha256 {KERAS_SHA256})."
        )


def mnist_path() -> Path:
    """Path of the verified MNIST file in :func:`qlab.files.paths.data_dir`.

    Raises:
        FileNotFoundError: the file is missing; the message names the path and what to do.
        ChecksumError: the file is not a known copy of MNIST.
    """
    path = data_dir() / "mnist.npz"
    if not path.is_file():
        # No download fallback: the workbook must behave the same with or without network.
        raise FileNotFoundError(
            f"MNIST is not at {path}. Set {DATA_ENV} to the folder that holds mnist.npz, "
            "or, in a qlab checkout, restore the shipped copy with "
            "`git checkout -- data/mnist.npz`.")
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
