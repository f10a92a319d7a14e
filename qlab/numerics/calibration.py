"""Range estimators (calibration): which float range should a tensor be quantized to?

* :func:`minmax_range` - the whole observed range; no clipping, widest buckets.
* :func:`moving_average_range` - TFMOT's ``MovingAverageQuantizer`` during QAT:
  an exponential moving average of each batch's range.
* :func:`percentile_range` - ignore the rarest outliers.
* :func:`mse_optimal_range` - the clipping range that minimises the squared
  quantization error (clip a few outliers, get finer buckets for everything else).

Every estimator returns ``(min, max)`` as float32: scalars for the whole tensor,
or 1-D arrays with one range per channel along ``axis`` (``axis=-1``: the last
axis, TF/TFLite's convention for per-channel Dense weights and
``fake_quant_with_min_max_vars_per_channel``).

The notebook ``01_buckets`` teaches the idea.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

import numpy as np

from qlab.numerics.validate import check_axis, check_bool, check_num_bits, finite_array
from qlab.numerics.quant import choose_quant_params, dequantize, quantize

__all__ = [
    "minmax_range",
    "moving_average_range",
    "percentile_range",
    "mse_optimal_range",
    "estimate_range",
]

_F32 = np.float32


def _channels_last(x: np.ndarray, axis: int | None) -> np.ndarray:
    """View ``x`` as (values, channels): one column per channel, or a single column."""
    axis = check_axis(axis, max(x.ndim, 1))
    if axis is None:
        return x.reshape(-1, 1)
    return np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])


def _result(lo: np.ndarray, hi: np.ndarray, axis: int | None) -> tuple[Any, Any]:
    """float32 scalars for per-tensor, 1-D float32 arrays for per-axis."""
    lo, hi = np.asarray(lo, _F32), np.asarray(hi, _F32)
    if axis is None:
        return _F32(lo.reshape(-1)[0]), _F32(hi.reshape(-1)[0])
    return lo, hi


def minmax_range(x: Any, axis: int | None = None) -> tuple[Any, Any]:
    """The smallest and largest value of ``x`` (per channel along ``axis`` if given).

    Taught in ``01_buckets``.
    """
    values = _channels_last(finite_array(x, "x"), axis)
    return _result(values.min(axis=0), values.max(axis=0), axis)


def percentile_range(x: Any, percentile: float = 99.99, axis: int | None = None) -> tuple[Any, Any]:
    """``(100 - percentile)``-th and ``percentile``-th percentiles of ``x``.

    Args:
        percentile: in (50, 100]; 100 is the same as :func:`minmax_range`.
    """
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.number)) or not 50 < percentile <= 100:
        raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r}")
    values = _channels_last(finite_array(x, "x"), axis).astype(np.float64)
    lo, hi = np.percentile(values, [100.0 - percentile, percentile], axis=0)
    return _result(lo, hi, axis)


def _batch_range(batch: np.ndarray, axis: int | None, symmetric: bool, num_bits: int, narrow_range: bool):
    """TFMOT ``MovingAvgQuantize``'s per-batch range: widened to contain 0 (and symmetric if asked)."""
    values = _channels_last(batch, axis)
    batch_min, batch_max = values.min(axis=0), values.max(axis=0)
    if symmetric:
        # two's complement gives the negative side one more bucket
        ratio = _F32(-1.0) if narrow_range else _F32(-((1 << num_bits) - 2) / (1 << num_bits))
        return np.minimum(batch_min, batch_max / ratio), np.maximum(batch_max, batch_min * ratio)
    return np.minimum(batch_min, _F32(0.0)), np.maximum(batch_max, _F32(0.0))


