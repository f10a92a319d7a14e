"""QuantizationDebugger per-layer table and selective quantization on the smoke CNN."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")


@pytest.mark.slow
def test_layer_errors_and_selective_quantization(artifacts):
    from qlab.debug import ROUNDING_NOISE, layer_error_table, selective_quantization
    from qlab.models import load_or_train, mnist_for
    from qlab.plots import plot_layer_errors

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
