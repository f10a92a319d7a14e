"""Lesson 10's checks: a recipe is graded by the file the LiteRT Quantizer makes with it, on a tiny model.

The model has one op of each kind the exercises are about (CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED), so a single 4-bit config leaves its depthwise kernel in float, as on the
MobileNet of the lesson.
"""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook.check import grade


@pytest.fixture(scope="module")
def lesson():
    from qlab.conversion.converter import convert
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.DepthwiseConv2D(3, activation="relu"), layers.Flatten(), layers.Dense(10)])
    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype(np.float32)
    return {"model": model, "float_file": convert(model, "float32"), "x_calib": x[:40], "x_test": x[40:]}


def recipe(float_file, *configs, **granularity):
    """The recipe a Quantizer holds after ``add_static_config(".*", op, 8, weight_bits, **granularity)`` per config."""
    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(float_file)
    for op, weight_bits in configs:
        q.add_static_config(".*", getattr(qtyping.TFLOperationName, op), 8, weight_bits,
                            **{k: getattr(qtyping.QuantGranularity, v) for k, v in granularity.items()})
    return q.get_quantization_recipe()


def per_tensor(lesson, answer):
    return grade("10.per_tensor", answer, **lesson)


def layered(lesson, answer):
    return grade("10.layered_recipe", answer, float_file=lesson["float_file"], x_calib=lesson["x_calib"])


@pytest.mark.parametrize("exercise", [per_tensor, layered])
@pytest.mark.parametrize("blank", [..., []])  # [] is a fresh Quantizer's recipe: nothing added yet
def test_the_blank_is_not_done(lesson, exercise, blank):
    assert exercise(lesson, blank).status == "not done"


def test_one_tensorwise_config_is_the_converters_per_tensor_model(lesson):
    answer = recipe(lesson["float_file"], ("ALL_SUPPORTED", 8), weight_granularity="TENSORWISE")
    assert per_tensor(lesson, answer).status == "correct"


@pytest.mark.parametrize("configs, granularity, hint", [
    ([("ALL_SUPPORTED", 8)], {}, "one scale per output channel"),  # the default granularity
    ([("ALL_SUPPORTED", 4)], {"weight_granularity": "TENSORWISE"}, "int8 weights are 8 bits"),
    ([("CONV_2D", 8)], {"weight_granularity": "TENSORWISE"}, "still compute in float"),  # not every op
])
def test_each_per_tensor_mistake_gets_its_hint(lesson, configs, granularity, hint):
    outcome = per_tensor(lesson, recipe(lesson["float_file"], *configs, **granularity))
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "TENSORWISE" not in outcome.message


def test_a_recipe_that_is_no_list_says_what_to_pass(lesson):
    outcome = per_tensor(lesson, "static_wi8_ai8")
    assert outcome.status == "wrong" and "get_quantization_recipe()" in outcome.message


def test_the_layered_recipe_is_integer_only_with_int4_conv_and_dense_weights(lesson):
    answer = recipe(lesson["float_file"], ("ALL_SUPPORTED", 8), ("CONV_2D", 4), ("FULLY_CONNECTED", 4))
    assert layered(lesson, answer).status == "correct"


@pytest.mark.parametrize("configs, hint", [
    ([("ALL_SUPPORTED", 4)], "DEPTHWISE_CONV_2D ops compute in float"),  # the lesson's single config
    ([("CONV_2D", 4), ("FULLY_CONNECTED", 4)], "DEPTHWISE_CONV_2D ops compute in float"),  # nothing for the rest
    ([("CONV_2D", 4), ("FULLY_CONNECTED", 4), ("ALL_SUPPORTED", 8)], "replaces the configs added before"),  # reversed
    ([("ALL_SUPPORTED", 8)], "no 4-bit config for CONV_2D"),  # int8 only
])
def test_each_layering_mistake_gets_its_hint(lesson, configs, hint):
    outcome = layered(lesson, recipe(lesson["float_file"], *configs))
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "add_static_config" not in outcome.message
