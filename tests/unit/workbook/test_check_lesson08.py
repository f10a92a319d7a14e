"""Lesson 08's checks: the agreement against LiteRT runs of two files, the selective file against TensorFlow's debugger.

A tiny untrained CNN stands in for the lesson's broken model: the checks compare files and
counts, and need no accuracy worth the name.
"""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook import check
from qlab.workbook.check import grade, lesson08


@pytest.fixture(scope="module")
def lesson():
    from qlab.conversion.converter import convert
    from qlab.ptq import debug
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([layers.Input((10, 10, 1)), layers.Conv2D(8, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.Flatten(), layers.Dense(16, activation="relu"),
                              layers.Dense(10)])
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(96, 10, 10, 1)).astype(np.float32)
    files = {"float32": convert(model, "float32"), "int8_per_tensor": convert(model, "int8_per_tensor", x, 32)}
    errors = debug.layer_error_table(model, x, num_samples=32, per_channel=False)
    return {"model": model, "x": x, "y": rng.integers(0, 10, len(x)), "files": files, "errors": errors}


# --- 08.agreement: the hints, on classes set by hand (the LiteRT runs are stubbed) --------------------------------
FLOAT = np.array([0, 1, 2, 3, 4, 5, 6, 7])
INT8 = np.array([0, 1, 2, 3, 9, 9, 9, 7])  # agrees with float32 on 5 of 8
LABELS = np.array([0, 1, 2, 3, 4, 9, 0, 7])  # float32 right on 0-4 and 7, int8 on 0-3, 5 and 7: accuracy 6/8
# newly wrong: image 4; newly right: image 5 (net 0); int8 wrong on 4 and 6; the files disagree on 4, 5 and 6


@pytest.fixture
def stubbed(monkeypatch):
    classes = {"float": FLOAT, "int8": INT8}
    monkeypatch.setattr(lesson08, "_top1", lambda model_bytes, x: classes[model_bytes])
    return {"files": {"float32": "float", "int8_per_tensor": "int8"}, "x_test": np.zeros(8), "y_test": LABELS}


def test_the_blank_is_not_done(stubbed):
    assert grade("08.agreement", ..., ..., **stubbed).status == "not done"
    assert grade("08.keep_worst_in_float", ..., model=None, x_calib=None, x_test=None, errors=None,
                 num_samples=1).status == "not done"


def test_agreement_and_newly_wrong_are_graded_against_the_runs(stubbed):
    assert grade("08.agreement", 5 / 8, 1, **stubbed).status == "correct"
    assert grade("08.agreement", np.float64(0.625), np.int64(1), **stubbed).status == "correct"


@pytest.mark.parametrize("agreement, newly_wrong, hint", [
    (62.5, 1, "not in percent"),
    (6 / 8, 1, "per-tensor file's accuracy"),  # compared with the labels
    (0.0, 1, "the share of test images"),  # e.g. raw scores compared, or one argmax over everything
    (5 / 8, 2, "every image the per-tensor file gets wrong"),
    (5 / 8, 0, "net change"),
    (5 / 8, 3, "both on the same image"),  # the disagreements
])
def test_each_agreement_mistake_gets_its_hint(stubbed, agreement, newly_wrong, hint):
    outcome = grade("08.agreement", agreement, newly_wrong, **stubbed)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "argmax" not in outcome.message and "0.625" not in outcome.message


def test_the_agreement_check_runs_the_files_with_litert(lesson):
    from qlab.conversion.tflite import predict_tflite

    float_top1, int8_top1 = (predict_tflite(lesson["files"][v], lesson["x"]).argmax(1)
                             for v in ("float32", "int8_per_tensor"))
    right = np.mean(float_top1 == int8_top1), np.sum((float_top1 == lesson["y"]) & (int8_top1 != lesson["y"]))
    context = {"files": lesson["files"], "x_test": lesson["x"], "y_test": lesson["y"]}
    assert grade("08.agreement", *right, **context).status == "correct"
    assert grade("08.agreement", right[0] + 2 / len(lesson["x"]), right[1], **context).status == "wrong"


# --- 08.keep_worst_in_float: the learner's file made as the lesson writes it, with TensorFlow's debugger --------
def debugger_file(lesson, denylist, debug_model=False):
    """The written-out debugger of the lesson (per-tensor weights), quantized with ``denylist`` kept in float."""
    from qlab.conversion.converter import representative_dataset
    from qlab.zoo.keras2 import tf
    from qlab.zoo.quiet import tflite_chatter_silenced

    converter = tf.lite.TFLiteConverter.from_keras_model(lesson["model"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(lesson["x"], 32)
    converter._experimental_disable_per_channel = True
    with tflite_chatter_silenced():
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                             debug_dataset=converter.representative_dataset)
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist)
        return debugger.get_debug_quantized_model() if debug_model else debugger.get_nondebug_quantized_model()


def keep_worst(lesson, answer):
    return grade("08.keep_worst_in_float", answer, model=lesson["model"], x_calib=lesson["x"], x_test=lesson["x"],
                 errors=lesson["errors"], num_samples=32)


def test_the_worst_layer_kept_in_float_is_correct(lesson):
    assert keep_worst(lesson, debugger_file(lesson, [lesson["errors"]["layer"][0]])).status == "correct"


def test_each_denylist_mistake_gets_its_hint(lesson):
    errors = lesson["errors"]
    other = errors.loc[errors["op_name"].isin(["CONV_2D", "FULLY_CONNECTED"]), "layer"]
    other = next(layer for layer in other if layer != errors["layer"][0])
    for answer, hint in ((debugger_file(lesson, [errors["keras_layer"][0]]), "nothing was kept in float"),
                         (debugger_file(lesson, [errors["layer"][0]], debug_model=True), "debug model"),
                         (debugger_file(lesson, [other]), "other layers in float")):
        outcome = keep_worst(lesson, answer)
        assert outcome.status == "wrong" and hint in outcome.message, outcome.message
        assert "errors[" not in outcome.message and "get_nondebug" not in outcome.message


def test_an_answer_that_is_no_file_is_named(lesson):
    outcome = keep_worst(lesson, "my_file.tflite")
    assert outcome.status == "wrong" and "bytes of a .tflite" in outcome.message


def test_both_exercises_are_registered():
    assert {"08.agreement", "08.keep_worst_in_float"} <= set(check.exercises())
