"""Range estimators on real activations through TFMOT: the quantizers found, the ranges set, the file."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq import ranges
from qlab.zoo.keras2 import keras
from qlab.numerics.calibration import mse_optimal_range, percentile_range


@pytest.fixture(scope="module")
def smoke_cnn():
    """The smoke-size mnist_cnn, from the session's shared cache (conftest)."""
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), (x_test, _) = mnist_for("mnist_cnn", "smoke")
    return model, x_train[:100], x_test


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                             keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="out")], name="tiny")


def test_every_activation_quantizer_maps_to_the_float_tensor_it_sees(smoke_cnn):
    model, _, _ = smoke_cnn
    found = ranges.activation_quantizers(ranges.quantization_aware_model(model))
    assert [(q.kind, q.tensor) for q in found] == [
        ("input", ranges.INPUT), ("post_activation", "conv1"), ("post_activation", "conv2"),
        ("post_activation", "dense"), ("post_activation", "logits")]
    assert all(q.min_var.name.endswith("_min:0") and q.max_var.name.endswith("_max:0") for q in found)


@pytest.mark.slow
def test_minmax_ranges_replace_every_initial_range_and_are_the_observed_ones(smoke_cnn):
    model, x_calib, _ = smoke_cnn
    qat_model, table = ranges.quantize_with_ranges(model, x_calib, "minmax")
    assert ranges.initial_ranges_left(qat_model) == []  # nothing left at TFMOT's [-6, 6]
    conv1 = np.asarray(keras.Model(model.inputs, model.get_layer("conv1").output)(x_calib))
    row = table.set_index("tensor").loc["conv1"]
    assert row["range min"] == 0.0 and row["range max"] == pytest.approx(float(conv1.max()), rel=1e-6)
    variables = {v.name.split("/")[-1][:-2]: v.numpy() for v in qat_model.get_layer("quant_conv1").weights}
    assert variables["post_activation_max"] == pytest.approx(float(conv1.max()), rel=1e-6)
    # the weight quantizer's range is the kernel's own per-channel max |w| (symmetric)
    kernel = model.get_layer("conv1").kernel.numpy()
    np.testing.assert_allclose(variables["kernel_max"], np.abs(kernel).max(axis=(0, 1, 2)), rtol=1e-6)
    assert table.loc[table["kind"] == "input", ["range min", "range max"]].values.tolist() == [[0.0, 1.0]]


@pytest.mark.slow
def test_percentile_and_mse_ranges_follow_the_numpy_estimators(smoke_cnn):
    model, x_calib, _ = smoke_cnn
    conv2 = np.asarray(keras.Model(model.inputs, model.get_layer("conv2").output)(x_calib))
    # conv2 holds fewer values than max_values, so the sample is the whole tensor (+ its extremes)
    table = ranges.activation_ranges(model, x_calib, "percentile", max_values=2**24).set_index("tensor")
    assert table.loc["conv2", "range max"] == pytest.approx(float(percentile_range(
        np.concatenate([conv2.ravel(), [conv2.min(), conv2.max()]]), 99.99)[1]), rel=1e-5)
    assert table.loc["conv2", "range max"] < table.loc["conv2", "observed max"]
    mse4 = ranges.activation_ranges(model, x_calib, "mse", 4, max_values=2**24).set_index("tensor")
    expected = mse_optimal_range(np.concatenate([conv2.ravel(), [conv2.min(), conv2.max()]]), num_bits=4)
    assert mse4.loc["conv2", "range max"] == pytest.approx(float(expected[1]), rel=1e-5)
    assert mse4["clipped %"].mean() > 0  # at 4 bits the MSE-optimal range clips


@pytest.mark.slow
def test_minmax_file_agrees_with_the_converters_int8(smoke_cnn):
    model, x_calib, x_test = smoke_cnn
    agreement = ranges.minmax_agreement(model, x_calib, x_test)
    assert agreement["top1_agreement"] >= 0.99
    # every activation gets the converter's scale and zero point; only Dense weights differ
    # (TFMOT: per-tensor, converter: per-channel)
    assert agreement["matching_activation_params"] == agreement["activation_tensors"] >= 5