def moving_average_range(
    batches: Iterable[Any],
    decay: float = 0.999,
    axis: int | None = None,
    symmetric: bool = False,
    num_bits: int = 8,
    narrow_range: bool = False,
    init_min: float | None = -6.0,
    init_max: float | None = 6.0,
) -> tuple[Any, Any]:
    """The range TFMOT's ``MovingAverageQuantizer`` has learned after seeing ``batches``.

    Follows ``quant_ops.MovingAvgQuantize``: each batch's min/max is widened to
    contain 0 (or made symmetric), then ``assign_moving_average(..., zero_debias=False)``
    updates ``v -= (v - batch_value) * (1 - decay)`` in float32. TFMOT starts the
    variables at ``[-6, 6]`` (``init_min``/``init_max``); with decay 0.999 it takes
    thousands of steps to forget that. Pass ``init_min=None, init_max=None`` to
    start from the first batch's range instead.

    Args:
        batches: an iterable of arrays (e.g. activations of successive training steps).
        decay: EMA decay in [0, 1).
        axis: None for one range, or the channel axis for per-channel ranges.
        symmetric, num_bits, narrow_range: as for the quantizer (symmetric ranges
            depend on them).
        init_min, init_max: starting values, or both None to use the first batch.
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float, np.number)) or not 0 <= decay < 1:
        raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
    symmetric = check_bool(symmetric, "symmetric")
    narrow_range = check_bool(narrow_range, "narrow_range")
    num_bits = check_num_bits(num_bits)
    if (init_min is None) != (init_max is None):
        raise ValueError("init_min and init_max must both be numbers or both be None")
    rate = _F32(1.0) - _F32(decay)
    lo = hi = None
    for i, batch in enumerate(batches):
        batch_lo, batch_hi = _batch_range(finite_array(batch, f"batches[{i}]"), axis, symmetric, num_bits, narrow_range)
        if lo is None:
            if init_min is None:
                lo, hi = batch_lo, batch_hi
                continue
            lo = np.full_like(batch_lo, finite_array(init_min, "init_min"))
            hi = np.full_like(batch_hi, finite_array(init_max, "init_max"))
        if batch_lo.shape != lo.shape:
            raise ValueError(f"batches[{i}] has {batch_lo.size} channels along axis {axis}, earlier batches {lo.size}")
        lo = lo - (lo - batch_lo) * rate
        hi = hi - (hi - batch_hi) * rate
    if lo is None:
        raise ValueError("batches is empty; it needs at least one batch")
    return _result(lo, hi, axis)


def _ratios(grid: Any) -> np.ndarray:
    """Candidate clipping ratios in (0, 1]: ``grid`` evenly spaced ones, or the given array."""
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        if grid < 1:
            raise ValueError(f"grid must be >= 1 (number of candidate ranges), got {grid}")
        return np.arange(1, grid + 1, dtype=np.float64) / grid
    ratios = finite_array(grid, "grid", np.float64).reshape(-1)
    if np.any(ratios <= 0) or np.any(ratios > 1):
        raise ValueError(f"grid ratios must be in (0, 1], got {grid!r}")
    return ratios


def mse_optimal_range(
    x: Any,
    num_bits: int = 8,
    symmetric: bool = False,
    narrow_range: bool = False,
    axis: int | None = None,
    grid: Any = 100,
) -> tuple[Any, Any]:
    """The clipping range ``[r*min, r*max]`` (``r`` in ``grid``) with the lowest quantization MSE.

    Shrinking the min/max range clips the outliers but makes every bucket
    narrower; on heavy-tailed tensors (weights, activations with rare spikes)
    that trade wins. The range is widened to contain 0 first (TensorFlow would
    shift it anyway), then every candidate is quantized with
    :func:`qlab.choose_quant_params` and the squared error measured.

    Args:
        x: the tensor to calibrate for.
        num_bits, symmetric, narrow_range: the quantizer the range is for.
        axis: None for one range, or the channel axis for one range per channel.
        grid: number of evenly spaced ratios in (0, 1], or an array of ratios.
    """
    ratios, lo, hi, errors = _clipping_errors(x, num_bits, symmetric, narrow_range, axis, grid)
    best_ratio = ratios[np.argmin(errors, axis=0)]  # first (smallest) ratio wins a tie
    return _result(lo * best_ratio, hi * best_ratio, axis)


def _clipping_errors(x: Any, num_bits: int, symmetric: bool, narrow_range: bool,
                     axis: int | None, grid: Any) -> tuple[np.ndarray, ...]:
    """Quantization MSE of every candidate range ``[r*min, r*max]``: shape (ratios, channels)."""
    values = finite_array(x, "x")
    columns = _channels_last(values, axis).astype(_F32)
    ratios = _ratios(grid)
    lo = np.minimum(columns.min(axis=0), 0).astype(np.float64)
    hi = np.maximum(columns.max(axis=0), 0).astype(np.float64)
    if np.any(lo == hi):
        channel = int(np.argmax(lo == hi))
        raise ValueError(f"x is all zeros{'' if axis is None else f' in channel {channel}'}; there is no range to calibrate")
    per_axis = None if axis is None else -1
    errors = np.empty((len(ratios), lo.size))
    for i, ratio in enumerate(ratios):
        cand_lo, cand_hi = _result(lo * ratio, hi * ratio, per_axis)
        params = choose_quant_params(cand_lo, cand_hi, num_bits, True, symmetric, narrow_range, per_axis)
        restored = dequantize(quantize(columns, params), params)
        errors[i] = np.mean((restored.astype(np.float64) - columns) ** 2, axis=0)
    return ratios, lo, hi, errors


def clipping_error_curve(x: Any, num_bits: int = 8, symmetric: bool = False,
                         narrow_range: bool = False, grid: Any = 100) -> tuple[np.ndarray, np.ndarray]:
    """The rounding-vs-clipping trade-off: quantization MSE for ranges ``[r*min, r*max]``.

    Returns ``(ratios, mse)``: ratio 1 is the min/max range (no clipping, widest
    buckets); smaller ratios clip more values but round the rest more finely.
    The minimum of the curve is what :func:`mse_optimal_range` picks.
    Taught in ``01_buckets``.
    """
    ratios, _, _, errors = _clipping_errors(x, num_bits, symmetric, narrow_range, None, grid)
    return ratios, errors[:, 0]


_ESTIMATORS: dict[str, Callable[..., tuple[Any, Any]]] = {
    "minmax": minmax_range,
    "percentile": percentile_range,
    "mse": mse_optimal_range,
    "moving_average": moving_average_range,
}


def estimate_range(x: Any, method: str = "minmax", **kwargs: Any) -> tuple[Any, Any]:
    """Run the range estimator called ``method`` ("minmax", "percentile", "mse", "moving_average").

    Keyword arguments go to the estimator (``axis``, ``percentile``, ``num_bits``...).
    For "moving_average", ``x`` is the iterable of batches. Taught in ``01_buckets``.
    """
    if method not in _ESTIMATORS:
        raise ValueError(f"method must be one of {sorted(_ESTIMATORS)}, got {method!r}")
    return _ESTIMATORS[method](x, **kwargs)
