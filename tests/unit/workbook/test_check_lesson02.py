"""qlab.check for lesson 02: the accumulator and the requantization of an int8 dense layer.

Blanks and the hints come from the lesson's own numbers (numpy only); a stand-in layer checks the last
stage's logic without TensorFlow, and the real one (slow: a conversion) is a Dense layer TensorFlow
converts to int8, run by the LiteRT interpreter.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qlab.numerics.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from qlab.workbook.check import grade
from qlab.workbook.check import lesson02
from qlab.workbook.check.lesson02 import LiteRTDense, fully_connected_requantize, is_blank_function

_rng = np.random.default_rng(0)
Q_A, Q_W = _rng.integers(-128, 128, 64).astype(np.int8), _rng.integers(-127, 128, 64).astype(np.int8)
ACCUMULATE = {"q_a": Q_A, "z_a": -128, "q_w": Q_W}
M0, SHIFT = quantize_multiplier(0.02 * 0.005 / 0.05)  # the lesson's M = 0.002
REQUANTIZE = {"accumulators": np.array([3353, -14284, 24197, 1_000_000], np.int32), "M0": M0, "shift": SHIFT,
              "zero_point": -3}


def accumulate(q_a, z_a, q_w):
    return int(np.sum((q_a.astype(np.int32) - z_a) * q_w.astype(np.int32)))


def requantize(acc, M0, shift, zero_point):
    acc, total = acc.astype(np.int64), 31 - shift
    return np.clip(((acc * int(M0) + (1 << (total - 1))) >> total) + zero_point, -128, 127).astype(np.int8)


def blank(*args):
    """The exercise's blank, as the lesson has it."""
    # YOUR CODE STARTS HERE
    ...
    # YOUR CODE ENDS HERE


def no_return(*args):
    np.zeros(3)


