"""A real model's per-layer error, from the debugger's table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qlab.numerics.metrics import ROUNDING_NOISE
from qlab.plots.layer_errors import draw_layer_profile, layer_error_profile, plot_layer_errors

# qlab.lite.debug.layer_error_table's shape: worst first, op_index gives the graph order
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
