"""The range-trajectory picture draws what its table says, and names a wrong table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from qlab.plots.qat_ranges import plot_range_trajectories


def _trajectory():
    rows = []
    for start, (lo, hi) in {"default": (-6.0, 6.0), "calibrated": (0.0, 1.0)}.items():
        for step in range(3):
            for name in ("quant_conv1", "quant_dense"):
                rows.append({"step": step, "quantizer": name, "min": lo + step, "max": hi - step,
                             "data_min": 0.0, "data_max": 1.0, "start": start})
    return pd.DataFrame(rows)


def test_one_panel_per_quantizer_two_lines_per_start_and_the_data_range():
    fig = plot_range_trajectories(_trajectory())
    assert [ax.get_title() for ax in fig.axes] == ["quant_conv1", "quant_dense"]
    ax = fig.axes[0]
    lines = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()]
    assert lines[:4] == [([0, 1, 2], [6.0, 5.0, 4.0]), ([0, 1, 2], [-6.0, -5.0, -4.0]),
                         ([0, 1, 2], [1.0, 0.0, -1.0]), ([0, 1, 2], [0.0, 1.0, 2.0])]
    assert [line.get_ydata()[0] for line in ax.get_lines()[4:]] == [0.0, 1.0]  # data min, max dashed
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["default", "calibrated", "data"]
    assert not plt.get_fignums()


def test_without_a_start_column_or_data_range_it_still_draws():
    table = _trajectory()
    table = table[table["start"] == "default"].drop(columns="start").assign(data_min=float("nan"))
    ax = plot_range_trajectories(table).axes[0]
    assert len(ax.get_lines()) == 3  # min, max and only the finite data max


def test_a_wrong_table_is_named():
    with pytest.raises(ValueError, match=r"\['data_min', 'data_max'\]"):
        plot_range_trajectories(_trajectory().drop(columns=["data_min", "data_max"]))
    with pytest.raises(ValueError, match="empty"):
        plot_range_trajectories(_trajectory().iloc[:0])
