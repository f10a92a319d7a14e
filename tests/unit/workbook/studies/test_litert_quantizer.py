"""The LiteRT Quantizer 4-bit study's table logic (qlab.workbook.studies.litert_quantizer), without models."""

from __future__ import annotations

import pandas as pd
import pytest

from qlab.workbook.studies import litert_quantizer as lq


def _study(model, points, high):
    files = ["float32", *(label for label, _, _ in lq.FOUR_BIT_ROWS)]
    return pd.DataFrame({"model": model, "file": files, "vs float32 (points)": [0.0, *points],
                         "vs float32 high": [0.0, *high]})


def test_four_bit_recovery_shares_are_computed_against_the_per_tensor_loss():
    # per-tensor min-max, mse, octav; per-channel min-max, mse, octav; weight-only x3; QAT
    points = [-0.40, -0.17, -0.75, -0.12, -0.27, -0.11, -0.11, -0.32, -0.09, -0.05]
    table = lq.four_bit_recovery(_study("m", points, [-0.22] + [0.1] * 9))
    row = table.iloc[0]
    assert row["break: loss (points)"] == pytest.approx(0.40) and row["break measurable"]
    assert row["per-tensor MSE recovered"] == pytest.approx(0.23 / 0.40)
    assert row["per-tensor OCTAV recovered"] == pytest.approx(-0.35 / 0.40)
    assert row["per-channel min-max recovered"] == pytest.approx(0.28 / 0.40)
    assert row["QAT 4-bit recovered"] == pytest.approx(0.35 / 0.40)


def test_four_bit_recovery_has_no_share_without_a_loss():
    table = lq.four_bit_recovery(_study("m", [0.03] + [0.0] * 9, [0.13] + [0.1] * 9))
    assert not table.iloc[0]["break measurable"] and table.iloc[0]["QAT 4-bit recovered"] is None


