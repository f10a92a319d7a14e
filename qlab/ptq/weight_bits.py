"""Weights at 8 down to 2 bits, per tensor or per channel, through the real int8 TFLite path.

The post-training converter stores weights in 8 bits, so an N-bit weight is
simulated: the kernel (batch norm folded) is fake-quantized to N bits first -
symmetric, narrow range, TFLite's convention - and the converter then stores those
values in int8 (with 8-bit activations, calibrated on the same images). That rounds
each N-bit level once more onto the int8 grid (scale ``max|w| / 127``), which moves it
by up to half an int8 step: the stand-in keeps the N-bit level count, not exactly
the N-bit values. Per-channel N-bit weights go through ``int8_per_channel``,
per-tensor ones through ``int8_per_tensor``.
:func:`fake_quantize_kernel_mse` clips each channel at its MSE-optimal range instead
(``06_quantization_aware_training``'s best PTQ). The sweeps over bit widths and models
are the studies of :mod:`qlab.workbook.studies.weight_bits`. Taught in ``05_per_channel``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from qlab.ptq.batch_norm_folding import fold_batch_norm
from qlab.zoo.introspect import WEIGHT_LAYER_TYPES, channel_ranges_table
from qlab.numerics.quant import choose_quant_params, dequantize, quantize, weight_quant_params
from qlab.numerics.validate import check_bool, check_num_bits

__all__ = ["fake_quantize_kernel", "round_layer_kernel", "rounded_weights_model", "fake_quantize_weights",
           "channel_spreads", "activation_spreads", "evaluate_variant", "fake_quantize_kernel_mse",
           "fake_quantize_weights_mse", "kernel_codes"]


def fake_quantize_kernel(kernel: np.ndarray, num_bits: int, per_channel: bool) -> np.ndarray:
    """``kernel`` rounded to ``num_bits`` symmetric narrow-range levels (TFLite's weight scheme).

    The output channels are the last axis (reshape a DepthwiseConv2D kernel to
    (kh, kw, in * multiplier) first). Equals ``tf.quantization.fake_quant_with_min_max_vars``
    (``_per_channel``) with ``min = -max|w|``, ``max = max|w|`` and ``narrow_range=True``.
    """
    num_bits = check_num_bits(num_bits, high=8)
    per_channel = check_bool(per_channel, "per_channel")
    w = np.asarray(kernel, dtype=np.float32)
    params = weight_quant_params(w, num_bits, axis=w.ndim - 1 if per_channel else None)
    return dequantize(quantize(w, params), params)


def round_layer_kernel(layer: Any, round_kernel: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace ``layer``'s kernel by ``round_kernel(kernel)``, output channels on the last axis.

    A DepthwiseConv2D kernel is handed over as (kh, kw, in * multiplier): one output
    channel per (input, multiplier) pair, as TFLite scales it.
    """
    weights = layer.get_weights()
    kernel = weights[0]
    if type(layer).__name__ == "DepthwiseConv2D":
        weights[0] = round_kernel(kernel.reshape(*kernel.shape[:-2], -1)).reshape(kernel.shape)
    else:
        weights[0] = round_kernel(kernel)
    layer.set_weights(weights)


def rounded_weights_model(model: Any, round_kernel: Callable[[np.ndarray], np.ndarray],
                          keep: Sequence[str] = ()) -> Any:
    """A copy of ``model`` (batch norm folded) with every weight layer's kernel rounded by ``round_kernel``.

    Conv2D, DepthwiseConv2D and Dense kernels (see :func:`round_layer_kernel`), except
    the layers named in ``keep``; biases and activations stay float.
    """
    rounded = fold_batch_norm(model)
    for layer in rounded.layers:
        if type(layer).__name__ in WEIGHT_LAYER_TYPES and layer.name not in keep:
            round_layer_kernel(layer, round_kernel)
    return rounded


def fake_quantize_weights(model: Any, num_bits: int, per_channel: bool) -> Any:
    """A copy of ``model`` (batch norm folded) whose every kernel holds ``num_bits`` weights.

    Conv2D, DepthwiseConv2D and Dense kernels are rounded per output channel or per
    tensor; biases and activations stay float. Taught in ``05_per_channel``.
    """
    num_bits = check_num_bits(num_bits, high=8)
    per_channel = check_bool(per_channel, "per_channel")
    return rounded_weights_model(model, lambda kernel: fake_quantize_kernel(kernel, num_bits, per_channel))


def channel_spreads(model: Any) -> "pd.DataFrame":
    """Each weight layer's channel spread (largest / median channel bound, batch norm folded)."""
    return channel_ranges_table(model)[["kind", "channels", "range spread"]]


def activation_spreads(model: Any, x: np.ndarray) -> "pd.DataFrame":
    """Each weight layer's output (after its fused ReLU): largest / median channel max on ``x``."""
    import pandas as pd

    from qlab.zoo.introspect import model_activations

    rows = []
    for key, values in model_activations(model, x).items():
        bound = np.abs(values.reshape(-1, values.shape[-1])).max(axis=0)
        rows.append({"layer": key.replace(" activations", ""),
                     "activation spread": float(bound.max() / max(np.median(bound), 1e-12))})
    return pd.DataFrame(rows).set_index("layer")


def evaluate_variant(model: Any, variant: str, x_calib: np.ndarray, x_test: np.ndarray
                     ) -> tuple[np.ndarray, float]:
    """Convert ``model`` as ``variant`` (calibrated on ``x_calib``), return (test scores, seconds)."""
    from qlab.conversion.converter import convert
    from qlab.conversion.tflite import predict_tflite

    start = time.perf_counter()
    model_bytes = convert(model, variant, x_calib, num_samples=len(x_calib))
    return predict_tflite(model_bytes, x_test), time.perf_counter() - start


def _per_channel_levels(kernel: np.ndarray, lo: np.ndarray, hi: np.ndarray, num_bits: int
                        ) -> np.ndarray:
    params = choose_quant_params(lo.astype(np.float32), hi.astype(np.float32), num_bits,
                                 symmetric=True, narrow_range=True, axis=-1)
    return dequantize(quantize(kernel, params), params)


def fake_quantize_kernel_mse(kernel: np.ndarray, num_bits: int, grid: int = 100) -> np.ndarray:
    """``kernel`` on ``num_bits`` symmetric narrow levels, one MSE-optimal clipping range per channel.

    Output channels are the last axis (reshape a DepthwiseConv2D kernel to
    ``(kh, kw, in * multiplier)`` first). Each channel's range is ``r * max|w|`` with
    ``r`` in ``grid`` ratios (1 included) chosen by
    :func:`qlab.numerics.calibration.mse_optimal_range`, so each channel's error is at
    most the min-max range's; where float rounding says otherwise the min-max channel
    is kept. Taught in ``06_quantization_aware_training``.
    """
    from qlab.numerics.calibration import mse_optimal_range

    num_bits = check_num_bits(num_bits, high=8)
    w = np.asarray(kernel, dtype=np.float32)
    if w.ndim < 2:
        raise ValueError(f"kernel must have an output-channel axis (ndim >= 2), got shape {w.shape}")
    columns = w.reshape(-1, w.shape[-1])
    bound = np.maximum(np.abs(columns).max(axis=0), 1e-12)
    lo, hi = mse_optimal_range(columns, num_bits, symmetric=True, narrow_range=True, axis=-1,
                               grid=grid) if np.all(np.abs(columns).max(axis=0) > 0) else (-bound, bound)
    clipped = _per_channel_levels(columns, np.asarray(lo), np.asarray(hi), num_bits)
    minmax = _per_channel_levels(columns, -bound, bound, num_bits)
    worse = np.mean((clipped - columns) ** 2, axis=0) > np.mean((minmax - columns) ** 2, axis=0)
    return np.where(worse, minmax, clipped).reshape(w.shape)


def fake_quantize_weights_mse(model: Any, num_bits: int) -> Any:
    """A BN-folded copy of ``model`` whose kernels hold per-channel MSE-clipped ``num_bits`` weights.

    Conv2D, DepthwiseConv2D and Dense kernels; biases and activations stay float.
    Taught in ``06_quantization_aware_training``.
    """
    from qlab.ptq.weight_bits import rounded_weights_model

    num_bits = check_num_bits(num_bits, high=8)
    return rounded_weights_model(model, lambda kernel: fake_quantize_kernel_mse(kernel, num_bits))


def kernel_codes(kernel: np.ndarray, num_bits: int, channels: int | None) -> np.ndarray:
    """The integer codes of ``kernel`` under a min-max symmetric narrow ``num_bits`` quantizer.

    ``channels``: None for one scale per tensor, else the number of per-channel scales
    (the trailing axes are flattened to that many channels: a depthwise kernel's
    ``in * multiplier``). TFMOT's ``LastValueQuantizer`` takes exactly this scale from
    the kernel at every step.
    """
    w = np.asarray(kernel, dtype=np.float32)
    if channels is None:
        return quantize(w, weight_quant_params(w, num_bits, None))
    columns = w.reshape(-1, channels)
    return quantize(columns, weight_quant_params(columns, num_bits, -1))
