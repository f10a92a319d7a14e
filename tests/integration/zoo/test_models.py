"""The model zoo: preprocessing, the verified cache, deterministic smoke training."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from qlab.zoo import models
from qlab.zoo.cache import MANIFEST, WEIGHTS, entry_dir


def test_preprocess_zero_pads_to_32_exactly():
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    x = models.preprocess(images, 32)
    assert x.shape == (3, 32, 32, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 2:30, 2:30, 0], images / np.float32(255))
    assert not x[:, :2].any() and not x[:, 30:].any() and not x[:, :, :2].any()


def test_preprocess_keeps_28_for_the_cnn():
    x = models.preprocess(np.full((1, 28, 28), 255, np.uint8), 28)
    assert x.shape == (1, 28, 28, 1) and x.max() == 1.0


def test_unknown_model_and_size_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*mnist_cnn, mobilenet_v1"):
        models.mnist_for("resnet")
    with pytest.raises(ValueError, match="size must be one of"):
        models.mnist_for("mnist_cnn", "tiny")


def test_smoke_data_is_small_and_mobilenets_get_32x32():
    (x_train, y_train), (x_test, y_test) = models.mnist_for("mobilenet_v2", "smoke")
    assert x_train.shape == (512, 32, 32, 1) and x_test.shape == (500, 32, 32, 1)
    assert y_train.dtype == np.int64 and set(np.unique(y_test)) == set(range(10))


def test_mobilenets_use_fast_batch_norm_momentum():
    model = models.build_model("mobilenet_v1")
    momenta = {layer.momentum for layer in model.layers if "BatchNormalization" in type(layer).__name__}
    assert momenta == {0.9}
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 10)


def _weights(model):
    return [w.copy() for w in model.get_weights()]


@pytest.mark.slow
def test_cache_is_reused_and_corruption_or_staleness_rebuilds_identically(artifacts, monkeypatch,
                                                                          caplog):
    first, manifest = models.load_or_train("mnist_cnn", "smoke", seed=3, verbose=0,
                                           return_manifest=True)
    path = entry_dir("mnist_cnn-smoke-s3", models.training_config("mnist_cnn", "smoke", 3))
    assert (path / WEIGHTS).exists() and manifest["config"]["seed"] == 3

    def no_training(*args, **kwargs):
        raise AssertionError("a valid cache entry must not be retrained")

    monkeypatch.setattr(models, "train_model", no_training)
    cached = models.load_or_train("mnist_cnn", "smoke", seed=3)
    for a, b in zip(_weights(first), _weights(cached)):
        np.testing.assert_array_equal(a, b)
    monkeypatch.undo()
    monkeypatch.setenv("QLAB_ARTIFACTS", str(artifacts))

    data = bytearray((path / WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (path / WEIGHTS).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="qlab.zoo.cache"):
        rebuilt = models.load_or_train("mnist_cnn", "smoke", seed=3, verbose=0)
    assert "corrupted" in caplog.text
    # same seed and config on the CPU: the retrained weights are bit-identical
    for a, b in zip(_weights(first), _weights(rebuilt)):
        np.testing.assert_array_equal(a, b)

    manifest = json.loads((path / MANIFEST).read_text())
    manifest["config"]["seed"] = 4
    (path / MANIFEST).write_text(json.dumps(manifest))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qlab.zoo.cache"):
        models.load_or_train("mnist_cnn", "smoke", seed=3, verbose=0)
    assert "stale" in caplog.text
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temp dirs left over"
