"""qlab.numerics.fixedpoint against hand-computed cases and a plain Python-int model of the C++ code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qlab.numerics.fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

int32s = st.integers(INT32_MIN, INT32_MAX)


# --- straightforward Python-int models of the C++ (int32 / int64) semantics ---


def _trunc_div(a: int, b: int) -> int:
    """C++ integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def ref_srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _trunc_div(ab + nudge, 1 << 31)


def ref_rdbpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask  # Python & on negatives = two's complement, like int32
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def ref_mbqm(x: int, qm: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbpot(ref_srdhm(_wrap32(x * (1 << left)), qm), right)


def ref_quantize_multiplier(m: float) -> tuple[int, int]:
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(math.floor(q * 2**31 + 0.5))
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


# --- hand-computed cases ---


def test_quantize_multiplier_hand_cases():
    assert quantize_multiplier(0.5) == (2**30, 0)  # 0.5 = 2**30 * 2**(0-31)
    assert quantize_multiplier(1.0) == (2**30, 1)
    assert quantize_multiplier(0.75) == (3 * 2**29, 0)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0**-40) == (0, 0)  # flushed: shift would be -39
    # mantissa 1 - 2**-33 rounds up to 2**31 -> halved and shift bumped
    assert quantize_multiplier(1.0 - 2.0**-33) == (2**30, 1)
    qm, shift = quantize_multiplier(np.array([0.25, 0.75]))
    assert qm.dtype == np.int32 and qm.tolist() == [2**30, 3 * 2**29]
    assert shift.tolist() == [-1, 0]


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_quantize_multiplier_rejects_bad(bad):
    with pytest.raises(ValueError, match="real_multiplier"):
        quantize_multiplier(bad)


def test_srdhm_hand_cases():
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    assert saturating_rounding_doubling_high_mul(2**30, 3) == 2  # 1.5 rounds up
    assert saturating_rounding_doubling_high_mul(-(2**30), 3) == -1  # -1.5 rounds toward +inf
    assert saturating_rounding_doubling_high_mul(2**30, 2**30) == 2**29  # 0.5 * 0.5 * 2**31


def test_rounding_divide_by_pot_hand_cases():
    x = np.array([5, -5, 6, -6, 7, -7, 4, -4])
    assert rounding_divide_by_pot(x, 1).tolist() == [3, -3, 3, -3, 4, -4, 2, -2]
    assert rounding_divide_by_pot(INT32_MIN, 31) == -1
    assert rounding_divide_by_pot(INT32_MAX, 31) == 1
    assert rounding_divide_by_pot(123, 0) == 123
    with pytest.raises(ValueError, match="exponent"):
        rounding_divide_by_pot(1, 32)


def test_multiply_by_quantized_multiplier_hand_cases():
    qm, shift = quantize_multiplier(0.5)
    # SRDHM rounds exact ties toward +infinity: 1.5 -> 2 but -1.5 -> -1
    assert multiply_by_quantized_multiplier([100, -100, 3, -3], qm, shift).tolist() == [50, -50, 2, -1]
    # per-channel multipliers broadcast over the last axis
    qm, shift = quantize_multiplier(np.array([0.5, 2.0]))
    out = multiply_by_quantized_multiplier(np.array([[100, 100], [-7, -7]]), qm, shift)
    assert out.tolist() == [[50, 200], [-3, -14]]  # -3.5 -> -3 (tie toward +inf)
    with pytest.raises(ValueError, match="shift"):
        multiply_by_quantized_multiplier(1, 2**30, 31)
    with pytest.raises(ValueError, match="x must fit in int32"):
        multiply_by_quantized_multiplier(2**31, 2**30, 0)
    with pytest.raises(TypeError, match="quantized_multiplier"):
        multiply_by_quantized_multiplier(1, 0.5, 0)


# --- property tests against the Python-int models ---


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=50))
def test_srdhm_matches_reference(pairs):
    a = np.array([p[0] for p in pairs] + [INT32_MIN], dtype=np.int64)
    b = np.array([p[1] for p in pairs] + [INT32_MIN], dtype=np.int64)
    got = saturating_rounding_doubling_high_mul(a, b)
    assert got.dtype == np.int32
    assert got.tolist() == [ref_srdhm(int(x), int(y)) for x, y in zip(a, b)]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(int32s, st.integers(0, 31)), min_size=1, max_size=50))
def test_rounding_divide_by_pot_matches_reference(pairs):
    x = np.array([p[0] for p in pairs])
    e = np.array([p[1] for p in pairs])
    assert rounding_divide_by_pot(x, e).tolist() == [ref_rdbpot(int(a), int(b)) for a, b in pairs]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1e-15, max_value=1e-8),
    st.lists(int32s | st.integers(-(2**16), 2**16), min_size=1, max_size=50),
)
def test_multiply_by_quantized_multiplier_matches_reference(real, xs):
    qm, shift = quantize_multiplier(real)
    assert (int(qm), shift) == ref_quantize_multiplier(real)
    if real > 0 and qm > 0:
        assert abs(int(qm) * 2.0 ** (shift - 31) - real) <= real * 2.0**-30
    got = multiply_by_quantized_multiplier(np.array(xs), qm, shift)
    assert got.tolist() == [ref_mbqm(x, int(qm), shift) for x in xs]


def ref_mbqm64(x: int, qm: int, shift: int) -> int:
    reduced = (qm + (1 << 15)) >> 16 if qm < 0x7FFF0000 else 0x7FFF
    total_shift = 15 - shift
    return (x * reduced + (1 << (total_shift - 1))) >> total_shift


def test_multiply_by_quantized_multiplier_int64_hand_cases():
    qm, shift = quantize_multiplier(0.5)
    assert multiply_by_quantized_multiplier_int64([2**31, -3, 3], qm, shift).tolist() == [2**30, -1, 2]
    qm_small, shift_small = quantize_multiplier(2.0**-10)
    assert multiply_by_quantized_multiplier_int64(2**40, qm_small, shift_small) == 2**30
    with pytest.raises(ValueError, match="2\\*\\*47"):
        multiply_by_quantized_multiplier_int64(2**47, qm, shift)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.floats(min_value=1e-9, max_value=100.0),
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=50),
)
def test_multiply_by_quantized_multiplier_int64_matches_reference(real, xs):
    qm, shift = quantize_multiplier(real)
    expected = [ref_mbqm64(x, int(qm), shift) for x in xs]
    if max(map(abs, expected)) >= 2**31:
        with pytest.raises(ValueError, match="does not fit"):
            multiply_by_quantized_multiplier_int64(np.array(xs), qm, shift)
    else:
        assert multiply_by_quantized_multiplier_int64(np.array(xs), qm, shift).tolist() == expected