@pytest.mark.slow
def test_lower_activation_bits_use_the_n_bit_scheme(smoke_cnn):
    model, x_calib, _ = smoke_cnn
    qat_model, table = ranges.quantize_with_ranges(model, x_calib, "mse", num_bits=4)
    quantizer = qat_model.get_layer("quant_conv1").quantize_config.get_activations_and_quantizers(
        qat_model.get_layer("quant_conv1").layer)[0][1]
    assert quantizer.get_config()["num_bits"] == 4
    assert set(table["num_bits"]) == {4} and ranges.initial_ranges_left(qat_model) == []


@pytest.mark.parametrize("kwargs, error, message", [
    ({"method": "kl"}, ValueError, "method must be one of minmax, percentile, mse, got 'kl'"),
    ({"num_bits": 9}, ValueError, r"num_bits must be an integer in \[2, 8\], got 9"),
    ({"num_bits": 1}, ValueError, r"num_bits must be an integer in \[2, 8\], got 1"),
    ({"x": np.zeros((0, 6, 6, 1), np.float32)}, ValueError, "x is empty"),
    ({"x": np.zeros((4, 7, 7, 1), np.float32)}, ValueError, r"shape \(4, 7, 7, 1\).*\(batch, 6, 6, 1\)"),
    ({"x": [[0.0]]}, TypeError, "x must be a numpy array"),
    ({"x": np.full((4, 6, 6, 1), np.nan, np.float32)}, ValueError, "finite float images"),
])
def test_bad_arguments_fail_with_clear_errors(tiny_model, kwargs, error, message):
    arguments = {"model": tiny_model, "x": np.zeros((4, 6, 6, 1), np.float32), **kwargs}
    with pytest.raises(error, match=message):
        ranges.activation_ranges(**arguments)


def test_ranges_table_must_cover_every_quantizer(tiny_model):
    x = np.random.default_rng(0).uniform(0, 1, (8, 6, 6, 1)).astype(np.float32)
    qat_model = ranges.quantization_aware_model(tiny_model)
    table = ranges.activation_ranges(tiny_model, x, qat_model=qat_model)
    with pytest.raises(ValueError, match="no row for quantizer"):
        ranges.set_activation_ranges(qat_model, table.iloc[1:])
    assert ranges.set_activation_ranges(qat_model, table) == len(table) == 3


def test_a_relu6_range_that_really_reaches_6_is_not_mistaken_for_the_initial_one():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="dense"),
                              keras.layers.ReLU(6.0, name="relu6"), keras.layers.Dense(2, name="out")])
    x = np.random.default_rng(0).normal(0, 100, (16, 4)).astype(np.float32)  # saturates the ReLU6
    fresh = ranges.quantization_aware_model(model)
    assert len(ranges.initial_ranges_left(fresh)) >= len(ranges.activation_quantizers(fresh)) == 3
    qat_model, table = ranges.quantize_with_ranges(model, x, "minmax")
    assert table.set_index("tensor").loc["relu6", "range max"] == 6.0
    assert ranges.initial_ranges_left(qat_model) == []


def test_an_all_zero_weight_channel_is_a_set_range_not_an_initial_one(tiny_model):
    # low-bit rounding can zero a whole channel; its range [0, 0] is the weights' own
    model = keras.models.clone_model(tiny_model)
    weights = tiny_model.get_weights()
    weights[0][..., 1] = 0.0
    model.set_weights(weights)
    x = np.random.default_rng(0).random((8, 6, 6, 1), dtype=np.float32)
    qat_model, _ = ranges.quantize_with_ranges(model, x, "minmax")  # raised before: "still at initial"
    assert ranges.initial_ranges_left(qat_model) == []
    fresh = ranges.quantization_aware_model(model)  # the input's [0, 0] is still an initial range
    assert any("quantize_layer" in name for name in ranges.initial_ranges_left(fresh))
