"""Lesson 07's checks: the scale against TFMOT's weight quantizer, the QuantizeConfig against TFMOT's own for Dense."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook.check import grade
from qlab.zoo.keras2 import keras, tfmot
from qlab.zoo.seed import set_seed

quantizers = tfmot.quantization.keras.quantizers
RNG = np.random.default_rng(0)
KERNEL = (0.1 * RNG.normal(size=(64, 16))).astype(np.float32)
KERNEL[3, 5] = -2 * np.abs(KERNEL).max()  # the largest magnitude is negative: max |w| != max w
MAGNITUDE = float(np.abs(KERNEL).max())


def scale_outcome(scale, num_bits=4):
    return grade("07.weight_scale", scale, kernel=KERNEL, num_bits=num_bits)


def test_the_scale_is_correct_against_tfmots_quantizer():
    assert scale_outcome(MAGNITUDE / 7).status == "correct"
    assert scale_outcome(np.float32(MAGNITUDE / 127), num_bits=8).status == "correct"
    assert scale_outcome(...).status == "not done"


@pytest.mark.parametrize("scale, hint", [
    (MAGNITUDE / 8, "narrow range drops the most negative code"),
    ((KERNEL.max() - KERNEL.min()) / 14, "symmetric: the grid is centred on 0"),
    (2 * MAGNITUDE / 15, "2^b - 1 levels"),
    (KERNEL.max() / 7, "negative weights too"),
    (MAGNITUDE / 127, "not 8"),
    (np.abs(KERNEL).max(axis=0) / 7, "one scale for the whole kernel"),
    (-MAGNITUDE / 7, "positive"),
    (MAGNITUDE / 5, "neighbouring levels"),
])
def test_each_scale_mistake_gets_a_hint_without_the_answer(scale, hint):
    outcome = scale_outcome(scale)
    assert outcome.status == "wrong" and hint in outcome.message
    assert f"{MAGNITUDE / 7:.3g}" not in outcome.message


def dense_model():
    set_seed(0)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="dense")(keras.layers.Flatten()(x))
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


X = RNG.uniform(size=(16, 6, 6, 1)).astype(np.float32)


class Correct(tfmot.quantization.keras.QuantizeConfig):
    """The exercise's solution: what TFMOT's n-bit scheme gives a Dense layer at 4 weight bits."""

    weight_quantizer = dict(num_bits=4, per_axis=False, symmetric=True, narrow_range=True)

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, quantizers.LastValueQuantizer(**self.weight_quantizer))]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                                     narrow_range=False))]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


class Blank(tfmot.quantization.keras.QuantizeConfig):
    ...


class HalfWritten(tfmot.quantization.keras.QuantizeConfig):
    get_weights_and_quantizers = Correct.get_weights_and_quantizers


class PerChannel(Correct):
    weight_quantizer = dict(num_bits=4, per_axis=True, symmetric=True, narrow_range=True)


class EightBitWeights(Correct):
    weight_quantizer = dict(num_bits=8, per_axis=False, symmetric=True, narrow_range=True)


class OutputQuantized(Correct):  # LowBitWeights' layout
    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]


class BiasToo(Correct):
    def get_weights_and_quantizers(self, layer):
        return super().get_weights_and_quantizers(layer) + [(layer.bias, quantizers.LastValueQuantizer(
            num_bits=4, per_axis=False, symmetric=True, narrow_range=True))]


class KernelNotSet(Correct):
    def set_quantize_weights(self, layer, quantize_weights):
        pass


class ActivationNotSet(Correct):
    def set_quantize_activations(self, layer, quantize_activations):
        pass


def config_outcome(config):
    return grade("07.dense_config", config, model=dense_model(), x=X)


def test_the_config_is_correct_against_tfmots_and_the_blank_is_not_done():
    assert config_outcome(Correct).status == "correct"
    assert config_outcome(Correct()).status == "correct"
    assert config_outcome(Blank).status == "not done"


@pytest.mark.parametrize("config, hint", [
    (PerChannel, "round the kernel per tensor"),
    (EightBitWeights, "the kernel gets 8 bits"),
    (OutputQuantized, "quantizes the activation function instead"),
    (BiasToo, "round the kernel only"),
    (KernelNotSet, "set_quantize_weights must put the rounded kernel back"),
    (ActivationNotSet, "set_quantize_activations must put the quantized activation back"),
    (HalfWritten, "write the method(s)"),
])
def test_each_config_mistake_gets_a_hint_that_names_it(config, hint):
    outcome = config_outcome(config)
    assert outcome.status == "wrong" and hint in outcome.message
    assert "LastValueQuantizer(num_bits=4" not in outcome.message
