"""Checks for ``01_buckets``: a quantizer written by hand, graded against TensorFlow's fake-quant op."""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.workbook.check import CORRECT, exercise_check, one_number

QMIN, QMAX = -128, 127


def _tf_fake_quant(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """TensorFlow's 8-bit fake-quant op, the reference both exercises are graded against."""
    from qlab.zoo.keras2 import tf

    return tf.quantization.fake_quant_with_min_max_vars(
        np.asarray(x, np.float32), float(low), float(high), num_bits=8).numpy()


@exercise_check("01.quantize", "the int8 codes q of x for a given scale and zero point")
def check_quantize(q: Any, *, x: np.ndarray, scale: float, zero_point: int) -> str | None:
    """``q`` against TensorFlow's fake-quant over the range that ``scale``/``zero_point`` stand for."""
    q = np.asarray(q)
    x = np.asarray(x, dtype=np.float64)
    if q.shape != x.shape:
        return f"q should have one code per value of x, shape {x.shape}; yours has shape {q.shape}."
    if not np.all(np.isfinite(q.astype(np.float64))) or np.any(q != np.round(q)):
        return "the codes are integers: round x / scale to the nearest integer before adding the zero point."
    if q.min() < QMIN or q.max() > QMAX:
        return f"some codes fall outside int8 [{QMIN}, {QMAX}]: clip them, the values beyond the range saturate."
    # the range these parameters stand for lies exactly on the grid, so TensorFlow does not nudge it
    low, high = scale * (QMIN - zero_point), scale * (QMAX - zero_point)
    expected = _tf_fake_quant(x, low, high)
    mine = scale * (q.astype(np.float64) - zero_point)
    wrong = ~np.isclose(mine, expected, rtol=0, atol=scale * 1e-3)
    if not wrong.any():
        return CORRECT
    i = int(np.argmax(wrong))
    steps = (mine[i] - expected[i]) / scale
    if abs(x[i]) > max(abs(low), abs(high)):
        return (f"x = {x[i]:g} lies outside the range; TensorFlow clips it to the nearest end, yours comes back as "
                f"{mine[i]:.4g}. Clip after rounding, before any conversion to int8 (which would wrap around).")
    if abs(steps) < 1.5:
        return (f"x = {x[i]:g} lands one bucket {'too high' if steps > 0 else 'too low'}: round to the nearest "
                "integer (np.round), neither floor nor truncate.")
    return (f"x = {x[i]:g} should come back as {expected[i]:.4g} and yours gives {mine[i]:.4g}: "
            "q = round(x / scale) + zero_point, then clip.")


@exercise_check("01.scale_zero_point", "scale and zero point of a ReLU6 output, [0, 6], in int8")
def check_scale_zero_point(scale: Any, zero_point: Any, *, low: float = 0.0, high: float = 6.0) -> str | None:
    """The 256 levels ``scale * (q - zero_point)`` against the levels TensorFlow's fake-quant produces."""
    scale, zero_point = one_number(scale, "scale"), one_number(zero_point, "zero_point")
    if scale <= 0:
        return "the scale is the width of one bucket: a positive number."
    width = high - low
    if np.isclose(scale, width / 256):
        return "256 levels have 255 steps between them: divide the width of the range by 255, not 256."
    if not np.isclose(scale, width / (QMAX - QMIN), rtol=1e-6):
        return f"the range [{low:g}, {high:g}] is cut into equal steps between qmin and qmax; yours are {scale:.5g} wide."
    if zero_point != round(zero_point):
        return "the zero point is an integer code: round it."
    ramp = np.linspace(low - 1, high + 1, 20_001)
    levels = np.unique(_tf_fake_quant(ramp, low, high))
    mine = scale * (np.arange(QMIN, QMAX + 1) - zero_point)
    if len(levels) == len(mine) and np.allclose(levels, mine, rtol=0, atol=scale * 1e-3):
        return CORRECT
    if zero_point == -zero_point_of(low, high):
        return "check the sign: zero_point = qmin - min / scale."
    return (f"with this zero point 0.0 is code {zero_point:g}, so your levels run from {mine[0]:.3g} to {mine[-1]:.3g}; "
            f"TensorFlow's run from {levels[0]:.3g} to {levels[-1]:.3g}. Which code must stand for the range's minimum?")


def zero_point_of(low: float, high: float) -> int:
    """The int8 zero point of ``[low, high]`` (for the hint on its sign)."""
    return round(QMIN - low / ((high - low) / (QMAX - QMIN)))

