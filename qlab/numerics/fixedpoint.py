"""TFLite's integer requantization, bit for bit, in numpy.

An int8 layer on integer hardware accumulates ``int8 x int8`` products in int32
and then has to scale the accumulator by ``input_scale * weight_scale /
output_scale`` - a real number - without touching floating point. TFLite does
it with a fixed-point multiplier: the real multiplier is written as
``quantized_multiplier * 2**(shift - 31)`` with a 31-bit mantissa, and applied
with two integer operations from gemmlowp:

* :func:`saturating_rounding_doubling_high_mul` - the high 32 bits of ``2*a*b``,
  rounded (gemmlowp ``SaturatingRoundingDoublingHighMul``);
* :func:`rounding_divide_by_pot` - a rounding arithmetic right shift
  (gemmlowp ``RoundingDivideByPOT``).

:func:`quantize_multiplier` and :func:`multiply_by_quantized_multiplier` follow
``tensorflow/lite/kernels/internal/quantization_util.cc`` (``QuantizeMultiplier``)
and ``tensorflow/lite/kernels/internal/common.h``
(``MultiplyByQuantizedMultiplier``, the default double-rounding reference
version). Everything is vectorised over numpy arrays (per-channel multipliers
broadcast against the accumulators) and computed in int64 so the int32 C++
semantics are reproduced exactly, including the rounding of ties and the one
overflow case.

The notebook ``02_error_accumulation`` teaches the idea.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "INT32_MIN",
    "INT32_MAX",
    "quantize_multiplier",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_int64",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _as_int32_values(value: Any, argument: str) -> np.ndarray:
    """Return ``value`` as an int64 array after checking it is integer and fits in int32."""
    array = np.asarray(value)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{argument} must hold integers (int32 values), got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < INT32_MIN or array.max() > INT32_MAX):
        raise ValueError(
            f"{argument} must fit in int32 [{INT32_MIN}, {INT32_MAX}], "
            f"got values in [{array.min()}, {array.max()}]"
        )
    return array


def quantize_multiplier(real_multiplier: Any) -> tuple[Any, Any]:
    """Split a real multiplier into TFLite's ``(quantized_multiplier, shift)``.

    ``real_multiplier ~= quantized_multiplier * 2**(shift - 31)`` with
    ``quantized_multiplier`` in ``[2**30, 2**31 - 1]`` (or 0). Follows TFLite's
    ``QuantizeMultiplier``: ``frexp`` gives a mantissa in [0.5, 1), it is
    rounded (half away from zero) to 31 bits; a mantissa that rounds up to
    ``2**31`` is halved and the shift increased; multipliers below about
    ``2**-31`` (shift < -31) become ``(0, 0)``, i.e. they are flushed to zero.
    Taught in ``02_error_accumulation``.

    Args:
        real_multiplier: a non-negative finite float or array of them (one per
            channel for per-axis quantization), usually
            ``input_scale * weight_scale / output_scale``.

    Returns:
        ``(quantized_multiplier, shift)``: for a scalar input an ``np.int32``
        and an ``int``; for an array input two int32 arrays of the same shape.
    """
    real = np.asarray(real_multiplier, dtype=np.float64)
    if not np.all(np.isfinite(real)) or np.any(real < 0):
        raise ValueError(
            f"real_multiplier must be finite and >= 0, got {real_multiplier!r}"
        )
    mantissa, shift = np.frexp(real)  # same as std::frexp: mantissa in [0.5, 1)
    # mantissa * 2**31 is exact in float64, so floor(v + 0.5) is std::round for v >= 0
    q_fixed = np.floor(mantissa * 2.0**31 + 0.5).astype(np.int64)
    shift = shift.astype(np.int64)
    carry = q_fixed == 2**31
    q_fixed = np.where(carry, q_fixed // 2, q_fixed)
    shift = np.where(carry, shift + 1, shift)
    # All bits would be shifted out; TFLite flushes such tiny multipliers to zero.
    tiny = shift < -31
    q_fixed = np.where(tiny, 0, q_fixed)
    shift = np.where(tiny | (real == 0), 0, shift)
    if real.ndim == 0:
        return np.int32(q_fixed), int(shift)
    return q_fixed.astype(np.int32), shift.astype(np.int32)


def saturating_rounding_doubling_high_mul(a: Any, b: Any) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul``: round(a * b / 2**31) in int32.

    The 64-bit product gets a nudge of ``2**30`` (or ``1 - 2**30`` when it is
    negative) and is divided by ``2**31`` truncating toward zero, as C++ does;
    the asymmetric nudge makes exact ties round toward +infinity (up for
    positive products, toward zero for negative ones). The only product that does not fit,
    ``INT32_MIN * INT32_MIN``, saturates to ``INT32_MAX``.

    Args:
        a, b: int32 values or arrays (broadcast together).

    Returns:
        int32 array.
    """
    a64 = _as_int32_values(a, "a")
    b64 = _as_int32_values(b, "b")
    overflow = (a64 == b64) & (a64 == INT32_MIN)
    product = a64 * b64  # |product| <= 2**62: no int64 overflow
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    # C++ integer division truncates toward zero; >> on int64 floors.
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    return np.where(overflow, INT32_MAX, high).astype(np.int32)


