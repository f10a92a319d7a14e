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


# The Keras 3 QAT study is keras3_qat_contrast with the study's bit width: its two fine-tunes at smoke size are
# tested in tests/integration/workbook/test_transformer_compare.py, and its figures on a table in
# tests/unit/workbook/studies/test_transformer.py, so they are not run a second time here.
