import ast
import hashlib
import json
import shutil
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


def test_missing_file_without_network_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("QLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "KERAS_URL", "http://127.0.0.1:9/mnist.npz")  # nothing listens there
    with pytest.raises(FileNotFoundError, match="git checkout -- data/mnist.npz"):
        data.load_mnist()
    assert list(tmp_path.iterdir()) == []  # no half-downloaded file left behind


def test_missing_file_is_downloaded_verified_and_stored(tmp_path, monkeypatch):
    source = tmp_path / "server"
    source.mkdir()
    shutil.copy(REPO_ROOT / "data" / "mnist.npz", source / "mnist.npz")
    target = tmp_path / "data"
    monkeypatch.setenv("QLAB_DATA_DIR", str(target))
    monkeypatch.setattr(data, "KERAS_URL", (source / "mnist.npz").as_uri())
    (x_train, _), _ = data.load_mnist()
    assert x_train.shape == (60000, 28, 28)
    assert data.sha256_of(target / "mnist.npz") == data.SHIPPED_SHA256


def test_downloaded_file_with_wrong_checksum_is_not_kept(tmp_path, monkeypatch):
    bogus = tmp_path / "bogus.npz"
    np.savez_compressed(bogus, x_train=np.zeros((1, 28, 28), np.uint8))
    target = tmp_path / "data"
    monkeypatch.setenv("QLAB_DATA_DIR", str(target))
    monkeypatch.setattr(data, "KERAS_URL", bogus.as_uri())
    with pytest.raises(data.ChecksumError):
        data.load_mnist()
    assert not (target / "mnist.npz").exists()


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
