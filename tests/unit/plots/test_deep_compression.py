"""The stage-by-stage picture of lesson 09: two panels per model, bars that are the table's ratios."""

import numpy as np
import pandas as pd
import pytest

from qlab.plots.deep_compression import plot_stages


def _table(model="mnist_cnn"):
    return pd.DataFrame({"model": model, "stage": ["float32", "pruned", "PCQAT int8"],
                         "bytes": [900_000, 900_000, 230_000], "gzip ratio": [1.0, 2.9, 15.6],
                         "vs float32 (points)": [0.0, -0.06, -0.09], "vs float32 low": [0.0, -0.19, -0.23],
                         "vs float32 high": [0.0, 0.07, 0.05]})


def test_two_panels_per_model_with_the_tables_ratios_as_bars():
    fig = plot_stages(pd.concat([_table(), _table("mobilenet_v1")], ignore_index=True))
    assert len(fig.axes) == 4
    size_ax = fig.axes[0]
    widths = sorted(round(p.get_width(), 3) for p in size_ax.patches)
    # stored ratios (1, 1, 900/230) and compressed ratios (1, 2.9, 15.6), one bar each
    assert widths == sorted([1.0, 1.0, round(900 / 230, 3), 1.0, 2.9, 15.6])
    height = dict(zip([t.get_text() for t in size_ax.get_yticklabels()], size_ax.get_yticks()))
    assert height["float32"] > height["pruned"] > height["PCQAT int8"]  # read top to bottom, as the table
    assert size_ax.get_title(loc="left") == "mnist_cnn"
    assert np.allclose(fig.axes[1].lines[0].get_xdata(), [0.0, -0.06, -0.09])


def test_a_table_without_the_study_columns_is_refused():
    with pytest.raises(TypeError, match="lacks columns"):
        plot_stages(pd.DataFrame({"model": ["x"]}))
    with pytest.raises(ValueError, match="no rows"):
        plot_stages(_table().iloc[:0])