def rounding_divide_by_pot(x: Any, exponent: Any) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded to nearest, ties away from zero.

    Args:
        x: int32 values or array.
        exponent: int in [0, 31] or an array of them (broadcast against ``x``).

    Returns:
        int32 array.
    """
    x64 = _as_int32_values(x, "x")
    exp64 = _as_int32_values(exponent, "exponent")
    if exp64.size and (exp64.min() < 0 or exp64.max() > 31):
        raise ValueError(f"exponent must be in [0, 31], got {exponent!r}")
    mask = (np.int64(1) << exp64) - 1
    remainder = x64 & mask
    # Negative numbers need one more in the remainder to round up: ties go away from zero.
    threshold = (mask >> 1) + (x64 < 0).astype(np.int64)
    result = (x64 >> exp64) + (remainder > threshold).astype(np.int64)
    return result.astype(np.int32)


def multiply_by_quantized_multiplier(x: Any, quantized_multiplier: Any, shift: Any) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier``: ``x * real_multiplier`` in integer arithmetic.

    ``RoundingDivideByPOT(SRDHM(x * 2**left_shift, quantized_multiplier), right_shift)``
    with ``left_shift = max(shift, 0)`` and ``right_shift = max(-shift, 0)`` - the
    reference (double-rounding) version in ``tensorflow/lite/kernels/internal/common.h``.
    ``x * 2**left_shift`` is computed in int32 as in C++; if it overflows (only
    possible for multipliers > 1) it wraps around like two's complement hardware.
    Taught in ``02_error_accumulation``.

    Args:
        x: int32 accumulators (any shape).
        quantized_multiplier: int32 value(s) from :func:`quantize_multiplier`;
            a 1-D array per output channel broadcasts over the last axis of ``x``.
        shift: int(s) in [-31, 30] from :func:`quantize_multiplier`.

    Returns:
        int32 array of the broadcast shape.
    """
    x64 = _as_int32_values(x, "x")
    multiplier = _as_int32_values(quantized_multiplier, "quantized_multiplier")
    shift64 = _as_int32_values(shift, "shift")
    if shift64.size and (shift64.min() < -31 or shift64.max() > 30):
        raise ValueError(f"shift must be in [-31, 30], got {shift!r}")
    left_shift = np.maximum(shift64, 0)
    right_shift = np.maximum(-shift64, 0)
    shifted = (x64 << left_shift).astype(np.int64)
    shifted = ((shifted - INT32_MIN) % 2**32) + INT32_MIN  # int32 wrap-around
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift
    )


def multiply_by_quantized_multiplier_int64(x: Any, quantized_multiplier: Any, shift: Any) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier(int64_t x, ...)`` for int64 accumulators (16x8 kernels).

    The multiplier is first reduced to 15 bits (``(qm + 2**15) >> 16``, capped at
    ``0x7FFF``) so ``x * reduced`` fits in int64; then one rounding shift by
    ``15 - shift``. Requires ``-(2**47) <= x < 2**47`` and ``shift`` in [-31, 7].

    Returns:
        int32 array (TFLite asserts the result fits; qlab raises if it does not).
    """
    x64 = np.asarray(x)
    if x64.dtype == bool or not np.issubdtype(x64.dtype, np.integer):
        raise TypeError(f"x must hold integers (int64 accumulators), got dtype {x64.dtype}")
    x64 = x64.astype(np.int64)
    if x64.size and (x64.min() < -(2**47) or x64.max() >= 2**47):
        raise ValueError(f"x must lie in [-2**47, 2**47), got values in [{x64.min()}, {x64.max()}]")
    multiplier = _as_int32_values(quantized_multiplier, "quantized_multiplier")
    if multiplier.size and multiplier.min() < 0:
        raise ValueError(f"quantized_multiplier must be >= 0, got {quantized_multiplier!r}")
    shift64 = _as_int32_values(shift, "shift")
    if shift64.size and (shift64.min() < -31 or shift64.max() > 7):
        raise ValueError(f"shift must be in [-31, 7] for int64 accumulators, got {shift!r}")
    reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
    total_shift = 15 - shift64
    result = (x64 * reduced + (np.int64(1) << (total_shift - 1))) >> total_shift
    if result.size and (result.min() < INT32_MIN or result.max() > INT32_MAX):
        raise ValueError("the requantized result does not fit in int32; the multiplier is too large for x")
    return result.astype(np.int32)
