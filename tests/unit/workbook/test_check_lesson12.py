"""Lesson 12's checks: prepared data judged by qlab's own data checks, a predicate by the model TFMOT's calls make."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook.check import grade

RNG = np.random.default_rng(0)
RAW_IMAGES = RNG.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)  # as an app stores them
RAW_LABELS = np.eye(10, dtype=np.float32)[RNG.integers(0, 10, 40)]  # one-hot
X_EXPECTED = (RAW_IMAGES.astype(np.float32) / 255)[..., None]  # as qlab.mnist_for gives them
Y_EXPECTED = RAW_LABELS.argmax(axis=1)


@pytest.fixture(scope="module")
def example_cnn():
    """A model named like the lesson's example CNN, so the data checks know its [0, 1] input range."""
    from qlab.zoo.keras2 import keras

    layers = keras.layers
    return keras.Sequential([layers.Input((28, 28, 1)), layers.Conv2D(2, 3), layers.GlobalAveragePooling2D(),
                             layers.Dense(10)], name="example_cnn")


def dataset(model, x, y):
    return grade("12.dataset", x, y, model=model, test=(X_EXPECTED[:8], Y_EXPECTED[:8]), x_expected=X_EXPECTED,
                 y_expected=Y_EXPECTED)


def test_the_blank_is_not_done(example_cnn):
    assert dataset(example_cnn, ..., ...).status == "not done"
    assert grade("12.keep_in_float", ..., model=example_cnn).status == "not done"


def test_prepared_data_is_correct(example_cnn):
    x = RAW_IMAGES[..., None].astype(np.float32) / 255
    assert dataset(example_cnn, x, RAW_LABELS.argmax(axis=1)).status == "correct"
    assert dataset(example_cnn, np.expand_dims(RAW_IMAGES / 255.0, -1).astype("float32"),
                   np.argmax(RAW_LABELS, 1).astype(np.int32)).status == "correct"


@pytest.mark.parametrize("x, y, hint", [
    (RAW_IMAGES[..., None].astype(np.float32), Y_EXPECTED, "trained on values in [0, 1]"),  # no / 255
    (RAW_IMAGES.astype(np.float32) / 255, Y_EXPECTED, "expects (28, 28, 1)"),  # no channel axis
    (RAW_IMAGES[..., None], Y_EXPECTED, "must be float32"),
    (X_EXPECTED, RAW_LABELS, "like one-hot labels"),
    (X_EXPECTED, RAW_LABELS.argmax(axis=1).astype(np.float32), "must be integer class labels"),
    (RAW_IMAGES[..., None].astype(np.float32) / 256, Y_EXPECTED, "scale them exactly as in training"),
    (X_EXPECTED, np.roll(Y_EXPECTED, 1), "not the class of their image"),
    (X_EXPECTED[:20], Y_EXPECTED[:20], "each of the 40 images"),
])
def test_each_data_mistake_gets_a_hint_without_the_fix(example_cnn, x, y, hint):
    outcome = dataset(example_cnn, x, y)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    for fix in ("divide", "[..., None]", "argmax", "astype"):
        assert fix not in outcome.message


@pytest.fixture(scope="module")
def with_layer_norm():
    from qlab.zoo.keras2 import keras

    layers = keras.layers
    return keras.Sequential([layers.Input((16,)), layers.Dense(16, name="first"), layers.LayerNormalization(),
                             layers.Dense(10, name="last")], name="with_layer_norm")


def keep(model, predicate):
    return grade("12.keep_in_float", predicate, model=model)


def test_every_layer_but_the_layer_normalization_is_correct(with_layer_norm):
    from qlab.zoo.keras2 import keras

    assert keep(with_layer_norm, lambda layer: not isinstance(layer, keras.layers.LayerNormalization)).status \
        == "correct"
    assert keep(with_layer_norm, lambda layer: isinstance(layer, keras.layers.Dense)).status == "correct"


@pytest.mark.parametrize("predicate, hint", [
    (lambda layer: type(layer).__name__ == "LayerNormalization", "which TFMOT cannot quantize"),  # inverted
    (lambda layer: True, "which TFMOT cannot quantize"),
    (lambda layer: False, "picks no layer"),  # e.g. Keras 3's Dense, which no tf_keras layer is
    (lambda layer: layer.name == "first", "['last'] would stay float"),
    ([("Dense", True)], "must be a function"),
])
def test_each_predicate_mistake_gets_its_hint(with_layer_norm, predicate, hint):
    outcome = keep(with_layer_norm, predicate)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "isinstance" not in outcome.message
