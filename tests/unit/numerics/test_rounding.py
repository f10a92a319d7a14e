"""TFLite's rounding, against Python's decimal arithmetic on the exact float values."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qlab.numerics.rounding import tflite_round


def std_round(value: float) -> float:
    """C++ std::round: the exact value of the float, rounded half away from zero."""
    return float(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_ties_go_away_from_zero_unlike_numpy():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.4])
    assert tflite_round(x).tolist() == [1, 2, 3, -1, -3, 2]
    assert np.round(x).tolist() == [0, 2, 2, -0, -2, 2]  # what numpy would have done


def test_the_largest_float32_below_one_half_rounds_down():
    # floor(|x| + 0.5) gets this wrong: 0.49999997 + 0.5 rounds to 1.0 in float32
    x = np.nextafter(np.float32(0.5), np.float32(0))
    assert tflite_round(x) == 0 and tflite_round(-x) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_float_dtype_is_kept(dtype):
    assert tflite_round(np.array([1.5], dtype)).dtype == dtype


@given(st.floats(-1e6, 1e6, width=32))
def test_matches_exact_decimal_rounding(value):
    assert tflite_round(np.float32(value)) == std_round(float(np.float32(value)))
