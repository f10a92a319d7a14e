"""The transformer studies' figures (qlab.workbook.studies.transformer), on hand-made tables: no models."""

from __future__ import annotations

import pandas as pd
import pytest

from qlab.workbook.studies import transformer as ts

GAINS = ["gain over the break (points)", "gain low", "gain high"]


def _layer_bits(accuracies, gains):
    """A layer_bits table: the 8-bit row, the break, two repairs; ``gains`` in points over the break."""
    names = ["8-bit weights", "all groups at 2 bits", "attention at 2 bits, the rest 8",
             "feed-forward at 2 bits, the rest 8"]
    return pd.DataFrame([{"weights": n, "accuracy": a, **dict(zip(GAINS, g))}
                         for n, a, g in zip(names, accuracies, gains)])


def test_the_break_is_the_8_bit_files_accuracy_minus_the_all_low_bit_files():
    table = _layer_bits([0.9756, 0.5581, 0.9286, 0.6885],
                        [(41.75, 40.7, 42.8), (0.0, 0.0, 0.0), (37.05, 36.1, 38.0), (13.04, 12.2, 13.9)])
    figures = ts.layer_bits_figures(table)
    assert figures["break_points"] == pytest.approx(41.75)  # 97.56 - 55.81
    # the best repair keeps the feed-forward at 8 bits (the attention row): 37.05 of 41.75 points
    assert figures["best_repair"] == "attention at 2 bits, the rest 8"
    assert figures["recovered"] == pytest.approx(37.05 / 41.75)
    assert (figures["recovered_low"], figures["recovered_high"]) == (pytest.approx(36.1 / 41.75),
                                                                     pytest.approx(38.0 / 41.75))
    assert (figures["baseline_accuracy"], figures["break_accuracy"], figures["repair_accuracy"]) == \
        (0.9756, 0.5581, 0.9286)


def test_without_a_break_there_is_no_share_to_recover():
    table = _layer_bits([0.97, 0.971, 0.972, 0.969],
                        [(-0.1, -0.3, 0.1), (0.0, 0.0, 0.0), (0.1, -0.1, 0.3), (-0.2, -0.4, 0.0)])
    figures = ts.layer_bits_figures(table)
    assert figures["break_points"] == pytest.approx(-0.1)
    assert figures["recovered"] is None and figures["recovered_low"] is None
    with pytest.raises(ValueError, match="got 2 rows"):
        ts.layer_bits_figures(table.iloc[:2])


def test_the_qat_figures_are_the_qat_rows_gain_over_the_control_and_its_agreement():
    table = pd.DataFrame({
        "method": ["PTQ", "control: float fine-tune, then PTQ", "QAT (Keras 3, fake-quantized kernels)"],
        "accuracy": [0.5581, 0.6012, 0.9703], "Keras-file agreement": [0.565, 0.608, 0.9961],
        "steps": [0, 470, 470], "QAT gain vs control (points)": [None, None, 36.91],
        "gain low": [None, None, 35.9], "gain high": [None, None, 37.9]})
    assert ts.keras3_qat_figures(table) == {
        "ptq_accuracy": 0.5581, "control_accuracy": 0.6012, "qat_accuracy": 0.9703, "gain_points": 36.91,
        "gain_low": 35.9, "gain_high": 37.9, "keras_file_agreement": 0.9961, "steps": 470}
    with pytest.raises(ValueError, match="PTQ, control and QAT rows, got 2"):
        ts.keras3_qat_figures(table.iloc[:2])


def test_the_studies_refuse_a_model_other_than_the_transformer():
    for study in (ts.keras3_quantization_study, ts.layer_bits_study, ts.keras3_qat_study):
        with pytest.raises(ValueError, match="applies to 'patch_encoder'.*not 'mnist_cnn'"):
            study("mnist_cnn", "smoke", 0)
