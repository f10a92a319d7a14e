"""The partial-QAT study (lesson 07) on the smoke CNN."""

from __future__ import annotations

import pytest

from qlab.workbook.studies.partial_qat import partial_qat_study, partial_qat_summary


def test_study_structure_on_the_smoke_cnn():
    table = partial_qat_study("mnist_cnn", "smoke", 0, verbose=False)
    assert set(table["part"]) == {"anti-pattern", "sensitivity", "mixed precision"}
    rows = table.set_index("arm")
    assert rows.loc["float32", "latency_ratio"] == 1.0 and rows.loc["float32", "size_ratio"] == 1.0
    quantized = table[table["part"] != "sensitivity"].query("arm != 'float32'")
    assert (quantized["float_ops"] == 0).all() and (quantized["latency_ratio"] > 0).all()
    qat = table[(table["part"] == "mixed precision") & (table["stage"] == "QAT")].set_index("selection")
    assert list(qat.index) == ["none", "sensitivity", "random"]
    assert qat.loc["none", "int4_weight_tensors"] == 4 and qat.loc["none", "int8_weight_tensors"] == 0
    for selection in ("sensitivity", "random"):
        assert qat.loc[selection, "int4_weight_tensors"] == 3
        assert qat.loc[selection, "int8_weight_tensors"] == 1
    sensitivity = table[table["part"] == "sensitivity"]
    chosen = sensitivity[sensitivity["in sensitivity pick"]]
    assert list(chosen["layer"]) == [qat.loc["sensitivity", "keep_8bit"]]
    assert chosen["rank"].tolist() == [1]
    assert not (sensitivity["in sensitivity pick"] & sensitivity["in random pick"]).any()
    assert qat.loc["sensitivity", "keep_8bit"] != qat.loc["random", "keep_8bit"]
    summary = partial_qat_summary(table)
    assert len(summary) == len(table) - len(sensitivity)
    assert summary.loc[0, "accuracy %"] == pytest.approx(100 * rows.loc["float32", "accuracy"], abs=0.01)
    with pytest.raises(ValueError, match="not a partial_qat_study table"):
        partial_qat_summary(sensitivity[["layer", "rank"]])
