"""``qlab train`` at smoke size: the training behind the shipped models is bit-identical run to run.

The shipped files were made the same way at the full budget (``qlab train`` prints, per
entry, whether it reproduced the shipped weights); here two separate processes train
the smoke CNN, two of its QAT fine-tunes and its Deep Compression chain (pruned, clustered, PCQAT) from scratch and must write the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from qlab.files.data import sha256_of
from qlab.files.paths import checkout_root

ENTRIES = ["mnist_cnn-smoke-s0", "mnist_cnn-smoke-s0-qat_int8", "mnist_cnn-smoke-s0-qat_4bit",
           "mnist_cnn-smoke-s0-dc_pcqat"]


def _train(output, tmp_path) -> dict:
    env = {**os.environ, "QLAB_PROGRESS": "0", "QLAB_ARTIFACTS": str(tmp_path / "unused")}
    run = subprocess.run([sys.executable, "-m", "qlab", "train", "--model", "mnist_cnn", "--qat",
                          "qat_int8,qat_4bit", "--dc", "pcqat", "--smoke", "--output", str(output)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for label in ENTRIES:
        assert label in run.stdout
    return json.loads((output / "manifest.json").read_text())["entries"]


@pytest.mark.slow
def test_two_trainings_from_scratch_write_identical_files_that_load_as_shipped(
        tmp_path, artifacts, monkeypatch, caplog):
    store = tmp_path / "data" / "models"
    first, second = _train(store, tmp_path), _train(tmp_path / "b", tmp_path)
    assert sorted(first) == sorted(ENTRIES)
    for label in ENTRIES:
        assert first[label]["weights_sha256"] == second[label]["weights_sha256"], label
        assert first[label]["values_sha256"] == second[label]["values_sha256"], label
        assert first[label]["sha256"] == second[label]["sha256"], label
        assert sha256_of(store / first[label]["file"]) == first[label]["sha256"]
    # the fine-tunes really moved away from the float model they started from
    assert len({first[label]["values_sha256"] for label in ENTRIES}) == len(ENTRIES)
    _load_from(store, tmp_path, artifacts, monkeypatch, caplog)


def _load_from(store, tmp_path, artifacts, monkeypatch, caplog) -> None:
    """The files load as shipped models; a corrupted one is trained again, to the same weights."""
    from qlab.zoo.models import load_or_train

    (tmp_path / "data" / "mnist.npz").symlink_to(checkout_root() / "data" / "mnist.npz")
    monkeypatch.setenv("QLAB_DATA_DIR", str(tmp_path / "data"))
    model, manifest = load_or_train("mnist_cnn", "smoke", return_manifest=True)
    assert manifest["source"] == str(store / "mnist_cnn-smoke-s0.h5.gz")

    path = store / "mnist_cnn-smoke-s0.h5.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="qlab.zoo.shipped"):
        rebuilt, manifest = load_or_train("mnist_cnn", "smoke", verbose=0, return_manifest=True)
    assert "corrupted" in caplog.text and "source" not in manifest
    assert (artifacts / "models").is_dir()  # trained into the cache, the bad file untouched
    for a, b in zip(model.get_weights(), rebuilt.get_weights()):
        np.testing.assert_array_equal(a, b)
