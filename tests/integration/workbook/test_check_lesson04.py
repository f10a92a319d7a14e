"""Lesson 04's checks on the smoke CNN: graded by converting the learner's version and running the file."""

from __future__ import annotations

import numpy as np
import pytest

import qlab
from qlab.workbook.check import grade
from qlab.zoo.keras2 import tf


@pytest.fixture(scope="module")
def lesson():
    model = qlab.load_or_train("mnist_cnn", "smoke", 0)
    (x_train, _), (x_test, _) = qlab.mnist_for("mnist_cnn", "smoke")
    return {"model": model, "x_calib": x_train[:50], "x_test": x_test}


def converter_with(lesson, optimizations=True, int8_ops=True, int8_io=True):
    converter = tf.lite.TFLiteConverter.from_keras_model(lesson["model"])
    converter.representative_dataset = qlab.representative_dataset(lesson["x_calib"], len(lesson["x_calib"]))
    if optimizations:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if int8_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter


def test_untouched_converter_is_not_done(lesson):
    converter = converter_with(lesson, optimizations=False, int8_ops=False, int8_io=False)
    assert grade("04.full_integer", converter, **lesson).status == "not done"


@pytest.mark.parametrize("settings, hint", [
    ({}, None),
    ({"optimizations": False}, "nothing is quantized"),
    ({"int8_ops": False}, "int8 kernels only"),
    ({"int8_io": False}, "input and output types"),
])
def test_full_integer_settings(lesson, settings, hint):
    outcome = grade("04.full_integer", converter_with(lesson, **settings), **lesson)
    if hint is None:
        assert outcome.status == "correct", outcome.message
    else:
        assert outcome.status == "wrong" and hint in outcome.message


def generator_of(images):
    def representative():
        for image in images:
            yield image

    return representative


def camera(lesson):
    return np.round(lesson["x_calib"][..., 0] * 255).astype(np.uint8)


def test_representative_blank_is_not_done_and_the_right_generator_is_correct(lesson):
    def blank():
        ...

    assert grade("04.representative", blank, **lesson).status == "not done"
    right = generator_of([[im[None, :, :, None].astype(np.float32) / 255.0] for im in camera(lesson)])
    assert grade("04.representative", right, **lesson).status == "correct"


@pytest.mark.parametrize("make_items, hint", [
    (lambda c: [im[None, :, :, None].astype(np.float32) / 255.0 for im in c], "list with one array"),
    (lambda c: [[im[None].astype(np.float32) / 255.0] for im in c], "channel axis"),
    (lambda c: [[im[None, :, :, None] / 255.0] for im in c], "float32"),
    (lambda c: [[im[None, :, :, None].astype(np.float32)] for im in c], "trained on pixels in [0, 1]"),
    (lambda c: [[im[None, :, :, None].astype(np.float32) / 255.0] for im in c[:10]], "every one of the 50"),
    (lambda c: [[im[None, :, :, None].astype(np.float32) / 510.0] for im in c], "other activation ranges"),
])
def test_each_representative_mistake_gets_its_hint(lesson, make_items, hint):
    outcome = grade("04.representative", generator_of(make_items(camera(lesson))), **lesson)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
