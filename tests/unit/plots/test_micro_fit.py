"""The fit picture of lesson 13: a point per file TFLM runs, a box per board, the refusals counted."""

import numpy as np
import pandas as pd
import pytest

from qlab.conversion.micro_boards import NRF52840, STM32H743ZI
from qlab.plots.micro_fit import fit_points, plot_fit


def _table():
    return pd.DataFrame({"model": ["a", "a", "b", "b"], "variant": ["int8", "dynamic", "int8", "int4"],
                         "flash bytes": [235_064, 232_408, 2_720_536, 122_552],
                         "arena bytes": [31_120, None, 182_720, None],
                         "refusal": [None, "float ops: CONV_2D x2", None,
                                     "TFLM's FULLY_CONNECTED kernel refuses node 5: ... was not true"]})


def test_points_are_the_files_tflm_runs_and_refusals_are_counted_by_kind():
    runs, kinds = fit_points(_table())
    assert runs["variant"].tolist() == ["int8", "int8"]
    assert kinds == {"float ops": 1, "TFLM's FULLY_CONNECTED kernel refuses node 5": 1}


def test_each_file_is_a_point_at_its_flash_and_arena_and_each_board_a_box():
    fig = plot_fit(_table(), (NRF52840, STM32H743ZI))
    ax = fig.axes[0]
    points = np.vstack([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(points, [[235_064 / 1024, 31_120 / 1024], [2_720_536 / 1024, 182_720 / 1024]])
    corners = [(line.get_xdata()[1], line.get_ydata()[1]) for line in ax.lines]
    assert corners == [(896, 224), (1920, 480)]  # the model and arena budgets in KiB
    assert "refused by TFLM (2)" in fig.texts[0].get_text()


def test_a_table_that_is_not_a_micro_study_is_refused():
    with pytest.raises(TypeError, match="lacks columns"):
        plot_fit(pd.DataFrame({"model": ["x"]}), (NRF52840,))
    with pytest.raises(ValueError, match="no rows"):
        plot_fit(_table().iloc[:0], (NRF52840,))
