"""The transformer's studies (lesson 11) at smoke size: their tables, and the figures the benchmark keeps of them."""

from __future__ import annotations

import pytest

from qlab.workbook.studies import transformer as ts


def test_the_layer_bits_figures_are_read_from_the_studys_own_table():
    table = ts.layer_bits_study("patch_encoder", "smoke", 0)
    assert list(table["weights"][:2]) == ["8-bit weights", f"all groups at {ts.BREAK_BITS} bits"]
    figures = ts.layer_bits_figures(table)
    assert figures["break_points"] == pytest.approx(100 * (table["accuracy"][0] - table["accuracy"][1]))
    repairs = table.iloc[2:].set_index("weights")
    best = repairs.loc[figures["best_repair"]]
    assert best["gain over the break (points)"] == repairs["gain over the break (points)"].max()
    if figures["break_points"] > 0:
        assert figures["recovered"] == pytest.approx(best["recovered"])
        assert figures["recovered_low"] <= figures["recovered"] <= figures["recovered_high"]


def test_the_keras3_qat_figures_are_read_from_the_studys_own_table():
    table = ts.keras3_qat_study("patch_encoder", "smoke", 0)
    figures = ts.keras3_qat_figures(table)
    qat = table.set_index("method").loc["QAT (Keras 3, fake-quantized kernels)"]
    assert figures["gain_low"] <= figures["gain_points"] == qat["QAT gain vs control (points)"] <= figures["gain_high"]
    assert figures["keras_file_agreement"] == qat["Keras-file agreement"] and figures["steps"] == qat["steps"] > 0
    assert [figures[k] for k in ("ptq_accuracy", "control_accuracy", "qat_accuracy")] == list(table["accuracy"])
