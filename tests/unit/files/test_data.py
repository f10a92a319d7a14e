import ast
import hashlib
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from qlab.files import data
from qlab.files.paths import repository_root

REPO_ROOT = repository_root()


def test_load_mnist_shapes_dtypes_and_known_labels():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert x_train.max() == 255 and x_train.min() == 0


def test_shipped_file_has_the_documented_checksum():
    path = REPO_ROOT / "data" / "mnist.npz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.SHIPPED_SHA256
    assert data.SHIPPED_SHA256 in (REPO_ROOT / "data" / "README.md").read_text()


def test_corrupted_copy_raises_checksum_error(tmp_path, monkeypatch):
    copy = tmp_path / "mnist.npz"
    raw = bytearray((REPO_ROOT / "data" / "mnist.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte in the middle of the pixel data
    copy.write_bytes(bytes(raw))
    monkeypatch.setenv("QLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(data.ChecksumError, match="sha256"):
        data.load_mnist()


def test_corrupted_copy_message_says_how_to_restore_it(tmp_path):
    bogus = tmp_path / "mnist.npz"
    bogus.write_bytes(b"not mnist")
    with pytest.raises(data.ChecksumError) as caught:
        data.verify_mnist_file(bogus)
    message = str(caught.value)
    assert str(bogus) in message and data.SHIPPED_SHA256 in message
    assert "git checkout -- data/mnist.npz" in message and "QLAB_DATA_DIR" in message
    assert "download" not in message


def test_canonical_keras_copy_stays_an_accepted_hash():
    # Same arrays as the shipped file, compressed differently; a user may drop it in instead.
    assert data.KERAS_SHA256 == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert data.KNOWN_SHA256 == {data.SHIPPED_SHA256, data.KERAS_SHA256}


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every attempt to open a network connection."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"test forbids network access (to {address})")

    # A download starts with a name lookup (no DNS here fails before any connect) or a connect.
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: refuse(None, host))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_missing_file_names_the_path_and_what_to_set_without_network(tmp_path, monkeypatch,
                                                                       no_network):
    monkeypatch.setenv("QLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as caught:
        data.load_mnist()
    message = str(caught.value)
    assert str(tmp_path / "mnist.npz") in message
    assert "QLAB_DATA_DIR" in message and "git checkout -- data/mnist.npz" in message
    assert no_network == []  # no download was even tried
    assert list(tmp_path.iterdir()) == []  # and nothing was written


def test_data_folder_without_the_file_is_not_mistaken_for_it(tmp_path, monkeypatch):
    (tmp_path / "mnist.npz").mkdir()  # a folder of that name, e.g. from an unpacked archive
    monkeypatch.setenv("QLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="QLAB_DATA_DIR"):
        data.mnist_path()


def test_data_dir_from_the_environment_is_used(tmp_path, monkeypatch):
    os.symlink(REPO_ROOT / "data" / "mnist.npz", tmp_path / "mnist.npz")
    monkeypatch.setenv("QLAB_DATA_DIR", str(tmp_path))
    assert data.mnist_path() == tmp_path / "mnist.npz"


def _calls_keras_datasets(source: str) -> bool:
    tree = ast.parse(source)
    return any(isinstance(node, ast.Attribute) and node.attr == "datasets"
               for node in ast.walk(tree))


def test_no_code_path_uses_keras_datasets():
    offenders = [p for p in (REPO_ROOT / "qlab").rglob("*.py") if _calls_keras_datasets(p.read_text())]
    for nb in (REPO_ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if "datasets.mnist" in code or "load_data(" in code:
            offenders.append(nb)
    assert offenders == []
    assert _calls_keras_datasets("from tf_keras import datasets\nkeras.datasets.mnist.load_data()")


def test_import_qlab_is_quiet_and_does_not_seed_or_import_tensorflow():
    code = ("import sys, random, numpy as np; state = np.random.get_state()[1].copy(); "
            "r = random.getstate(); import qlab; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
            "assert (np.random.get_state()[1] == state).all(), 'numpy seeded'; "
            "assert random.getstate() == r, 'random seeded'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