def stand_in_layer(seed: int = 0) -> LiteRTDense:
    """A layer like the converted one, its outputs from qlab's port of the kernel (no TensorFlow)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (8, 64)).astype(np.int8)
    weights = rng.integers(-127, 128, (64, 4)).astype(np.int8)
    multiplier, shift = quantize_multiplier(0.0007)
    layer = LiteRTDense(x, -37, weights, np.zeros(4, np.int32), multiplier, shift, 11, np.zeros((8, 4), np.int8))
    return dataclasses.replace(layer, outputs=fully_connected_requantize(layer.accumulators(), multiplier, shift, 11))


def test_a_blank_body_is_told_apart_from_code():
    assert is_blank_function(blank)
    assert not is_blank_function(accumulate) and not is_blank_function(no_return)
    assert not is_blank_function(len)  # not Python code: something the learner wrote


@pytest.mark.parametrize("exercise, context", [("02.accumulate", ACCUMULATE), ("02.requantize", REQUANTIZE)])
def test_the_blank_is_not_done_and_a_missing_return_is_named(exercise, context):
    assert grade(exercise, blank, **context).status == "not done"
    assert grade(exercise, ..., **context).status == "not done"
    outcome = grade(exercise, no_return, **context)
    assert outcome.status == "wrong" and "return statement" in outcome.message


@pytest.mark.parametrize("answer, hint", [
    (lambda q_a, z_a, q_w: int(np.sum((q_a - z_a) * q_w)), "numpy computes int8 with int8 in int8"),
    (lambda q_a, z_a, q_w: int(np.dot(q_a.astype(np.int16) - z_a, q_w.astype(np.int16))), "in int16"),
    (lambda q_a, z_a, q_w: int(np.sum(q_a.astype(np.int32) * q_w)), "zero point is missing"),
    (lambda q_a, z_a, q_w: int(np.sum((q_a.astype(np.int32) + z_a) * q_w)), "sign"),
    (lambda q_a, z_a, q_w: (q_a.astype(np.int32) - z_a) * q_w, "their sum"),
    (lambda q_a, z_a, q_w: np.sum((q_a.astype(np.int32) - z_a) * q_w) + 0.5, "an integer"),
    (lambda q_a, z_a, q_w: 12345, "yours is 12,345"),
    (lambda q_a, z_a, q_w: int(np.sum((q_a.astype(np.int32) + 128) * q_w)), "use the function's arguments"),
])
def test_each_accumulator_mistake_gets_its_hint(answer, hint):
    outcome = grade("02.accumulate", answer, **ACCUMULATE)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "astype(np.int32) - z_a" not in outcome.message


def _floor(acc, M0, shift, zero_point):
    return np.clip(((acc.astype(np.int64) * int(M0)) >> (31 - shift)) + zero_point, -128, 127)


def _banker(acc, M0, shift, zero_point):  # float, and np.round takes halves to even
    return np.clip(np.round(acc * (int(M0) / 2 ** (31 - shift))) + zero_point, -128, 127)


def _twice(acc, M0, shift, zero_point):  # the convolutions' double rounding
    return np.clip(multiply_by_quantized_multiplier(acc, M0, shift) + zero_point, -128, 127)


def _int32(acc, M0, shift, zero_point):  # acc * M0 in int32
    return np.clip(((acc * M0 + (1 << (30 - shift))) >> (31 - shift)) + zero_point, -128, 127)


def _lesson_globals(acc, M0, shift, zero_point):  # right only for the lesson's own multiplier
    return requantize(acc, REQUANTIZE["M0"], REQUANTIZE["shift"], REQUANTIZE["zero_point"])


@pytest.mark.parametrize("answer, hint", [
    (_floor, "rounded down"),
    (_banker, "halfway"),
    (_twice, "rounded twice"),
    (_int32, "62 bits"),
    (_lesson_globals, "use the function's arguments"),
    (lambda acc, M0, shift, zero_point: requantize(acc, M0, shift, 0), "zero point (-3) is missing"),
    (lambda acc, M0, shift, zero_point: requantize(acc, M0, shift, 0).astype(np.int64) + zero_point,
     "clamp after adding"),
    (lambda acc, M0, shift, zero_point: requantize(acc, M0, shift, zero_point).astype(np.int64) + 500,
     "outside int8"),
    (lambda acc, M0, shift, zero_point: requantize(acc, M0, shift, zero_point)[:2], "one code per accumulator"),
    (lambda acc, M0, shift, zero_point: acc * 2.0 ** (shift - 31) * int(M0), "integers"),
])
def test_each_requantization_mistake_gets_its_hint(answer, hint):
    outcome = grade("02.requantize", answer, **REQUANTIZE)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message


def test_the_last_stage_compares_with_the_layers_outputs(monkeypatch):
    layer = stand_in_layer()
    monkeypatch.setattr(lesson02, "litert_dense", lambda: layer)
    assert grade("02.accumulate", accumulate, **ACCUMULATE).status == "correct"
    assert grade("02.requantize", requantize, **REQUANTIZE).status == "correct"
    one_off = dataclasses.replace(layer, outputs=np.clip(layer.outputs.astype(np.int64) + 1, -128, 127))
    monkeypatch.setattr(lesson02, "litert_dense", lambda: one_off)
    for exercise, answer, context in (("02.accumulate", accumulate, ACCUMULATE),
                                      ("02.requantize", requantize, REQUANTIZE)):
        outcome = grade(exercise, answer, **context)
        assert outcome.status == "wrong" and "the LiteRT interpreter's" in outcome.message, outcome.message


@pytest.mark.slow
def test_the_converted_layer_is_what_litert_computes_and_the_answers_are_correct():
    layer = lesson02.litert_dense()
    assert layer.outputs.shape == (lesson02.LAYER_ROWS, lesson02.LAYER_UNITS) and layer.outputs.dtype == np.int8
    assert abs(layer.input_zero_point) > 32  # calibrated off centre: forgetting z_a shows
    assert 2**30 <= int(layer.M0) < 2**31
    np.testing.assert_array_equal(
        fully_connected_requantize(layer.accumulators(), layer.M0, layer.shift, layer.output_zero_point), layer.outputs)
    assert len(np.unique(layer.outputs)) > 20  # not saturated: the codes say something
    assert grade("02.accumulate", accumulate, **ACCUMULATE).status == "correct"
    assert grade("02.requantize", requantize, **REQUANTIZE).status == "correct"
