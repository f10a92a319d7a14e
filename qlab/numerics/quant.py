"""Scale, zero point and fake quantization, bit for bit the way TensorFlow does them.

A ``num_bits`` quantizer has ``2**num_bits`` integer levels (one fewer with
``narrow_range``). A float range ``[min, max]`` is mapped onto them with

    real = scale * (q - zero_point)

TensorFlow first *nudges* the range so that 0.0 lands exactly on a level
(zero-padding and ReLU must be exact): it computes the zero point in float,
rounds it, clamps it into the integer range and rebuilds ``[min, max]`` from it.
A range that does not contain 0 is therefore *shifted* until it does:
``[2, 3]`` becomes ``[0, 1]`` and everything above 1 is clipped.

:func:`nudge_range` and :func:`fake_quant` follow
``tensorflow/core/kernels/fake_quant_ops_functor.h`` operation by operation in
float32 (``Nudge``; ``FakeQuantWithMinMaxVarsFunctor`` divides by the scale,
``FakeQuantWithMinMaxVarsPerChannelFunctor`` multiplies by the separately
computed inverse scale - the two really do differ in the last bit now and then),
so the results equal ``tf.quantization.fake_quant_with_min_max_vars`` and
``..._per_channel`` exactly. Where TensorFlow silently returns NaN (``min ==
max``) or a constant (``min > max``), qlab raises a ValueError instead.

The notebook ``01_buckets`` teaches the idea.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qlab.numerics.rounding import tflite_round
from qlab.numerics.validate import check_bool, check_num_bits, finite_array

__all__ = [
    "QuantParams",
    "choose_quant_params",
    "weight_quant_params",
    "nudge_range",
    "quantize",
    "dequantize",
    "fake_quant",
]

_F32 = np.float32
_TINY = np.finfo(np.float32).tiny  # smallest normal float32


def _unsigned_grid(num_bits: int, narrow_range: bool) -> tuple[int, int]:
    """TensorFlow's fake-quant grid: [0, 2**num_bits - 1], or [1, ...] with narrow_range."""
    return (1 if narrow_range else 0), (1 << num_bits) - 1


