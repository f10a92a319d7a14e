"""qlab.numerics.quant against TensorFlow's fake-quant ops (bit for bit) and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qlab.numerics.quant import (
    QuantParams,
    choose_quant_params,
    dequantize,
    fake_quant,
    nudge_range,
    quantize,
)

F32 = np.float32
COMPARED = {"examples": 0, "values": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    print(f"\nfake_quant vs TensorFlow: {COMPARED['examples']} hypothesis examples, "
          f"{COMPARED['values']} values compared bit for bit")


@pytest.fixture(scope="module")
def tf():
    from qlab.zoo.keras2 import tf

    return tf


# --- strategies --------------------------------------------------------------

@st.composite
def float_ranges(draw):
    """A valid float32 range: any magnitude from 1e-30 to 1e30, containing 0 or not."""
    exponent = draw(st.integers(-30, 30))
    a, b = (draw(st.floats(-1.0, 1.0)) for _ in range(2))
    where = draw(st.sampled_from(["straddle", "straddle", "positive", "negative"]))
    lo, hi = sorted([a, b])
    if where == "positive":
        lo, hi = sorted([abs(a), abs(b)])
    elif where == "negative":
        lo, hi = sorted([-abs(a), -abs(b)])
    lo, hi = F32(lo * 10.0**exponent), F32(hi * 10.0**exponent)
    # scale must be a normal float32 (TF flushes subnormals to zero; qlab raises)
    if float(hi) - float(lo) < 1e-33:  # empty or too narrow: widen to a valid range
        hi = F32(lo + max(abs(lo), F32(1e-29)))
    return lo, hi


def probe_values(lo, hi, num_bits, narrow_range, seed, n=200):
    """Random values in and beyond the range, exact bucket edges/midpoints and extremes."""
    rng = np.random.default_rng(seed)
    nudged_min, nudged_max, scale = nudge_range(lo, hi, num_bits, narrow_range)
    width = float(hi) - float(lo)
    k = rng.integers(0, 2**num_bits, size=n // 4)
    edges = nudged_min + k.astype(F32) * scale
    midpoints = nudged_min + (k.astype(F32) + F32(0.5)) * scale
    around = np.nextafter(midpoints, rng.choice([-np.inf, np.inf], size=midpoints.size).astype(F32))
    spread = float(lo) - 0.3 * width + 1.6 * width * rng.random(n - 3 * (n // 4) - 12)
    extremes = [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, lo, hi, nudged_min, nudged_max, 3e38, -3e38]
    return np.concatenate([edges, midpoints, around, spread, extremes]).astype(F32)


def assert_bit_equal(got, want, context):
    assert got.dtype == np.float32 and got.shape == want.shape
    diff = got.view(np.int32) != want.view(np.int32)
    if diff.any():
        i = np.flatnonzero(diff)[:5]
        pytest.fail(f"{context}: {diff.sum()} mismatches, e.g. qlab {got.flat[i]} vs TF {want.flat[i]}")


# --- property tests against TensorFlow ------------------------------------

@settings(max_examples=1500, deadline=None, derandomize=True)
@given(float_ranges(), st.integers(2, 16), st.booleans(), st.integers(0, 2**32 - 1))
def test_fake_quant_matches_tf_per_tensor(tf, value_range, num_bits, narrow_range, seed):
    lo, hi = value_range
    x = probe_values(lo, hi, num_bits, narrow_range, seed)
    want = tf.quantization.fake_quant_with_min_max_vars(
        x, lo, hi, num_bits=num_bits, narrow_range=narrow_range
    ).numpy()
    context = f"range [{lo!r}, {hi!r}] num_bits={num_bits} narrow_range={narrow_range}"
    assert_bit_equal(fake_quant(x, lo, hi, num_bits, narrow_range), want, context)
    # quantize -> dequantize is the same thing, through explicit integer levels
    params = choose_quant_params(lo, hi, num_bits, narrow_range=narrow_range)
    assert_bit_equal(dequantize(quantize(x, params), params), want + F32(0), "quantize/dequantize " + context)
    COMPARED["examples"] += 1
    COMPARED["values"] += x.size


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.lists(float_ranges(), min_size=1, max_size=6),
    st.integers(2, 16),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_fake_quant_matches_tf_per_channel(tf, ranges, num_bits, narrow_range, seed):
    lo = np.array([r[0] for r in ranges], F32)
    hi = np.array([r[1] for r in ranges], F32)
    columns = [probe_values(a, b, num_bits, narrow_range, seed + i, n=120) for i, (a, b) in enumerate(ranges)]
    x = np.stack(columns, axis=-1).reshape(2, 60, len(ranges))  # rank 3: per-channel is over the last axis
    want = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        x, lo, hi, num_bits=num_bits, narrow_range=narrow_range
    ).numpy()
    assert_bit_equal(fake_quant(x, lo, hi, num_bits, narrow_range), want, f"per-channel {lo} {hi} bits={num_bits}")
    COMPARED["examples"] += 1
    COMPARED["values"] += x.size


# --- hand-computed cases -----------------------------------------------------

def test_int8_buckets_for_range_minus10_10():
    """scale = 20/255; 2.0 and 2.03 share a bucket, 2.3 is three buckets further."""
    params = choose_quant_params(-10.0, 10.0, num_bits=8)
    assert params.scale == F32(20.0 / 255.0)  # 0.0784314: one bucket is 0.078 wide
    # zero point from min = 10 / scale = 127.5 in exact arithmetic - a tie; float32
    # gives 127.49999 so the unsigned zero point is 127, i.e. -1 for int8, and the
    # nudged range is [-127 * scale, 128 * scale] = [-9.96, 10.04] (0.0 exactly representable).
    assert params.zero_point == -1
    assert params.min == F32(-127) * params.scale and params.max == F32(128) * params.scale
    q = quantize(np.array([2.0, 2.03, 2.3, 0.0], F32), params)
    # 2.0 / scale = 25.5 -> level 25 + zero point... (2.0 + 9.96) / scale = 152.5 rounds up
    # to 153 on the unsigned grid, i.e. int8 level 153 - 128 = 25.
    assert q.tolist() == [25, 25, 28, -1]
    assert dequantize(q, params).tolist() == pytest.approx([26 * 20 / 255, 26 * 20 / 255, 29 * 20 / 255, 0.0])
    assert fake_quant(np.array([0.0], F32), -10.0, 10.0)[0] == 0.0


def test_range_not_containing_zero_is_shifted():
    # [2, 3] has width 1: TF keeps the width and moves it to [0, 1] so 0.0 is a level.
    nudged_min, nudged_max, scale = nudge_range(2.0, 3.0)
    assert (nudged_min, nudged_max) == (0.0, F32(255) * F32(1 / 255))
    assert fake_quant(np.array([2.0, 2.5, 3.0, 0.4], F32), 2.0, 3.0).tolist() == [1.0, 1.0, 1.0, F32(102) * scale]
    # all negative: [-3, -2] becomes [-1, 0]
    nudged_min, nudged_max, _ = nudge_range(-3.0, -2.0)
    assert nudged_max == 0.0 and nudged_min == pytest.approx(-1.0)


def test_narrow_range_and_4_bits():
    # 4 bits, narrow: levels 1..15 -> 14 steps over [-7, 7], zero point exactly 8 (int: 0)
    params = choose_quant_params(-7.0, 7.0, num_bits=4, narrow_range=True)
    assert (params.qmin, params.qmax, params.levels) == (-7, 7, 15)
    assert params.scale == F32(1.0) and params.zero_point == 0
    assert quantize(np.array([-9.0, -0.5, 0.49, 0.5, 3.2, 100.0], F32), params).tolist() == [-7, 0, 0, 1, 3, 7]


def test_symmetric_and_unsigned_params():
    sym = choose_quant_params(-0.5, 2.0, symmetric=True, narrow_range=True)
    assert sym.zero_point == 0 and sym.scale == F32(2.0) / F32(127)
    assert sym.min == -sym.max
    unsigned = choose_quant_params(-1.0, 3.0, signed=False)
    assert unsigned.dtype == np.uint8 and (unsigned.qmin, unsigned.qmax) == (0, 255)
    assert unsigned.zero_point == 64  # 1 / (4 / 255) = 63.75 -> 64
    signed = choose_quant_params(-1.0, 3.0)
    assert signed.zero_point == 64 - 128 and signed.scale == unsigned.scale
    assert choose_quant_params(-1.0, 1.0, num_bits=16).dtype == np.int16


def test_per_axis_params_quantize_each_channel():
    lo, hi = np.array([-1.0, -100.0], F32), np.array([1.0, 100.0], F32)
    params = choose_quant_params(lo, hi, symmetric=True, narrow_range=True, axis=-1)
    x = np.array([[0.5, 50.0], [-1.0, -100.0]], F32)
    q = quantize(x, params)
    assert q.tolist() == [[64, 64], [-127, -127]]
    # each channel is off by at most half of its own bucket
    assert np.all(np.abs(dequantize(q, params) - x) <= params.scale / 2 * 1.0001)
    assert "per-axis" in repr(params) and "2 channels" in repr(params)


def test_repr_is_readable():
    text = repr(choose_quant_params(-10.0, 10.0))
    assert text.startswith("QuantParams(int8 asymmetric per-tensor")
    assert "scale=0.0784314" in text and "zero_point=-1" in text


# --- bad input -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_bits": 1}, "num_bits"),
        ({"num_bits": 17}, "num_bits"),
        ({"min": 1.0, "max": 1.0}, "min must be < max"),
        ({"min": 2.0, "max": 1.0}, "min must be < max"),
        ({"min": float("nan")}, "min contains"),
        ({"max": float("inf")}, "max contains"),
        ({"x": np.array([1.0, np.nan])}, "x contains"),
        ({"x": np.array([], F32)}, "x is empty"),
        ({"min": -3e38, "max": 3e38}, "overflows"),
        ({"min": 0.0, "max": 1e-40}, "too narrow"),
        ({"min": np.array([-1.0, -1.0]), "max": np.array([1.0, 1.0]), "x": np.zeros((4, 3))}, "last axis"),
        ({"min": np.array([-1.0, -1.0]), "max": np.array([1.0, 1.0, 1.0])}, "same shape"),
    ],
)
def test_fake_quant_rejects_bad_input(kwargs, pattern):
    args = {"x": np.zeros(3, F32), "min": -1.0, "max": 1.0, "num_bits": 8, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        fake_quant(**args)


@pytest.mark.parametrize("num_bits", [8.0, True, "8", 1, 17])
def test_every_bad_num_bits_is_one_value_error_naming_it(num_bits):
    with pytest.raises(ValueError, match=r"num_bits must be an integer in \[2, 16\]"):
        fake_quant(np.zeros(2), -1.0, 1.0, num_bits=num_bits)


def test_type_errors_name_the_argument():
    with pytest.raises(TypeError, match="narrow_range"):
        fake_quant(np.zeros(2), -1.0, 1.0, narrow_range="yes")
    with pytest.raises(TypeError, match="params"):
        quantize(np.zeros(2), (0.1, 0))


def test_choose_quant_params_and_quantize_reject_bad_input():
    with pytest.raises(ValueError, match="axis"):
        choose_quant_params(np.array([-1.0, -2.0]), np.array([1.0, 2.0]))  # 1-D needs an axis
    with pytest.raises(ValueError, match="axis"):
        choose_quant_params(-1.0, 1.0, axis=0)
    params = choose_quant_params(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), axis=-1)
    with pytest.raises(ValueError, match="channel count must match"):
        quantize(np.zeros((4, 3)), params)
    per_tensor = choose_quant_params(-1.0, 1.0)
    with pytest.raises(ValueError, match="outside the levels"):
        dequantize(np.array([200]), per_tensor)
    with pytest.raises(TypeError, match="integer"):
        dequantize(np.array([1.5]), per_tensor)
    with pytest.raises(ValueError, match="zero_point"):
        QuantParams(np.float32(0.1), np.int32(300), num_bits=8)
