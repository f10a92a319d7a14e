"""The AdaRound study (lesson 06) at smoke size."""

from __future__ import annotations

from qlab.workbook.studies.adaround import adaround_study


def test_adaround_study_smoke_table():
    table = adaround_study("mnist_cnn", "smoke", 0, verbose=False)
    assert list(table["rounding"]) == ["float", "nearest", "AdaRound", "nearest", "AdaRound"]
    assert list(table["scheme"][1:]) == ["per-tensor", "per-tensor", "per-channel", "per-channel"]
    cells = table[table["num_bits"] == 2]
    assert cells["accuracy"].between(0, 1).all()
    ada = cells[cells["rounding"] == "AdaRound"]
    assert ada["flipped share"].between(0, 0.5, inclusive="neither").all()
    assert (ada["gain low"] <= ada["gain vs nearest (points)"]).all()
    assert (ada["gain vs nearest (points)"] <= ada["gain high"]).all()
    assert (cells[cells["rounding"] == "nearest"]["gain vs nearest (points)"] == 0).all()
    assert (ada["AdaRound seconds"] > 0).all()
