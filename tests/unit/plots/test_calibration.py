"""The calibration pictures draw what their tables say, and name a wrong table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from qlab.plots.calibration import plot_calibration_failures, plot_estimators, plot_representative_sets


def test_representative_sets_title_each_set_with_its_value_range():
    sets = {"proper": np.full((3, 4, 4, 1), 0.5, np.float32), "pixels_0_255": np.full((2, 4, 4, 1), 255.0)}
    fig = plot_representative_sets(sets)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["proper\n[0.5, 0.5], n=3", "pixels_0_255\n[255, 255], n=2"]
    assert not plt.get_fignums()
    with pytest.raises(ValueError, match="sets is empty"):
        plot_representative_sets({})


def test_failure_bars_are_accuracies_in_percent_one_group_per_model():
    table = pd.DataFrame({"model": ["a", "a", "b", "b"], "representative set": ["proper", "blank"] * 2,
                          "accuracy": [0.99, 0.11, 0.98, 0.5], "float32_accuracy": [0.99, 0.99, 0.985, 0.985]})
    ax = plot_calibration_failures(table).axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [99.0, 11.0, 98.0, 50.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["proper", "blank"]
    with pytest.raises(ValueError, match="float32_accuracy"):
        plot_calibration_failures(table.drop(columns="float32_accuracy"))


def test_estimator_curves_one_panel_per_model_one_line_per_method_sorted_by_bits():
    table = pd.DataFrame({"model": ["m"] * 4, "method": ["minmax", "minmax", "mse", "mse"],
                          "num_bits": [8, 4, 8, 4], "output_sqnr_db": [40.0, 15.0, 41.0, 20.0]})
    fig = plot_estimators(table)
    (ax,) = fig.axes
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert lines == {"minmax": ([4, 8], [15.0, 40.0]), "mse": ([4, 8], [20.0, 41.0])}
    with pytest.raises(ValueError, match="accuracy"):
        plot_estimators(table, metric="accuracy")
