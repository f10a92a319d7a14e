"""The comparison pictures on small hand-made tables: the accuracy change with its interval."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from qlab.plots.comparison import plot_accuracy_delta


def _table(with_deltas: bool = True) -> pd.DataFrame:
    rows = []
    for model in ("mnist_cnn", "mobilenet_v2"):
        for variant, delta, low, high in (("float32", 0.0, 0.0, 0.0), ("int8_per_channel", -0.001, -0.003, 0.001),
                                          ("int8_per_tensor", -0.04, -0.045, -0.035)):
            row = {"model": model, "variant": variant, "accuracy": 0.99 + delta}
            if with_deltas:
                row.update(accuracy_delta=delta, delta_low=low, delta_high=high)
            rows.append(row)
    return pd.DataFrame(rows)


def test_accuracy_delta_draws_one_interval_per_variant_and_marks_the_significant_ones():
    fig = plot_accuracy_delta(_table())
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and plt.get_fignums() == []
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["int8_per_channel", "int8_per_tensor"]
    significant, within = ax.collections[-2].get_offsets(), ax.collections[-1].get_offsets()
    assert np.allclose(significant, [[-4.0, 0.0]]) and np.allclose(within, [[-0.1, 1.0]])  # points
    bars = ax.collections[0].get_segments()  # errorbar's line collection: one segment per variant
    assert sorted(tuple(np.round(s[:, 0], 6)) for s in bars) == [(-4.5, -3.5), (-0.3, 0.1)]


def test_accuracy_delta_needs_the_interval_columns():
    with pytest.raises(ValueError, match="accuracy_delta, delta_low, delta_high"):
        plot_accuracy_delta(_table(with_deltas=False))
    with pytest.raises(TypeError, match="ComparisonResult or DataFrame"):
        plot_accuracy_delta([1, 2])
