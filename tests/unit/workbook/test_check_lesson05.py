"""Lesson 05's checks: per-channel scales graded by the converter's file, equalization by the float model itself."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook.check import grade
from qlab.zoo.keras2 import keras
from qlab.zoo.seed import set_seed

layers = keras.layers


@pytest.fixture(scope="module")
def model() -> keras.Model:
    """conv1 (4 channels) -> pool -> conv2 (6 channels, 4 inputs) -> dense, with unequal channels."""
    set_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu", name="conv1"),
                              layers.MaxPooling2D(2, name="pool1"),
                              layers.Conv2D(6, 3, activation="relu", name="conv2"),
                              layers.Flatten(name="flatten"), layers.Dense(3, name="logits")])
    rng = np.random.default_rng(0)
    kernel1, bias1 = model.get_layer("conv1").get_weights()
    model.get_layer("conv1").set_weights([kernel1 * np.array([0.1, 1.0, 3.0, 0.5], np.float32), bias1 + 0.01])
    kernel2, bias2 = model.get_layer("conv2").get_weights()
    kernel2 = (kernel2 * rng.uniform(0.2, 2.0, 6)).astype(np.float32)
    kernel2[..., 0] = -np.abs(kernel2[..., 0])  # this channel's largest magnitude is negative
    kernel2[0, 0, 0, 0] = 0.5 * np.abs(kernel2[..., 0]).max()
    model.get_layer("conv2").set_weights([kernel2, bias2 + 0.01])
    return model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 1, (32, 8, 8, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def per_channel_file(model, images) -> bytes:
    from qlab.conversion.converter import convert

    return convert(model, "int8_per_channel", images, num_samples=len(images))


def kernels(model) -> tuple[np.ndarray, np.ndarray]:
    return model.get_layer("conv1").get_weights()[0], model.get_layer("conv2").get_weights()[0]


def scales_outcome(answer, model, per_channel_file):
    return grade("05.per_channel_scales", answer, kernel=kernels(model)[1], model_bytes=per_channel_file)


def test_scales_blank_is_not_done(model, per_channel_file):
    assert scales_outcome(..., model, per_channel_file).status == "not done"


def test_scales_of_the_converters_file_are_correct(model, per_channel_file):
    kernel2 = kernels(model)[1]
    outcome = scales_outcome(np.abs(kernel2).max(axis=(0, 1, 2)) / 127, model, per_channel_file)
    assert outcome.status == "correct", outcome.message


@pytest.mark.parametrize("mistake, hint", [
    (lambda k: np.abs(k).max(axis=(0, 1, 2)) / 128, "narrow_range"),
    (lambda k: np.abs(k).max(axis=(0, 1, 2)) / 255, "times the converter's"),
    (lambda k: np.abs(k).max() / 127, "per-tensor"),
    (lambda k: np.full(k.shape[-1], np.abs(k).max() / 127), "all your scales are equal"),
    (lambda k: np.abs(k).max(axis=(0, 1, 3)) / 127, "one scale per output channel"),  # the input channels
    (lambda k: k.max(axis=(0, 1, 2)) / 127, "negative"),  # max w, not max |w|
    (lambda k: -np.abs(k).max(axis=(0, 1, 2)) / 127, "positive"),
])
def test_each_scale_mistake_gets_a_hint_without_the_answer(mistake, hint, model, per_channel_file):
    outcome = scales_outcome(mistake(kernels(model)[1]), model, per_channel_file)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "np.abs" not in outcome.message and "max(axis" not in outcome.message


def equalization_outcome(answer, model, images):
    return grade("05.equalization_scale", answer, model=model, first="conv1", second="conv2", x=images)


def ranges(model) -> tuple[np.ndarray, np.ndarray]:
    kernel1, kernel2 = kernels(model)
    return np.abs(kernel1).max(axis=(0, 1, 2)), np.abs(kernel2).max(axis=(0, 1, 3))


def test_equalization_blank_is_not_done(model, images):
    assert equalization_outcome(None, model, images).status == "not done"


def test_nagels_scale_is_correct(model, images):
    r1, r2 = ranges(model)
    for answer in (np.sqrt(r1 * r2) / r2, np.sqrt(r1 / r2)):
        outcome = equalization_outcome(answer, model, images)
        assert outcome.status == "correct", outcome.message


@pytest.mark.parametrize("mistake, hint", [
    (lambda r1, r2: r1 / r2, "swap their channel ranges"),  # no square root
    (lambda r1, r2: np.sqrt(r2 / r1), "upside down"),
    (lambda r1, r2: -np.sqrt(r1 / r2), "s > 0"),  # a negative scale changes what the ReLU lets through
    (lambda r1, r2: np.ones_like(r1), "makes the two equal"),
    (lambda r1, r2: np.ones(6), "one scale per channel"),  # conv2's output channels
])
def test_each_equalization_mistake_gets_a_hint_without_the_answer(mistake, hint, model, images):
    outcome = equalization_outcome(mistake(*ranges(model)), model, images)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "sqrt" not in outcome.message
