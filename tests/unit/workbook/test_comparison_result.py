"""ComparisonResult with the fine metrics: display, JSON round trip, results saved before they existed."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from qlab.numerics.metrics import fine_metrics
from qlab.workbook.pipeline import COLUMNS, FINE_COLUMNS, ComparisonResult, load_result, save_result

DISPLAY_COLUMNS = ["agreement %", "output SQNR dB", "KL", "Δ acc. points [95% CI]", "McNemar p"]


def _result(with_fine_metrics: bool = True) -> ComparisonResult:
    """float32 and a noisy int8 row of 400 images, measured the way measure_variants measures them."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 400)
    reference = rng.normal(0, 1, (400, 10))
    reference[np.arange(400), labels] += 3.0  # a model that is mostly right
    noisy = reference + rng.normal(0, 0.8, reference.shape)
    rows = []
    for variant, scores in (("float32", reference), ("int8_per_tensor", noisy)):
        row = {"model": "mnist_cnn", "variant": variant, "size_bytes": 1000, "evaluated_with": "litert"}
        metrics = fine_metrics(reference, scores, labels)
        row.update(metrics if with_fine_metrics else {"accuracy": metrics["accuracy"]})
        rows.append(row)
    return ComparisonResult(pd.DataFrame(rows).reindex(columns=COLUMNS), {"tensorflow": "2.x"},
                            {"size": "smoke", "seed": 0})


def test_the_float32_row_is_the_reference():
    t = _result().table.set_index("variant")
    assert t.loc["float32", "top1_agreement"] == 1.0 and t.loc["float32", "kl_divergence"] == 0.0
    assert t.loc["float32", "output_sqnr_db"] == math.inf
    assert t.loc["float32", ["accuracy_delta", "delta_low", "delta_high"]].tolist() == [0.0, 0.0, 0.0]
    row = t.loc["int8_per_tensor"]
    assert 0.0 <= row["top1_agreement"] < 1.0 and row["kl_divergence"] > 0 and 0 < row["mcnemar_p"] <= 1
    assert row["delta_low"] <= row["accuracy_delta"] <= row["delta_high"]


def test_display_shows_readable_fine_columns_and_a_dash_for_infinite_sqnr():
    shown = _result().display_table().set_index("variant")
    assert set(DISPLAY_COLUMNS) <= set(shown.columns)
    assert shown.loc["float32", "Δ acc. points [95% CI]"] == "+0.00 [+0.00, +0.00]"
    assert pd.isna(shown.loc["float32", "output SQNR dB"]) and shown.loc["float32", "agreement %"] == 100.0
    delta = shown.loc["int8_per_tensor", "Δ acc. points [95% CI]"]
    assert delta.count("[") == 1 and delta.endswith("]") and delta[0] in "+-"
    text = repr(_result())
    assert "agreement %" in text and "Δ acc. points [95% CI]" in text
    float32_line = next(line for line in text.splitlines() if line.split()[:2] == ["mnist_cnn", "float32"])
    assert " inf" not in float32_line and " - " in float32_line
    assert "McNemar p" in _result()._repr_html_()


def test_rows_are_strict_json_and_load_back_unchanged(tmp_path):
    result = _result()
    rows = result.rows()
    assert rows[0]["output_sqnr_db"] is None  # JSON has no infinity
    json.dumps(rows, allow_nan=False)  # raises on inf or NaN
    path = save_result(result, tmp_path / "compare.json")
    loaded = load_result(path)
    pd.testing.assert_frame_equal(loaded.table[FINE_COLUMNS], result.table[FINE_COLUMNS])
    assert loaded.table.loc[0, "output_sqnr_db"] == math.inf
    assert repr(loaded).splitlines()[1] == repr(result).splitlines()[1]


def test_results_saved_before_the_fine_metrics_still_load_and_display(tmp_path):
    old = _result(with_fine_metrics=False).rows()
    for row in old:  # as an older qlab wrote them: no such keys at all
        for column in FINE_COLUMNS:
            del row[column]
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"environment": {}, "config": {"size": "full", "seed": 0}, "rows": old}))
    loaded = load_result(path)
    assert list(loaded.table.columns) == COLUMNS and loaded.table[FINE_COLUMNS].isna().all().all()
    shown = loaded.display_table()
    assert shown["Δ acc. points [95% CI]"].isna().all() and shown["output SQNR dB"].isna().all()
    assert "mnist_cnn" in repr(loaded)


def test_old_json_with_all_null_columns_displays():
    rows = [{"model": "m", "variant": "qat_4bit", "accuracy": 0.5, "keras_tflite_agreement": None}]
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    assert "qat_4bit" in repr(ComparisonResult(table, {}, {"size": "smoke", "seed": 0}))


@pytest.mark.parametrize("column", FINE_COLUMNS)
def test_every_fine_metric_is_a_column(column):
    assert column in COLUMNS and column in fine_metrics(np.eye(3), np.eye(3), np.arange(3))
