"""How much did quantization cost? Error metrics and bucket occupancy.

* :func:`mse`, :func:`max_abs_error` - the error itself;
* :func:`sqnr_db` - signal-to-quantization-noise ratio, ``10 log10(signal / noise)``;
  each extra bit adds about 6 dB;
* :func:`bucket_occupancy` - how many of the ``2**num_bits`` levels a tensor
  actually uses (a badly chosen range leaves most of them empty);
* :func:`error_report` - all of the above for one tensor and one
  :class:`~qlab.numerics.quant.QuantParams`, ready to display (the bucket explorer shows it).

The notebook ``01_buckets`` teaches the idea.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qlab.numerics.validate import finite_array
from qlab.numerics.quant import QuantParams, dequantize, quantize

__all__ = ["ROUNDING_NOISE", "mse", "max_abs_error", "sqnr_db", "bucket_occupancy", "error_report", "QuantErrorReport",
           "describe_buckets"]


#: 1/sqrt(12): the RMS error of rounding to a uniform grid with step 1, the floor of any
#: quantization error measured in steps (``rmse/scale`` of TFLite's debugger).
ROUNDING_NOISE = float(1 / np.sqrt(12))


def _pair(x: Any, y: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two finite float64 arrays of the same shape."""
    a = finite_array(x, names[0], np.float64)
    b = finite_array(y, names[1], np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def mse(x: Any, y: Any) -> float:
    """Mean squared difference between ``x`` and ``y`` (computed in float64)."""
    a, b = _pair(x, y, ("x", "y"))
    return float(np.mean((a - b) ** 2))


def max_abs_error(x: Any, y: Any) -> float:
    """Largest absolute difference between ``x`` and ``y``."""
    a, b = _pair(x, y, ("x", "y"))
    return float(np.max(np.abs(a - b)))


def sqnr_db(x: Any, x_hat: Any) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10 log10(sum(x**2) / sum((x - x_hat)**2))``.

    ``inf`` when ``x_hat`` equals ``x`` exactly; ``-inf`` when ``x`` is all zeros
    but ``x_hat`` is not.
    """
    a, b = _pair(x, x_hat, ("x", "x_hat"))
    signal, noise = float(np.sum(a**2)), float(np.sum((a - b) ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def bucket_occupancy(q_or_x: Any, params: QuantParams) -> tuple[int, np.ndarray]:
    """How many of the levels of ``params`` a tensor uses, and how often each one.

    Args:
        q_or_x: integer levels (from :func:`qlab.quantize`) or a float tensor,
            which is quantized with ``params`` first.
        params: the quantization parameters.

    Returns:
        ``(levels_used, counts)`` where ``counts[i]`` is how many values fell on
        level ``params.qmin + i`` (``params.levels`` entries, all channels together).
    """
    if not isinstance(params, QuantParams):
        raise TypeError(f"params must be a QuantParams (see choose_quant_params), got {type(params).__name__}")
    values = np.asarray(q_or_x)
    if values.dtype != bool and np.issubdtype(values.dtype, np.integer):
        if values.size == 0:
            raise ValueError("q_or_x is empty; it needs at least one value")
        if values.min() < params.qmin or values.max() > params.qmax:
            raise ValueError(
                f"q_or_x has levels in [{values.min()}, {values.max()}], outside [{params.qmin}, {params.qmax}]"
            )
        levels = values
    else:
        levels = quantize(finite_array(values, "q_or_x"), params)
    counts = np.bincount((levels.astype(np.int64) - params.qmin).reshape(-1), minlength=params.levels)
    return int(np.count_nonzero(counts)), counts


@dataclass(frozen=True)
class QuantErrorReport:
    """What quantizing one tensor with one set of :class:`QuantParams` cost.

    Returned by :func:`error_report`. Taught in ``01_buckets``.
    """

    mse: float
    max_abs_error: float
    sqnr_db: float
    buckets_used: int
    levels: int
    clipped_fraction: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __repr__(self) -> str:
        return (
            f"QuantErrorReport(mse={self.mse:.4g}, max_abs_error={self.max_abs_error:.4g}, "
            f"sqnr_db={self.sqnr_db:.2f}, buckets_used={self.buckets_used}/{self.levels}, "
            f"clipped_fraction={self.clipped_fraction:.3%})"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("MSE", f"{self.mse:.4g}"),
            ("max |error|", f"{self.max_abs_error:.4g}"),
            ("SQNR", f"{self.sqnr_db:.2f} dB"),
            ("buckets used", f"{self.buckets_used} of {self.levels} ({self.buckets_used / self.levels:.1%})"),
            ("clipped", f"{self.clipped_fraction:.3%} of values"),
        ]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return f"<table><caption>Quantization error</caption>{body}</table>"


def error_report(x: Any, params: QuantParams) -> QuantErrorReport:
    """Quantize ``x`` with ``params`` and measure everything the bucket explorer shows.

    ``clipped_fraction`` is the share of values outside the representable range
    ``[params.min, params.max]`` (they all land on the end levels). Taught in
    ``01_buckets``.
    """
    if not isinstance(params, QuantParams):
        raise TypeError(f"params must be a QuantParams (see choose_quant_params), got {type(params).__name__}")
    values = finite_array(x, "x")
    q = quantize(values, params)
    restored = dequantize(q, params)
    used, _ = bucket_occupancy(q, params)
    lo, hi = params.min, params.max
    if params.axis is not None:
        shape = [1] * values.ndim
        shape[params.axis] = -1
        lo, hi = lo.reshape(shape), hi.reshape(shape)
    clipped = float(np.mean((values < lo) | (values > hi)))
    return QuantErrorReport(
        mse=mse(values, restored),
        max_abs_error=max_abs_error(values, restored),
        sqnr_db=sqnr_db(values, restored),
        buckets_used=used,
        levels=params.levels,
        clipped_fraction=clipped,
    )


def describe_buckets(values: Any, params: QuantParams) -> "pandas.DataFrame":
    """One row per value: its integer code, the bucket it falls into, and what comes back.

    Columns: ``value``, ``q`` (the integer), ``bucket_low``/``bucket_high`` (the
    floats that round to ``q``; clipped values show the edge bucket),
    ``dequantized`` and ``error``. Per-tensor ``params`` only. Taught in ``01_buckets``.
    """
    import pandas as pd

    if params.per_axis:
        raise ValueError("describe_buckets needs per-tensor params (axis=None), got per-axis params")
    x = finite_array(values, "values", np.float32).reshape(-1)
    q = quantize(x, params)
    centre = dequantize(q, params)
    half = np.float32(params.scale) / 2
    return pd.DataFrame({"value": x, "q": q.astype(int), "bucket_low": centre - half,
                         "bucket_high": centre + half, "dequantized": centre,
                         "error": centre - x})
