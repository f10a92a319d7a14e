"""The N-bit weight sweep and the equalization study (lesson 05) on the smoke-size CNN, through the real converter."""

from __future__ import annotations

import numpy as np

from qlab.plots.weight_bits import plot_weight_bits
from qlab.workbook.studies.weight_bits import SMOKE_BIT_WIDTHS, equalization_study, weight_bits_study


SCHEMES = ["per-tensor", "per-channel", "per-tensor + CLE", "per-tensor + CLE + bias corr."]


def test_weight_bits_study_table():
    table = weight_bits_study("mnist_cnn", "smoke", 0, verbose=False)
    assert len(table) == 3 + 4 * len(SMOKE_BIT_WIDTHS)
    cells = table[table["num_bits"] < 32]
    assert sorted(set(cells["scheme"])) == sorted(SCHEMES)
    assert cells["accuracy"].between(0, 1).all()
    per_tensor = cells[cells["scheme"] == "per-tensor"]
    assert (per_tensor["gain vs per-tensor (points)"] == 0).all()
    assert (cells["gain low"] <= cells["gain vs per-tensor (points)"]).all()
    assert (cells["gain vs per-tensor (points)"] <= cells["gain high"]).all()
    floats = table[table["num_bits"] == 32].set_index("scheme")
    assert floats.loc["float, CLE", "max |score diff| vs float"] < 1e-3
    assert (table["max channel spread"] >= table["median channel spread"]).all()
    figure = plot_weight_bits(table, schemes=["per-tensor", "per-channel"])
    (ax,) = figure.axes
    assert [line.get_label() for line in ax.lines] == ["per-tensor", "per-channel", "float"]
    assert list(ax.lines[0].get_xdata()) == sorted(SMOKE_BIT_WIDTHS)


def test_equalization_study_table():
    table = equalization_study("mnist_cnn", "smoke", 0, verbose=False, spreads=(1000.0,))
    assert len(table) == 2 * 7
    rows = table.set_index(["version", "variant"])
    constructed = "constructed (x1000 rescaling)"
    assert rows.loc[(constructed, "float32"), "max |score diff| vs float"] < 1e-3
    assert rows.loc[(constructed, "float32"), "max activation spread"] > \
        5 * rows.loc[("original", "float32"), "max activation spread"]
    assert rows.loc[(constructed, "int8_per_tensor"), "output_sqnr_db"] < \
        rows.loc[(constructed, "CLE + int8_per_tensor"), "output_sqnr_db"] - 10
    assert np.isnan(rows.loc[(constructed, "int16x8"), "max |score diff| vs float"])
