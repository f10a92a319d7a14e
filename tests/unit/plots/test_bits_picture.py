"""The accuracy-versus-bits figure, drawn from a synthetic bits_picture table (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from qlab.plots.bits_picture import METHOD_STYLES, plot_bits_picture

ACCURACY = {  # method -> accuracy at weight bits 8, 4, 3, 2
    "PTQ per-tensor": [0.99, 0.97, 0.60, 0.10],
    "PTQ per-channel MSE": [0.99, 0.985, 0.96, 0.50],
    "control: float fine-tune + PTQ per-channel MSE": [0.99, 0.985, 0.96, 0.55],
    "QAT": [0.99, 0.99, 0.98, 0.93],
}


def synthetic_table(models=("a", "b"), activation_bits=(8, 4)) -> pd.DataFrame:
    rows = []
    for model in models:
        rows.append({"model": model, "weight_bits": 32, "activation_bits": 32, "method": "float (original)",
                     "evaluated": "float Keras", "accuracy": 0.99, "accuracy_delta": 0.0,
                     "delta_low": 0.0, "delta_high": 0.0})
        for a in activation_bits:
            for method, accuracies in ACCURACY.items():
                for bits, accuracy in zip((8, 4, 3, 2), accuracies):
                    delta = accuracy - 0.99
                    rows.append({"model": model, "weight_bits": bits, "activation_bits": a,
                                 "method": method,
                                 "evaluated": "LiteRT file" if a == 8 else "fake-quant Keras",
                                 "accuracy": accuracy, "accuracy_delta": delta,
                                 "delta_low": delta - 0.01, "delta_high": delta + 0.02})
    return pd.DataFrame(rows)


def test_one_panel_per_model_and_activation_width_with_every_method():
    figure = plot_bits_picture(synthetic_table())
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 4
    for ax in figure.axes:
        labels = [c.get_label() for c in ax.containers]
        assert labels == [style[2] for style in METHOD_STYLES.values()]
        assert [line.get_label() for line in ax.lines if line.get_linestyle() == "--"] == ["float"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "4", "3", "2"]  # fewer to the right
    assert "8-bit activations; LiteRT file" in figure.axes[0].get_xlabel()
    assert "4-bit activations; fake-quant Keras" in figure.axes[2].get_xlabel()


def test_error_bars_are_the_paired_intervals_and_the_collapse_is_shaded():
    figure = plot_bits_picture(synthetic_table(models=("a",), activation_bits=(8,)))
    (ax,) = figure.axes
    qat = ax.containers[3]
    data_line, _, (bars,) = qat.lines
    np.testing.assert_allclose(data_line.get_ydata(), [93, 98, 99, 99])  # sorted by bits 2..8
    np.testing.assert_allclose(np.asarray(data_line.get_xdata(), float), [3, 2, 1, 0])  # 2 bits at the right
    spans = [segment[:, 1] for segment in bars.get_segments()]
    np.testing.assert_allclose([s[1] - s[0] for s in spans], [3.0] * 4)  # 1 below + 2 above
    shaded = [p for p in ax.patches if p.get_alpha() == pytest.approx(0.08)]
    assert len(shaded) == 1  # only 2 bits: best PTQ 0.50 against float 0.99


def test_nothing_to_shade_when_ptq_holds():
    table = synthetic_table(models=("a",), activation_bits=(8,))
    best = table["method"] == "PTQ per-channel MSE"
    table.loc[best, "accuracy"] = 0.985
    (ax,) = plot_bits_picture(table).axes
    assert not [p for p in ax.patches if p.get_alpha() == pytest.approx(0.08)]


def test_bad_tables_are_refused():
    with pytest.raises(TypeError, match="lacks columns"):
        plot_bits_picture(pd.DataFrame({"model": ["a"]}))
    table = synthetic_table()
    table["method"] = "something else"
    with pytest.raises(ValueError, match="no rows"):
        plot_bits_picture(table)
