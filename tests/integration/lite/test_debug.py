"""QuantizationDebugger per-layer table and selective quantization on the smoke CNN."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")


@pytest.mark.slow
def test_layer_errors_and_selective_quantization():  # smoke model from the shared cache
    from qlab.lite.debug import layer_error_table, selective_quantization
    from qlab.numerics.metrics import ROUNDING_NOISE
    from qlab.lite.models import load_or_train, mnist_for
    from qlab.plots.layer_errors import plot_layer_errors

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), (x_test, y_test) = mnist_for("mnist_cnn", "smoke")
    errors = layer_error_table(model, x_train, num_samples=32)
    assert {"conv1", "conv2", "dense"} <= set(errors["keras_layer"])
    assert errors["rmse/scale"].is_monotonic_decreasing
    weighted = errors[errors["op_name"].isin(["CONV_2D", "FULLY_CONNECTED"])]
    # int8 layer outputs carry at least a fraction of rounding noise, and not 10 steps of it
    assert (weighted["rmse/scale"] > 0.05).all() and (weighted["rmse/scale"] < 10 * ROUNDING_NOISE).all()
    # max-pool and reshape pass int8 values through unchanged
    passthrough = errors[errors["op_name"].isin(["MAX_POOL_2D", "RESHAPE"])]
    assert (passthrough["rmse/scale"] < 1e-3).all()

    table = selective_quantization(model, x_train, x_test, y_test, (0, 2), num_samples=32,
                                   errors=errors)
    assert list(table["num_float_layers"]) == [0, 2] and len(table["denylist"][1]) == 2
    assert table["size_bytes"][0] < table["size_bytes"][1] < table["float32_size_bytes"][0]
    assert np.isfinite(table["accuracy"]).all()
    assert len(plot_layer_errors(errors).axes[0].patches) == len(errors)


@pytest.mark.slow
def test_weight_scale_spread_lists_per_channel_tensors():
    from qlab.lite.conversion import convert
    from qlab.lite.debug import weight_scale_spread
    from qlab.lite.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), _ = mnist_for("mnist_cnn", "smoke")
    spread = weight_scale_spread(convert(model, "int8_per_channel", x_train, 16))
    assert sorted(spread["channels"]) == [10, 32, 64, 128]
    assert (spread["max/min scale"] >= 1).all()
    np.testing.assert_allclose(spread["levels_of_smallest_channel_if_per_tensor"],
                               127 / spread["max/min scale"])
    assert weight_scale_spread(convert(model, "int8_per_tensor", x_train, 16)).empty


@pytest.mark.slow
def test_the_debugger_table_is_a_layer_error_profile_for_the_widget():
    from qlab.lite.debug import layer_error_table
    from qlab.lite.keras2 import keras
    from qlab.plots.accumulation import accumulation_view, draw_error_accumulation
    from qlab.plots.layer_errors import layer_error_profile

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    table = layer_error_table(model, x, num_samples=8)
    names, values, column = layer_error_profile(table)
    assert column == "rmse/scale" and len(names) >= 3
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    fig = draw_error_accumulation(accumulation_view(depth=3, batch=32, model_profile=table))
    assert len(fig.axes) == 2
