"""Counting zeros: how sparse a weight tensor is, per tensor, per channel and in m:n groups.

Pruning sets weights to exactly zero; these functions count them in any array - a Keras
kernel, or the int8 values read from a ``.tflite`` - so a lesson can check what pruning
did and whether the zeros survived quantization, instead of assuming it. An int8 weight
is zero exactly when its float value was (symmetric weights have zero-point 0).

Layouts: a Keras Conv2D kernel is ``(kh, kw, in, out)`` and a Dense kernel ``(in, out)``;
TFLite stores the same weights as ``(out, kh, kw, in)`` and ``(out, in)``
(:func:`tflite_layout`). TFMOT's 2:4 pruning groups consecutive *input* channels: the
last axis in TFLite's layout, axis ``-2`` of a Keras kernel.

Taught in ``09_deep_compression``; :mod:`qlab.compression.prune` uses it. The compressed sizes
that show what the zeros buy are in :mod:`qlab.numerics.compression`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.numerics.validate import check_axis

__all__ = ["check_sparsity", "check_m_by_n", "zero_fraction", "zeros_per_channel",
           "m_by_n_violations", "is_m_by_n_sparse", "tflite_layout", "zeros_kept"]


def check_sparsity(value: Any, argument: str = "target_sparsity", allow_zero: bool = False) -> float:
    """Return ``value`` as a float in (0, 1) ([0, 1) with ``allow_zero``), else raise a ValueError.

    A sparsity is the fraction of weights set to zero: 1 would remove every weight.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{argument} must be a number in {'[0' if allow_zero else '(0'}, 1), "
                        f"the fraction of weights set to zero, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        raise ValueError(f"{argument} must be in {'[0' if allow_zero else '(0'}, 1) (the fraction "
                         f"of weights set to zero, e.g. 0.75), got {value!r}")
    return float(value)


def check_m_by_n(m_by_n: Any, argument: str = "m_by_n") -> tuple[int, int]:
    """Return ``m_by_n`` as ``(m, n)``: m zeros in every n consecutive weights, 0 < m < n."""
    ok = (isinstance(m_by_n, (tuple, list)) and len(m_by_n) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in m_by_n))
    if not ok or not 0 < m_by_n[0] < m_by_n[1]:
        raise ValueError(f"{argument} must be a pair (m, n) of integers with 0 < m < n - m zeros in "
                         f"every n consecutive weights, e.g. (2, 4) - got {m_by_n!r}")
    return int(m_by_n[0]), int(m_by_n[1])


def _array(values: Any, argument: str = "values") -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        raise ValueError(f"{argument} is empty (shape {array.shape}); it needs at least one value")
    return array


def zero_fraction(values: Any) -> float:
    """The fraction of entries of ``values`` that are exactly zero (its sparsity)."""
    array = _array(values)
    return float(np.count_nonzero(array == 0) / array.size)


def zeros_per_channel(values: Any, axis: int = -1) -> np.ndarray:
    """How many entries are zero in each slice along ``axis`` (one count per output channel).

    ``axis``: -1 for a Keras Conv2D/Dense kernel, 0 for TFLite's CONV_2D/FULLY_CONNECTED weights.
    TFMOT's magnitude pruning ranks the whole tensor, so channels end up unevenly pruned.
    """
    array = _array(values)
    axis = check_axis(axis, array.ndim)
    return np.count_nonzero(np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1) == 0, axis=1)


def _groups(array: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Rows of ``n`` consecutive values along ``axis``; a short last group is zero-padded (as in TFMOT)."""
    rows = np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis])
    pad = -rows.shape[1] % n
    return np.pad(rows, ((0, 0), (0, pad))).reshape(-1, n)


def m_by_n_violations(values: Any, m_by_n: tuple[int, int] = (2, 4), axis: int = -2) -> int:
    """How many groups of ``n`` consecutive values along ``axis`` have fewer than ``m`` zeros.

    0 means ``values`` has m:n structured sparsity. ``axis=-2`` is the input-channel axis
    of a Keras Conv2D (kh, kw, in, out) or Dense (in, out) kernel, the axis TFMOT's
    ``sparsity_m_by_n`` groups; use ``axis=-1`` for TFLite's layout. A last group shorter
    than ``n`` counts as padded with zeros, as TFMOT pads it (so a conv with one input
    channel always passes: 2:4 cannot prune it).
    """
    m, n = check_m_by_n(m_by_n)
    array = _array(values)
    groups = _groups(array, n, check_axis(axis, array.ndim))
    return int(np.count_nonzero(np.count_nonzero(groups == 0, axis=1) < m))


def is_m_by_n_sparse(values: Any, m_by_n: tuple[int, int] = (2, 4), axis: int = -2) -> bool:
    """Whether every group of ``n`` consecutive values along ``axis`` has at least ``m`` zeros."""
    return m_by_n_violations(values, m_by_n, axis) == 0


def tflite_layout(kernel: Any) -> np.ndarray:
    """A Keras Conv2D ``(kh, kw, in, out)`` or Dense ``(in, out)`` kernel in TFLite's layout.

    TFLite's CONV_2D weights are ``(out, kh, kw, in)`` and FULLY_CONNECTED ``(out, in)``,
    so a weight can be compared position by position with the one the file stores.
    """
    array = _array(kernel, "kernel")
    if array.ndim == 4:
        return np.transpose(array, (3, 0, 1, 2))
    if array.ndim == 2:
        return array.T
    raise ValueError(f"kernel must be a Conv2D (4-d) or Dense (2-d) kernel, got shape {array.shape}")


def zeros_kept(before: Any, after: Any) -> float:
    """The share of the zeros of ``before`` that are still zero in ``after`` (same shape).

    E.g. a pruned Keras kernel (in TFLite's layout, :func:`tflite_layout`) against the
    int8 weights of the converted file: 1.0 means quantization kept every pruned weight at 0.
    Returns 1.0 when ``before`` has no zeros (nothing could be lost).
    """
    before, after = _array(before, "before"), _array(after, "after")
    if before.shape != after.shape:
        raise ValueError(f"before and after must have the same shape, got {before.shape} and {after.shape}")
    zeros = before == 0
    total = int(np.count_nonzero(zeros))
    return 1.0 if total == 0 else float(np.count_nonzero(after[zeros] == 0) / total)
