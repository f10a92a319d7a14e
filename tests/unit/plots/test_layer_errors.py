"""A real model's per-layer error, from the debugger's table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qlab.numerics.metrics import ROUNDING_NOISE
from qlab.plots.layer_errors import (depth_error_curves, draw_depth_profile, draw_layer_profile,
                                     layer_error_profile, plot_error_by_depth,
                                     plot_float_layer_recovery, plot_layer_errors)

# qlab.ptq.debug.layer_error_table's shape: worst first, op_index gives the graph order
DEBUG_TABLE = pd.DataFrame({"op_index": [2, 0, 1], "keras_layer": ["fc", "conv", "dw"],
                            "num_elements": [10, 100, 50], "rmse/scale": [0.9, 0.2, 0.4],
                            "max_abs_error": [0.3, 0.1, 0.2], "mean_error": [0.0, 0.01, -0.01],
                            "layer": ["t2", "t0", "t1"]})


def test_the_debugger_table_is_read_in_graph_order():
    names, values, column = layer_error_profile(DEBUG_TABLE)
    assert names == ["conv", "dw", "fc"] and column == "rmse/scale"
    np.testing.assert_allclose(values, [0.2, 0.4, 0.9])
    assert layer_error_profile(DEBUG_TABLE, "max_abs_error")[1].tolist() == [0.1, 0.2, 0.3]


def test_a_dict_is_read_as_it_is():
    assert layer_error_profile({"a": 1.0, "b": 2.0})[0] == ["a", "b"]


def test_anything_else_gets_an_error_that_names_what_is_expected():
    with pytest.raises(ValueError, match="error_column 'nope'"):
        layer_error_profile(DEBUG_TABLE, "nope")
    with pytest.raises(TypeError, match="layer_error_table"):
        layer_error_profile(pd.DataFrame({"layer": ["conv"], "rmse": [0.1]}))
    with pytest.raises(TypeError, match="layer_error_table"):
        layer_error_profile(np.array([1.0, 2.0]))


def test_both_pictures_draw_one_bar_per_layer_and_the_noise_floor():
    fig = plot_layer_errors(DEBUG_TABLE)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv", "dw", "fc"]
    assert len(ax.patches) == 3 and ax.lines[0].get_ydata()[0] == pytest.approx(ROUNDING_NOISE)
    profile = draw_layer_profile(DEBUG_TABLE)
    assert len(profile.axes[0].patches) == 3


# qlab.ptq.depth_error.error_by_depth's shape: one row per point, in graph order
DEPTH_TABLE = pd.DataFrame({"depth": [1, 2, 3, 4], "keras_layer": ["c1", "dw", "add", "fc"],
                            "relative_rmse": [0.01, 0.02, 0.03, 0.05],
                            "same_input_relative_rmse": [0.01, 0.008, 0.0, 0.01]})


def test_error_by_depth_draws_both_curves_on_one_log_axis():
    fig = plot_error_by_depth(DEPTH_TABLE)
    (ax,) = fig.axes
    accumulated, same_input = ax.lines
    np.testing.assert_allclose(accumulated.get_ydata(), [0.01, 0.02, 0.03, 0.05])
    # a pass-through point (error 0) is left out of the log plot, not drawn at -inf
    assert np.isnan(same_input.get_ydata()[2])
    assert ax.get_yscale() == "log" and "depth" in ax.get_xlabel()
    only_accumulated = DEPTH_TABLE.drop(columns="same_input_relative_rmse")
    assert len(draw_depth_profile(only_accumulated).axes[0].lines) == 1


def test_depth_curves_reject_another_table():
    with pytest.raises(TypeError, match="error_by_depth"):
        depth_error_curves(DEBUG_TABLE)


RECOVERY = pd.DataFrame({"order": ["debugger"] * 3 + ["greedy"] * 3, "k": [0, 1, 2] * 2,
                         "keras_layer": ["", "dense", "conv2", "", "conv2", "dense"],
                         "accuracy": [0.75, 0.98, 0.99, 0.75, 0.8, 0.99],
                         "kb_added": [0.0, 600.0, 654.0, 0.0, 54.0, 654.0],
                         "float32_accuracy": [0.99] * 6})


def test_recovery_plot_has_one_line_per_order_and_the_float_line():
    fig = plot_float_layer_recovery(RECOVERY)
    (ax,) = fig.axes
    lines = [line for line in ax.lines if len(line.get_xdata()) == 3]
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0].get_xdata(), [0, 600, 654])
    np.testing.assert_allclose(lines[0].get_ydata(), [75, 98, 99])
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(99)
    assert [t.get_text() for t in ax.texts][:2] == ["+dense", "+conv2"]
    with pytest.raises(TypeError, match="float_layer_recovery"):
        plot_float_layer_recovery(DEBUG_TABLE)
