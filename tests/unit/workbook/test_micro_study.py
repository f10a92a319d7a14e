"""The micro_runs study (lesson 13): which variants it makes, one file's row, and the figures the bench checks."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from qlab.conversion.micro_boards import NRF52840, STM32H743ZI
from qlab.workbook.studies import micro as study


def test_the_variants_follow_what_each_model_has_shipped():
    assert study.micro_variants("mnist_cnn", "full") == list(study.INTEGER_VARIANTS)
    assert "qat_4bit" in study.INTEGER_VARIANTS and "float16" not in study.INTEGER_VARIANTS
    assert study.micro_variants("mnist_cnn", "smoke") == ["dynamic_int8", "int8_per_channel", "int8_per_tensor",
                                                          "int16x8"]
    narrow = study.micro_variants("mobilenet_v2_035", "full")
    assert "int8_per_channel" in narrow and "aeq_int4_static" in narrow and "qat_int8" not in narrow
    encoder = study.micro_variants("patch_encoder", "full")
    assert "keras_int4" in encoder and "pruned_int8" not in encoder
    with pytest.raises(ValueError, match="size must be one of"):
        study.micro_variants("mnist_cnn", "huge")


def test_a_file_tflm_runs_gets_its_measures_and_one_it_refuses_its_reason(tiny):
    x, y = tiny["x"][:12], [0] * 12
    row = study.micro_row(tiny["int8"], x, y)
    assert row["refusal"] is None and row["images"] == 12 and row["flash bytes"] == len(tiny["int8"])
    assert row["identical to reference kernels"] == 1.0 and row["top-1 agreement"] >= 0.9
    assert 0 <= row["micro accuracy"] <= 1 and row["arena bytes"] > 0
    refused = study.micro_row(tiny["float32"], x, y)
    assert refused["refusal"].startswith("float ops") and refused["arena bytes"] is None and "images" not in refused


def test_the_figures_are_the_worst_of_the_files_that_ran():
    table = pd.DataFrame({"model": "m", "variant": ["a", "b", "c"], "flash bytes": [200_000, 2_000_000, 1_000],
                          "arena bytes": [30_000, 40_000, math.nan],
                          "refusal": [None, None, "float ops: X x1"], "top-1 agreement": [1.0, 0.99, math.nan],
                          "identical to reference kernels": [1.0, 0.995, math.nan],
                          "max steps to reference kernels": [0, 1, math.nan],
                          "micro accuracy": [0.99, 0.98, math.nan], "litert accuracy": [0.99, 0.985, 0.9]})
    fitting = {NRF52840.name: 1, STM32H743ZI.name: 1}  # the 2 MB file fits neither board's flash
    assert study.micro_figures(table) == {
        "files": 3, "ran": 2, "fitting": fitting, "lowest top-1 agreement": 0.99,
        "lowest identical to reference kernels": 0.995, "most steps to reference kernels": 1,
        "largest accuracy gap to litert": pytest.approx(0.005)}
    assert study.micro_figures(table.iloc[2:]) == {"files": 1, "ran": 0,
                                                   "fitting": {NRF52840.name: 0, STM32H743ZI.name: 0}}
