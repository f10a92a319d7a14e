"""Fake-quant placement: the kinds, and the ReLU split on a tiny seeded model (no zoo models)."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.qat import placement
from qlab.zoo.keras2 import keras


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                             keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="out")], name="tiny")


@pytest.mark.parametrize("kind", ["wrong", "", None, "Correct"])
def test_unknown_kind_is_a_value_error_listing_the_valid_ones(tiny_model, kind):
    with pytest.raises(ValueError, match="'correct', 'pre_activation'"):
        placement.wrong_placement_model(tiny_model, kind)


def test_split_relu_moves_the_fused_relu_into_its_own_layer_and_keeps_the_function(tiny_model):
    split = placement.split_relu(tiny_model)
    assert [layer.name for layer in split.layers] == ["conv", "conv_relu", "flat", "out"]
    assert split.get_layer("conv").activation.__name__ == "linear"
    x = np.random.default_rng(0).uniform(0, 1, (5, 6, 6, 1)).astype(np.float32)
    np.testing.assert_allclose(split(x).numpy(), tiny_model(x).numpy(), rtol=1e-6, atol=1e-6)
    assert tiny_model.get_layer("conv").activation.__name__ == "relu"  # the original is untouched


def test_split_relu_refuses_a_functional_model(tiny_model):
    functional = keras.Model(tiny_model.inputs, tiny_model.outputs)
    with pytest.raises(TypeError, match="Sequential"):
        placement.split_relu(functional)


def test_pre_activation_kind_quantizes_before_and_after_the_relu(tiny_model):
    names = lambda layer: {v.name.split("/")[-1][:-2] for v in layer.weights}  # noqa: E731
    correct = placement.wrong_placement_model(tiny_model, "correct")
    assert "post_activation_min" in names(correct.get_layer("quant_conv"))  # once, after the ReLU
    wrong = placement.wrong_placement_model(tiny_model, "pre_activation")
    assert wrong.get_layer("quant_conv").layer.activation.activation.__name__ == "linear"
    assert "post_activation_min" in names(wrong.get_layer("quant_conv"))  # on the linear output
    assert "output_min" in names(wrong.get_layer("quant_conv_relu"))  # and again after the ReLU


def test_per_tensor_before_fold_needs_a_conv_followed_by_batch_norm(tiny_model):
    with pytest.raises(ValueError, match="BatchNormalization"):
        placement.wrong_placement_model(tiny_model, "per_tensor_before_fold")


def test_per_tensor_before_fold_leaves_nothing_between_conv_and_batch_norm():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, use_bias=False, name="conv"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(name="relu"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="out")], name="bn")
    qat_model = placement.wrong_placement_model(model, "per_tensor_before_fold")
    conv, bn = qat_model.get_layer("quant_conv"), qat_model.get_layer("quant_bn")
    assert type(conv.quantize_config).__name__ == "PerTensorWeightsQuantizeConfig"
    ranges = {v.name.split("/")[-1][:-2]: v.shape for v in conv.weights}
    assert ranges["kernel_min"] == ()  # one range for the whole kernel
    assert not [v for v in conv.weights + bn.weights if "activation" in v.name or "output" in v.name]
    assert "output_min" in {v.name.split("/")[-1][:-2] for v in qat_model.get_layer("quant_relu").weights}


def test_applicable_kinds_and_a_model_without_a_fused_relu(tiny_model):
    assert placement.applicable_kinds(tiny_model) == ["correct", "pre_activation"]
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")], name="plain")
    assert placement.applicable_kinds(plain) == ["correct"]
    with pytest.raises(ValueError, match="no Conv2D/DepthwiseConv2D/Dense layer with activation='relu'"):
        placement.split_relu(plain)