def _check_range(min: Any, max: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a float range (scalars, or 1-D per channel) and return it as float32 arrays."""
    lo = finite_array(min, "min")
    hi = finite_array(max, "max")
    if lo.ndim > 1 or hi.ndim > 1:
        raise ValueError(f"min and max must be scalars or 1-D (one per channel), got shapes {lo.shape} and {hi.shape}")
    if lo.shape != hi.shape:
        raise ValueError(f"min and max must have the same shape, got {lo.shape} and {hi.shape}")
    if np.any(lo >= hi):
        i = int(np.argmax(lo >= hi))
        where = "" if lo.ndim == 0 else f" at channel {i}"
        raise ValueError(
            f"min must be < max{where}, got min={lo.flat[i]!r}, max={hi.flat[i]!r} "
            "(TensorFlow would silently return NaN for min == max and a constant for min > max)"
        )
    with np.errstate(over="ignore"):
        width = hi - lo
    if not np.all(np.isfinite(width)):
        raise ValueError(f"max - min overflows float32 for min={lo!r}, max={hi!r}; use a narrower range")
    return lo, hi


def _nudge(lo: np.ndarray, hi: np.ndarray, quant_min: int, quant_max: int) -> tuple[np.ndarray, ...]:
    """TF's ``Nudge`` in float32: (nudged_min, nudged_max, scale, inv_scale, zero_point)."""
    qmin_f, qmax_f = _F32(quant_min), _F32(quant_max)
    scale = (hi - lo) / (qmax_f - qmin_f)
    if np.any(scale < _TINY):
        raise ValueError(
            f"range [min, max] = [{lo!r}, {hi!r}] is too narrow: its scale underflows float32 "
            f"(below {_TINY:.3g}); use a wider range"
        )
    # TF recomputes the inverse instead of 1/scale "to avoid loss of precision".
    inv_scale = (qmax_f - qmin_f) / (hi - lo)
    zero_point_from_min = qmin_f - lo / scale
    zero_point = np.where(
        zero_point_from_min < qmin_f,
        qmin_f,
        np.where(zero_point_from_min > qmax_f, qmax_f, tflite_round(zero_point_from_min).astype(_F32)),
    ).astype(_F32)
    nudged_min = (qmin_f - zero_point) * scale
    nudged_max = (qmax_f - zero_point) * scale
    return nudged_min, nudged_max, scale, inv_scale, zero_point.astype(np.int64)


def nudge_range(min: Any, max: Any, num_bits: int = 8, narrow_range: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TensorFlow's nudged range: the float range fake quantization really uses.

    Args:
        min, max: the requested range (scalars, or 1-D arrays for one range per channel).
        num_bits: 2..16.
        narrow_range: drop the lowest level (grid [1, 2**num_bits - 1]).

    Returns:
        ``(nudged_min, nudged_max, scale)`` as float32 arrays (0-d for scalars);
        ``nudged_min <= 0 <= nudged_max`` and 0.0 is exactly a grid point.
    """
    num_bits = check_num_bits(num_bits)
    narrow_range = check_bool(narrow_range, "narrow_range")
    lo, hi = _check_range(min, max)
    nudged_min, nudged_max, scale, _, _ = _nudge(lo, hi, *_unsigned_grid(num_bits, narrow_range))
    return nudged_min, nudged_max, scale


@dataclass(frozen=True, repr=False)
class QuantParams:
    """How a float tensor maps to integers: ``real = scale * (q - zero_point)``.

    ``scale``/``zero_point`` are 0-d arrays for per-tensor quantization and 1-D
    (one per channel along ``axis``) for per-axis quantization. Build one with
    :func:`choose_quant_params`. Taught in ``01_buckets``.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    num_bits: int = 8
    signed: bool = True
    symmetric: bool = False
    narrow_range: bool = False
    axis: int | None = None

    def __post_init__(self) -> None:
        check_num_bits(self.num_bits)
        scale = finite_array(self.scale, "scale")
        zero_point = np.asarray(self.zero_point)
        if not np.issubdtype(zero_point.dtype, np.integer) and not np.all(zero_point == np.round(zero_point)):
            raise ValueError(f"zero_point must hold integers, got {self.zero_point!r}")
        zero_point = zero_point.astype(np.int32)
        if np.any(scale <= 0):
            raise ValueError(f"scale must be > 0, got {self.scale!r}")
        if scale.shape != zero_point.shape or scale.ndim != (0 if self.axis is None else 1):
            raise ValueError(
                f"scale {scale.shape} and zero_point {zero_point.shape} must both be 0-d for "
                f"axis=None or 1-D for per-axis quantization (axis={self.axis})"
            )
        if np.any(zero_point < self.qmin) or np.any(zero_point > self.qmax):
            raise ValueError(f"zero_point {self.zero_point!r} must lie in [{self.qmin}, {self.qmax}]")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point)

    @property
    def qmin(self) -> int:
        """Lowest integer level (e.g. -128 for int8, -127 with narrow_range)."""
        low = -(1 << (self.num_bits - 1)) if self.signed else 0
        return low + int(self.narrow_range)

    @property
    def qmax(self) -> int:
        """Highest integer level (127 for int8, 255 for uint8)."""
        return (1 << (self.num_bits - 1)) - 1 if self.signed else (1 << self.num_bits) - 1

    @property
    def levels(self) -> int:
        """Number of integer levels (buckets) available."""
        return self.qmax - self.qmin + 1

    @property
    def per_axis(self) -> bool:
        return self.axis is not None

    @property
    def min(self) -> np.ndarray:
        """Smallest representable float (the nudged range minimum), float32."""
        return _F32(self.qmin - self.zero_point.astype(np.int64)) * self.scale

    @property
    def max(self) -> np.ndarray:
        """Largest representable float (the nudged range maximum), float32."""
        return _F32(self.qmax - self.zero_point.astype(np.int64)) * self.scale

    @property
    def dtype(self) -> np.dtype:
        """Smallest numpy integer type holding every level."""
        if self.signed:
            return np.dtype(np.int8 if self.num_bits <= 8 else np.int16)
        return np.dtype(np.uint8 if self.num_bits <= 8 else np.uint16)

    def _describe(self) -> str:
        kind = f"{'int' if self.signed else 'uint'}{self.num_bits}"
        mode = "symmetric" if self.symmetric else "asymmetric"
        if self.narrow_range:
            mode += ", narrow_range"
        where = "per-tensor" if self.axis is None else f"per-axis (axis={self.axis}, {self.scale.size} channels)"
        return f"{kind} {mode} {where}, levels [{self.qmin}, {self.qmax}]"

    def __repr__(self) -> str:
        return (
            f"QuantParams({self._describe()}: scale={_fmt(self.scale)}, "
            f"zero_point={_fmt(self.zero_point)}, min={_fmt(self.min)}, max={_fmt(self.max)})"
        )


def _fmt(values: np.ndarray) -> str:
    """Short readable text for a 0-d or 1-D array (6 significant digits, long arrays elided)."""
    if values.ndim == 0:
        return f"{values.item():.6g}"
    return np.array2string(values, precision=6, threshold=6, edgeitems=2, separator=", ")


def choose_quant_params(
    min: Any,
    max: Any,
    num_bits: int = 8,
    signed: bool = True,
    symmetric: bool = False,
    narrow_range: bool = False,
    axis: int | None = None,
) -> QuantParams:
    """Choose ``scale`` and ``zero_point`` for the float range ``[min, max]``.

    Asymmetric (affine): TensorFlow's ``Nudge`` - the same float range
    :func:`fake_quant` uses, so ``dequantize(quantize(x, p), p)`` equals
    ``fake_quant(x, min, max)`` for per-tensor parameters. ``signed`` only moves
    the integer labels (int8 = uint8 - 128), not the float grid.

    Symmetric: TFLite's convention for weights - ``zero_point`` is exactly 0
    (``2**(num_bits-1)`` unsigned) and ``scale = max(|min|, |max|) / (2**(num_bits-1) - 1)``;
    with ``narrow_range`` the levels are [-127, 127] for int8, otherwise -128 is
    also available.

    Taught in ``01_buckets`` (which first works the formula out by hand); used again in
    ``04_post_training_quantization`` for the input tensor's parameters.

    Args:
        min, max: the float range; scalars for per-tensor, 1-D arrays (one per
            channel) when ``axis`` is given.
        num_bits: 2..16.
        signed: int (True) or uint (False) integer levels.
        symmetric: force the zero point to the middle of the grid.
        narrow_range: drop the lowest level.
        axis: None for per-tensor, or the channel axis (``-1``: TFLite's
            per-channel weights of Dense) for per-axis.

    Returns:
        :class:`QuantParams`.
    """
    num_bits = check_num_bits(num_bits)
    for name, value in (("signed", signed), ("symmetric", symmetric), ("narrow_range", narrow_range)):
        check_bool(value, name)
    lo, hi = _check_range(min, max)
    if (axis is None) != (lo.ndim == 0):
        raise ValueError(
            f"min/max have shape {lo.shape} but axis={axis}: pass scalars with axis=None "
            "(per-tensor) or 1-D arrays with an int axis (per-axis)"
        )
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
        raise TypeError(f"axis must be None or an int, got {axis!r}")
    offset = (1 << (num_bits - 1)) if signed else 0
    if symmetric:
        half = _F32((1 << (num_bits - 1)) - 1)
        scale = np.maximum(np.abs(lo), np.abs(hi)) / half
        if np.any(scale < _TINY):
            raise ValueError(f"range [{lo!r}, {hi!r}] is too narrow: its scale underflows float32")
        zero_point = np.full(lo.shape, (1 << (num_bits - 1)) - offset, dtype=np.int64)
    else:
        _, _, scale, _, zero_point_u = _nudge(lo, hi, *_unsigned_grid(num_bits, narrow_range))
        zero_point = zero_point_u - offset
    return QuantParams(scale, zero_point, num_bits, bool(signed), bool(symmetric), bool(narrow_range), axis)


def weight_quant_params(w: Any, num_bits: int = 8, axis: int | None = None) -> QuantParams:
    """TFLite's weight quantization of ``w``: symmetric, narrow range, per tensor or per channel.

    The range is ``[-max|w|, max|w|]`` over the whole tensor (``axis=None``) or over
    each slice along the output-channel ``axis``. An all-zero channel gets a tiny
    range instead of an error: it quantizes to zeros either way. Taught in
    ``05_per_channel``.
    """
    w = np.asarray(w)
    if axis is None:
        bound = np.maximum(np.abs(w).max(), 1e-12)
    else:
        channels = np.moveaxis(w, axis, -1).reshape(-1, w.shape[axis])
        bound = np.maximum(np.abs(channels).max(axis=0), 1e-12)
    return choose_quant_params(-bound, bound, num_bits, symmetric=True, narrow_range=True, axis=axis)


def _broadcast(params: QuantParams, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point shaped to broadcast against an ``ndim``-dimensional tensor."""
    if params.axis is None:
        return params.scale, params.zero_point.astype(np.int64)
    axis = params.axis
    if not -ndim <= axis < ndim:
        raise ValueError(f"params.axis={axis} is out of range for a tensor with {ndim} dimension(s)")
    shape = [1] * ndim
    shape[axis] = -1
    return params.scale.reshape(shape), params.zero_point.astype(np.int64).reshape(shape)


def _check_channels(x: np.ndarray, params: QuantParams, argument: str) -> None:
    if params.axis is not None and (x.ndim == 0 or x.shape[params.axis] != params.scale.size):
        raise ValueError(
            f"{argument} has shape {x.shape} but params have {params.scale.size} channels "
            f"along axis {params.axis}; the channel count must match"
        )


def quantize(x: Any, params: QuantParams) -> np.ndarray:
    """Map floats to integer levels: ``q = clamp(round(x / scale) + zero_point)``.

    The rounding is TensorFlow's fake-quant arithmetic (clamp to the nudged range,
    shift, divide by the scale, add 0.5, floor), so the level chosen is the one
    ``tf.quantization.fake_quant_with_min_max_vars`` picks. Values outside the
    range are clipped to ``qmin``/``qmax``.

    Taught in ``01_buckets`` (written out by hand there); called in
    ``04_post_training_quantization`` to quantize the model's input images.

    Returns:
        an integer array of ``params.dtype`` (int8/int16/uint8/uint16), same shape as ``x``.
    """
    if not isinstance(params, QuantParams):
        raise TypeError(f"params must be a QuantParams (see choose_quant_params), got {type(params).__name__}")
    values = finite_array(x, "x")
    _check_channels(values, params, "x")
    scale, zero_point = _broadcast(params, values.ndim)
    nudged_min = _F32(params.qmin - zero_point) * scale
    nudged_max = _F32(params.qmax - zero_point) * scale
    clamped = np.maximum(np.minimum(values, nudged_max), nudged_min)
    steps = np.floor((clamped - nudged_min) / scale - _F32(zero_point - params.qmin) + _F32(0.5))
    q = steps.astype(np.int64) + zero_point
    return np.clip(q, params.qmin, params.qmax).astype(params.dtype)


def dequantize(q: Any, params: QuantParams) -> np.ndarray:
    """Map integer levels back to floats: ``scale * (q - zero_point)``, float32."""
    if not isinstance(params, QuantParams):
        raise TypeError(f"params must be a QuantParams (see choose_quant_params), got {type(params).__name__}")
    levels = np.asarray(q)
    if levels.dtype == bool or not np.issubdtype(levels.dtype, np.integer):
        raise TypeError(f"q must be an integer array (from quantize), got dtype {levels.dtype}")
    if levels.size == 0:
        raise ValueError("q is empty; it needs at least one value")
    if levels.min() < params.qmin or levels.max() > params.qmax:
        raise ValueError(
            f"q has values in [{levels.min()}, {levels.max()}], outside the levels "
            f"[{params.qmin}, {params.qmax}] of these params"
        )
    _check_channels(levels, params, "q")
    scale, zero_point = _broadcast(params, levels.ndim)
    return (levels.astype(np.int64) - zero_point).astype(_F32) * scale


def fake_quant(x: Any, min: Any, max: Any, num_bits: int = 8, narrow_range: bool = False) -> np.ndarray:
    """Quantize and dequantize in one step, exactly like TensorFlow's fake-quant ops.

    Scalar ``min``/``max``: ``tf.quantization.fake_quant_with_min_max_vars``.
    1-D ``min``/``max``: ``..._per_channel``, one range per channel over the
    last axis of ``x``. The output equals TensorFlow's bit for bit (float32).
    Taught in ``01_buckets``; used again in ``06_quantization_aware_training`` and
    ``07_custom_quantization`` to redo a QAT layer's fake quantization by hand.

    Args:
        x: float array (float64 is converted to float32, as TF would).
        min, max: the range to quantize to (nudged so 0.0 is representable).
        num_bits: 2..16.
        narrow_range: use levels [1, 2**num_bits - 1] instead of [0, 2**num_bits - 1].

    Returns:
        float32 array, same shape as ``x``, every value on the quantization grid.
    """
    num_bits = check_num_bits(num_bits)
    narrow_range = check_bool(narrow_range, "narrow_range")
    values = finite_array(x, "x")
    lo, hi = _check_range(min, max)
    if lo.ndim == 1 and (values.ndim == 0 or values.shape[-1] != lo.size):
        raise ValueError(
            f"per-channel min/max have {lo.size} entries but x has shape {values.shape}; "
            "the last axis of x must have one channel per entry"
        )
    nudged_min, nudged_max, scale, inv_scale, _ = _nudge(lo, hi, *_unsigned_grid(num_bits, narrow_range))
    quant_zero = np.floor(-nudged_min * inv_scale + _F32(0.5))
    clamped = np.maximum(np.minimum(values, nudged_max), nudged_min)
    shifted = clamped - nudged_min
    # TF's per-tensor kernel divides by the scale, its per-channel kernel multiplies
    # by the inverse: the two can differ in the last bit, so follow each exactly.
    scaled = shifted / scale if lo.ndim == 0 else shifted * inv_scale
    return (np.floor(scaled - quant_zero + _F32(0.5)) * scale).astype(_F32)
