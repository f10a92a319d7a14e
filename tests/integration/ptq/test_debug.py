"""QuantizationDebugger per-layer table and selective quantization on the smoke CNN."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")


@pytest.mark.slow
def test_layer_errors_and_selective_quantization():  # smoke model from the shared cache
    from qlab.ptq.debug import layer_error_table, selective_quantization
    from qlab.numerics.metrics import ROUNDING_NOISE
    from qlab.zoo.models import load_or_train, mnist_for
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
    from qlab.conversion.converter import convert
    from qlab.ptq.debug import weight_scale_spread
    from qlab.zoo.models import load_or_train, mnist_for

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
    from qlab.ptq.debug import layer_error_table
    from qlab.zoo.keras2 import keras
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


@pytest.fixture(scope="module")
def broken_cnn():
    """The smoke CNN made to break under per-tensor int8 by a function-preserving channel rescaling."""
    from qlab.ptq.equalize import rescale_channels
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), (x_test, y_test) = mnist_for("mnist_cnn", "smoke")
    return rescale_channels(model, spread=100.0, seed=0), x_train, x_test, y_test


@pytest.mark.slow
def test_per_tensor_debugger_finds_the_rescaled_layers_and_float_copies_recover(broken_cnn):
    from qlab.ptq.debug import float_layer_recovery, layer_error_table
    from qlab.numerics.metrics import ROUNDING_NOISE

    model, x_train, x_test, y_test = broken_cnn
    per_tensor = layer_error_table(model, x_train, num_samples=32, per_channel=False)
    per_channel = layer_error_table(model, x_train, num_samples=32, per_channel=True)
    # per-tensor weights collapse the small channels: the worst layer is many rounding steps off,
    # and worse than with per-channel weights of the same model
    assert per_tensor["rmse/scale"][0] > max(5 * ROUNDING_NOISE, per_channel["rmse/scale"][0])
    np.testing.assert_allclose(per_tensor["rmse"], per_tensor["rmse/scale"] * per_tensor["scale"])

    table = float_layer_recovery(model, x_train, x_test, y_test, max_float_layers=2,
                                 per_channel=False, num_samples=32, errors=per_tensor,
                                 verbose=False)
    assert list(table["k"]) == [0, 1, 2] and list(table["layer"][1:]) == list(per_tensor["layer"][:2])
    loss = table["float32_accuracy"][0] - table["accuracy"][0]
    assert loss > 0.05  # the per-tensor model really is broken (smoke: 500 test images)
    assert table["recovered_share"][2] >= 0.5
    np.testing.assert_allclose(table["recovered_share"],
                               (table["accuracy"] - table["accuracy"][0]) / loss)
    assert table["kb_added"][0] == 0 and (np.diff(table["kb_added"]) > 0).all()


@pytest.mark.slow
def test_greedy_order_picks_weight_layers_without_test_labels(broken_cnn):
    import pandas as pd

    from qlab.ptq.debug import float_layer_recovery
    from qlab.plots.layer_errors import plot_float_layer_recovery

    model, x_train, x_test, y_test = broken_cnn
    greedy = float_layer_recovery(model, x_train, x_test, y_test, max_float_layers=1,
                                  per_channel=False, num_samples=32, order="greedy",
                                  greedy_samples=64, verbose=False)
    assert greedy["keras_layer"][1] in {"conv1", "conv2", "dense", "(model output)"}
    assert (greedy["order"] == "greedy").all()
    per_kb = float_layer_recovery(model, x_train, x_test, y_test, max_float_layers=1,
                                  per_channel=False, num_samples=32, order="greedy_per_kb",
                                  greedy_samples=64, verbose=False)
    # the dense layer holds most of the weights: win for win, a conv layer is far cheaper
    assert per_kb["kb_added"][1] <= greedy["kb_added"][1]
    assert per_kb["float32_size_kb"][0] > per_kb["size_kb"][1]
    fig = plot_float_layer_recovery(pd.concat([greedy, per_kb]))
    assert len(fig.axes[0].lines) == 3


@pytest.mark.slow
def test_float_layer_recovery_rejects_bad_arguments(broken_cnn):
    import pandas as pd

    from qlab.ptq.debug import float_layer_recovery, layer_error_table

    model, x_train, x_test, y_test = broken_cnn
    errors = pd.DataFrame({"layer": ["a"], "keras_layer": ["a"], "op_name": ["CONV_2D"]})
    with pytest.raises(ValueError, match="order must be one of"):
        float_layer_recovery(model, x_train, x_test, y_test, order="random", errors=errors)
    with pytest.raises(ValueError, match=r"max_float_layers must be an integer in \[1, 1\]"):
        float_layer_recovery(model, x_train, x_test, y_test, max_float_layers=3, errors=errors)
    with pytest.raises(ValueError, match="greedy_candidates must be"):
        float_layer_recovery(model, x_train, x_test, y_test, order="greedy", errors=errors,
                             max_float_layers=1, greedy_candidates=0)
    with pytest.raises(ValueError, match="chooses among 1 weight layers"):
        float_layer_recovery(model, x_train, x_test, y_test, order="greedy",
                             errors=pd.concat([errors, errors.assign(op_name="ADD", layer="b")]),
                             max_float_layers=2)
    with pytest.raises(TypeError, match="per_channel must be True"):
        layer_error_table(model, x_train, num_samples=8, per_channel="no")


def test_recovery_milestone_finds_the_first_step_past_the_share():
    import pandas as pd

    from qlab.ptq.debug import recovery_milestone

    table = pd.DataFrame({"order": ["greedy_per_kb"] * 4, "k": [0, 1, 2, 3],
                          "keras_layer": ["", "conv1", "conv2", "dense"],
                          "accuracy": [0.78, 0.81, 0.95, 0.99], "kb_added": [0.0, 0.8, 55.0, 655.0],
                          "recovered_share": [0.0, 0.13, 0.78, 0.99]})
    half = recovery_milestone(table, 0.5)
    assert half["k"] == 2 and half["layers"] == ["conv1", "conv2"] and half["kb_added"] == 55.0
    assert recovery_milestone(table, 1.0)["k"] is None
    with pytest.raises(ValueError, match="share must be in"):
        recovery_milestone(table, 0)
    with pytest.raises(TypeError, match="float_layer_recovery"):
        recovery_milestone(table.drop(columns="recovered_share"))
    # two orders' tables concatenated would interleave their steps when sorted by k
    mixed = pd.concat([table, table.assign(order="debugger")], ignore_index=True)
    with pytest.raises(ValueError, match="table holds 2 orders"):
        recovery_milestone(mixed, 0.5)


@pytest.mark.parametrize("arguments, message", [
    ({"greedy_samples": 0}, "greedy_samples must be an integer"),
    ({"greedy_samples": 2.5}, "greedy_samples must be an integer"),
    ({"greedy_samples": True}, "greedy_samples must be an integer"),
    ({"x_calib": np.zeros((0, 4, 4, 1), np.float32)}, "x_calib is empty"),
    ({"x_test": np.zeros((0, 4, 4, 1), np.float32), "y_test": np.zeros(0)}, "x_test is empty"),
    ({"y_test": np.zeros(2)}, "x_test has 3 images but y_test has 2 labels"),
    ({"order": "random"}, "order must be one of"),
])
def test_float_layer_recovery_checks_its_data_before_touching_the_model(arguments, message):
    from qlab.ptq.debug import float_layer_recovery

    # no model needed: these checks run before the debugger, so a bad call costs no conversion
    data = {"x_calib": np.zeros((4, 4, 4, 1), np.float32), "x_test": np.zeros((3, 4, 4, 1), np.float32),
            "y_test": np.zeros(3, np.int64)}
    with pytest.raises(ValueError, match=message):
        float_layer_recovery(None, **{**data, **arguments}, verbose=False)
