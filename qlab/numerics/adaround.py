"""AdaRound's math in numpy: learned up-or-down rounding of weights (Nagel et al. 2020).

"Up or Down? Adaptive Rounding for Post-Training Quantization" replaces round-to-nearest
by a choice, per weight, between ``floor(w / s)`` and ``floor(w / s) + 1``. The choice is
relaxed to a continuous variable ``h(V)`` in [0, 1] (the *rectified sigmoid*, which
reaches 0 and 1 exactly), trained to reconstruct each layer's output, and pushed to 0 or 1
by a regularizer whose exponent ``beta`` is annealed from 20 (flat: every ``h`` may move)
to 2 (steep: ``h`` must commit). At the end ``h(V) >= 0.5`` rounds up.

Everything here is on TFLite's weight grid: symmetric, narrow range, integer levels
``[-(2**(N-1) - 1), 2**(N-1) - 1]``, one scale ``max|w| / qmax`` per tensor or per
output channel (the last axis). The TensorFlow optimisation loop is
:func:`qlab.ptq.adaround.adaround_weights`. Taught in ``06_quantization_aware_training`` (the rung between
post-training quantization and QAT).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.numerics.quant import weight_quant_params
from qlab.numerics.rounding import tflite_round
from qlab.numerics.validate import check_bool, check_num_bits, finite_array

__all__ = ["ZETA", "GAMMA", "rectified_sigmoid", "initial_rounding_logits", "grid_limits",
           "adaround_scales", "soft_weights", "hard_codes", "nearest_codes",
           "rounding_regularizer", "beta_schedule"]

ZETA, GAMMA = 1.1, -0.1  #: the paper's stretch of the sigmoid: h reaches 0 and 1 at finite V


def rectified_sigmoid(v: Any) -> np.ndarray:
    """``h(V) = clip(sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0, 1)`` (the paper's eq. 23)."""
    v = np.asarray(v, dtype=np.float64)
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * v))  # overflow-free logistic function
    return np.clip(sigmoid * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def initial_rounding_logits(w: Any, scale: Any) -> np.ndarray:
    """``V`` with ``h(V) = w / s - floor(w / s)``: the soft weights start exactly at ``w``.

    Hard-rounding this start (``h >= 0.5`` up) is round-to-nearest, so AdaRound starts
    from the post-training answer and can only move away from it where that helps.
    """
    ratio = np.asarray(w, dtype=np.float64) / np.asarray(scale, dtype=np.float64)
    fraction = ratio - np.floor(ratio)
    p = (fraction - GAMMA) / (ZETA - GAMMA)  # in [1/12, 11/12]: the logit is finite
    return np.log(p / (1.0 - p)).astype(np.float32)


def grid_limits(num_bits: int) -> tuple[int, int]:
    """TFLite's symmetric narrow weight grid: ``(-(2**(N-1) - 1), 2**(N-1) - 1)``."""
    num_bits = check_num_bits(num_bits, high=8)
    qmax = (1 << (num_bits - 1)) - 1
    return -qmax, qmax


def adaround_scales(w: Any, num_bits: int, per_channel: bool) -> np.ndarray:
    """The weight scale ``max|w| / qmax``, shaped to broadcast against ``w`` (channels last).

    Per channel: one scale per slice of the last axis; per tensor: one scale. The same
    scale as :func:`qlab.numerics.quant.weight_quant_params` (and so the converter).
    """
    values = finite_array(w, "w")
    per_channel = check_bool(per_channel, "per_channel")
    params = weight_quant_params(values, check_num_bits(num_bits, high=8),
                                 axis=values.ndim - 1 if per_channel else None)
    return np.asarray(params.scale, dtype=np.float32)  # (channels,) or 0-d: broadcasts either way


def soft_weights(w: Any, v: Any, scale: Any, num_bits: int) -> np.ndarray:
    """``W~ = s * clip(floor(w / s) + h(V), qmin, qmax)``: the relaxed weights being trained."""
    qmin, qmax = grid_limits(num_bits)
    scale = np.asarray(scale, dtype=np.float64)
    base = np.floor(np.asarray(w, dtype=np.float64) / scale)
    return (scale * np.clip(base + rectified_sigmoid(v), qmin, qmax)).astype(np.float32)


def hard_codes(w: Any, v: Any, scale: Any, num_bits: int) -> np.ndarray:
    """The integer levels AdaRound chose: ``clip(floor(w / s) + [h(V) >= 0.5], qmin, qmax)``."""
    qmin, qmax = grid_limits(num_bits)
    base = np.floor(np.asarray(w, dtype=np.float64) / np.asarray(scale, dtype=np.float64))
    return np.clip(base + (rectified_sigmoid(v) >= 0.5), qmin, qmax).astype(np.int64)


def nearest_codes(w: Any, scale: Any, num_bits: int) -> np.ndarray:
    """Round-to-nearest levels (half away from zero, as TFLite): the baseline AdaRound starts from."""
    qmin, qmax = grid_limits(num_bits)
    ratio = np.asarray(w, dtype=np.float64) / np.asarray(scale, dtype=np.float64)
    return np.clip(tflite_round(ratio), qmin, qmax).astype(np.int64)


def rounding_regularizer(v: Any, beta: float) -> float:
    """``sum(1 - |2 h(V) - 1| ** beta)``: 0 once every ``h`` is 0 or 1, largest at ``h = 0.5``."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) or beta <= 0:
        raise ValueError(f"beta must be a number > 0 (the paper anneals it from 20 to 2), got {beta!r}")
    return float(np.sum(1.0 - np.abs(2.0 * rectified_sigmoid(v) - 1.0) ** beta))


def beta_schedule(iteration: int, iterations: int, warm_up: float = 0.2, start: float = 20.0,
                  end: float = 2.0) -> float | None:
    """The regularizer's exponent at ``iteration``: None during warm-up, then linear ``start -> end``.

    The paper spends the first 20% of the iterations on reconstruction alone, then anneals
    beta from 20 to 2 (AIMET's ``LinearTempDecay``).
    """
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not 0.0 <= warm_up < 1.0:
        raise ValueError(f"warm_up must be a fraction in [0, 1), got {warm_up!r}")
    first = int(warm_up * iterations)
    if iteration < first:
        return None
    progress = (iteration - first) / max(iterations - first, 1)
    return float(end + (start - end) * max(0.0, 1.0 - progress))
