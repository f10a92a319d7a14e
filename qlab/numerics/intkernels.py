"""TFLite's int8 reference kernels, re-done with numpy integers.

Each function here computes what one TFLite builtin operator computes on int8
tensors with the reference kernels (``tensorflow/lite/kernels/internal/reference/
integer_ops/*.h``, ``reference/reduce.h`` and the table-driven int8 softmax), batched
over the leading axis and vectorised. Only integer arithmetic touches the
data; floating point appears only where TFLite itself uses it while *preparing*
an operator (turning scales into a fixed-point multiplier and shift, or the
activation clamp bounds).

Dot products are summed in float64 because numpy's integer matmul has no BLAS
path; every partial sum is an integer far below 2**53, so float64 holds it
exactly and the result is the same int32 accumulator the C++ loop produces.

The requantization helpers come from :mod:`qlab.numerics.fixedpoint`; :mod:`qlab.conversion.intsim`
reads a ``.tflite`` file and calls these kernels one operator at a time.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qlab.numerics.rounding import tflite_round
from qlab.numerics.fixedpoint import (
    INT32_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
)

INT8_MIN, INT8_MAX = -128, 127

# TFLite ActivationFunctionType codes -> names (schema.fbs)
FUSED_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def activation_range(fused_activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite ``CalculateActivationRangeQuantized`` for an int8 output.

    The fused ReLU/ReLU6 bounds are the quantized images of 0 and 6, computed in
    float32 like the C++ (``zero_point + round(f / scale)``), intersected with
    [-128, 127].
    """
    name = FUSED_ACTIVATIONS.get(int(fused_activation), str(fused_activation))

    def quantize(real: float) -> int:
        return int(zero_point) + int(tflite_round(np.float32(real) / np.float32(scale)))

    if name == "NONE":
        return INT8_MIN, INT8_MAX
    if name == "RELU":
        return max(INT8_MIN, quantize(0.0)), INT8_MAX
    if name == "RELU6":
        return max(INT8_MIN, quantize(0.0)), min(INT8_MAX, quantize(6.0))
    if name == "RELU_N1_TO_1":
        return max(INT8_MIN, quantize(-1.0)), min(INT8_MAX, quantize(1.0))
    raise NotImplementedError(f"fused activation {name} is not supported by qlab.conversion.intsim")


def requantize_accumulator(
    acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, output_zero_point: int,
    act_min: int, act_max: int,
) -> np.ndarray:
    """int32 accumulator -> int8: fixed-point multiply, add the zero point, clamp."""
    scaled = multiply_by_quantized_multiplier(acc, multiplier, shift).astype(np.int64)
    return np.clip(scaled + output_zero_point, act_min, act_max).astype(np.int8)


def multiply_by_quantized_multiplier_single_round(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x * multiplier * 2**(shift - 31)`` with one rounding (half up) - TFLite's ``TFLITE_SINGLE_ROUNDING`` variant.

    LiteRT's int8 FULLY_CONNECTED reference kernel requantizes this way
    (``(x * m + 2**(30 - shift)) >> (31 - shift)`` in int64), while CONV_2D and
    DEPTHWISE_CONV_2D use the double-rounding
    :func:`qlab.numerics.fixedpoint.multiply_by_quantized_multiplier`. They differ only
    when the value sits at (or within 2**-31 of) a half: measured against the
    interpreter, using the wrong one changes a few hundred of 50 000 FC outputs.
    """
    x = np.asarray(x, dtype=np.int64)
    total_shift = 31 - np.asarray(shift, dtype=np.int64)
    rounding = np.int64(1) << (total_shift - 1)
    return (x * np.asarray(multiplier, dtype=np.int64) + rounding) >> total_shift


def output_size(padding: str, in_size: int, filter_size: int, stride: int, dilation: int = 1) -> int:
    """TFLite ``ComputeOutSize`` for SAME or VALID padding."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    if padding == "VALID":
        return (in_size + stride - effective) // stride
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")


def padding_before(in_size: int, filter_size: int, stride: int, dilation: int, out_size: int) -> int:
    """TFLite ``ComputePaddingWithOffset``: the odd extra row/column goes after, not before."""
    effective = (filter_size - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2


def _windows(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
    padding: str, fill: int,
):
    """Yield ``(kh, kw, slice)``: the input value every output position sees at kernel tap (kh, kw).

    ``x`` is NHWC; positions outside the image read ``fill``.
    """
    _, height, width, _ = x.shape
    out_h = output_size(padding, height, kernel[0], stride[0], dilation[0])
    out_w = output_size(padding, width, kernel[1], stride[1], dilation[1])
    pad_h = padding_before(height, kernel[0], stride[0], dilation[0], out_h)
    pad_w = padding_before(width, kernel[1], stride[1], dilation[1], out_w)
    need_h = (out_h - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1
    need_w = (out_w - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1
    padded = np.pad(
        x,
        ((0, 0), (pad_h, max(need_h - height - pad_h, 0)), (pad_w, max(need_w - width - pad_w, 0)), (0, 0)),
        constant_values=fill,
    )
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            top, left = kh * dilation[0], kw * dilation[1]
            yield kh, kw, padded[
                :, top: top + (out_h - 1) * stride[0] + 1: stride[0],
                left: left + (out_w - 1) * stride[1] + 1: stride[1], :
            ]


def conv2d(
    x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, *, input_zero_point: int,
    multiplier: np.ndarray, shift: np.ndarray, output_zero_point: int, act_min: int, act_max: int,
    stride: tuple[int, int], dilation: tuple[int, int], padding: str,
) -> np.ndarray:
    """int8 CONV_2D (``reference_integer_ops::ConvPerChannel``); weights are OHWI."""
    centred = x.astype(np.int64) - input_zero_point  # padding reads input_zero_point, i.e. 0 here
    acc = None
    for kh, kw, window in _windows(centred, weights.shape[1:3], stride, dilation, padding, fill=0):
        term = window.astype(np.float64) @ weights[:, kh, kw, :].T.astype(np.float64)
        acc = term if acc is None else acc + term
    acc = acc.astype(np.int64)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return requantize_accumulator(acc, multiplier, shift, output_zero_point, act_min, act_max)


def depthwise_conv2d(
    x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, *, input_zero_point: int,
    multiplier: np.ndarray, shift: np.ndarray, output_zero_point: int, act_min: int, act_max: int,
    stride: tuple[int, int], dilation: tuple[int, int], padding: str, depth_multiplier: int,
) -> np.ndarray:
    """int8 DEPTHWISE_CONV_2D (``reference_integer_ops::DepthwiseConvPerChannel``); weights are 1HWO.

    Output channel ``c * depth_multiplier + m`` reads input channel ``c``.
    """
    centred = np.repeat(x.astype(np.int64) - input_zero_point, depth_multiplier, axis=-1)
    acc = None
    for kh, kw, window in _windows(centred, weights.shape[1:3], stride, dilation, padding, fill=0):
        term = window * weights[0, kh, kw, :].astype(np.int64)
        acc = term if acc is None else acc + term
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return requantize_accumulator(acc, multiplier, shift, output_zero_point, act_min, act_max)


def fully_connected(
    x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, *, input_zero_point: int,
    weights_zero_point: int, multiplier: np.ndarray, shift: np.ndarray, output_zero_point: int,
    act_min: int, act_max: int,
) -> np.ndarray:
    """int8 FULLY_CONNECTED (``reference_integer_ops::FullyConnected``) on ``[batch, depth]``.

    Unlike the convolutions, the requantization rounds once (see
    :func:`multiply_by_quantized_multiplier_single_round`).
    """
    centred = x.reshape(-1, weights.shape[1]).astype(np.float64) - input_zero_point
    filters = weights.astype(np.float64) - weights_zero_point
    acc = (centred @ filters.T).astype(np.int64)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    scaled = multiply_by_quantized_multiplier_single_round(acc, multiplier, shift)
    return np.clip(scaled + output_zero_point, act_min, act_max).astype(np.int8)


def max_pool2d(
    x: np.ndarray, *, filter_size: tuple[int, int], stride: tuple[int, int], padding: str,
    act_min: int, act_max: int,
) -> np.ndarray:
    """int8 MAX_POOL_2D: the largest value in each window (padding never wins), then the clamp."""
    result = None
    for _, _, window in _windows(x.astype(np.int32), filter_size, stride, (1, 1), padding, fill=INT32_MIN):
        result = window if result is None else np.maximum(result, window)
    return np.clip(result, act_min, act_max).astype(np.int8)


def divide_round_half_away(acc: np.ndarray, count: np.ndarray | int) -> np.ndarray:
    """``acc > 0 ? (acc + n/2) / n : (acc - n/2) / n`` with C's truncating division."""
    acc = np.asarray(acc, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    magnitude = (np.abs(acc) + count // 2) // count
    return np.where(acc > 0, magnitude, -magnitude)


def average_pool2d(
    x: np.ndarray, *, filter_size: tuple[int, int], stride: tuple[int, int], padding: str,
    act_min: int, act_max: int,
) -> np.ndarray:
    """int8 AVERAGE_POOL_2D: sum over the window cells inside the image, divided by their count."""
    total, count = None, None
    ones = np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64)
    taps = zip(
        _windows(x.astype(np.int64), filter_size, stride, (1, 1), padding, fill=0),
        _windows(ones, filter_size, stride, (1, 1), padding, fill=0),
    )
    for (_, _, window), (_, _, inside) in taps:
        total = window if total is None else total + window
        count = inside if count is None else count + inside
    return np.clip(divide_round_half_away(total, count), act_min, act_max).astype(np.int8)


def mean(
    x: np.ndarray, axes: Sequence[int], keep_dims: bool, *, input_scale: float, input_zero_point: int,
    output_scale: float, output_zero_point: int,
) -> np.ndarray:
    """int8 MEAN (``reference_ops::QuantizedMeanOrSum``): sum, then one requantization.

    The 1/count of the mean is folded into the fixed-point multiplier
    ``input_scale / output_scale``: the multiplier is shifted left by
    floor(log2(count)) bits (at most 32, and never past a total shift of -31)
    and integer-divided by the count, so the sum is requantized only once.
    """
    axes = tuple(sorted({a % x.ndim for a in axes}))
    if not axes:
        return x.copy()
    count = int(np.prod([x.shape[a] for a in axes]))
    total = x.astype(np.int64).sum(axis=axes, keepdims=keep_dims) - input_zero_point * count
    multiplier, shift = quantize_multiplier(float(np.float64(input_scale) / np.float64(output_scale)))
    bits = min(count.bit_length() - 1, 32, 31 + shift)  # 63 - CountLeadingZeros(count), clamped
    multiplier = (int(multiplier) << bits) // count
    acc = multiply_by_quantized_multiplier(total, multiplier, shift - bits).astype(np.int64)
    return np.clip(acc + output_zero_point, INT8_MIN, INT8_MAX).astype(np.int8)


def add(
    x1: np.ndarray, x2: np.ndarray, *, scales: tuple[float, float, float],
    zero_points: tuple[int, int, int], act_min: int, act_max: int,
) -> np.ndarray:
    """int8 ADD (``reference_integer_ops::Add``): both inputs rescaled to a common scale first.

    Each input is shifted left by 20 bits for headroom, multiplied by its own
    scale / (2 * larger input scale), the two are summed and the sum is scaled to
    the output. ``scales`` and ``zero_points`` are (input1, input2, output).
    """
    left_shift = 20
    s1, s2, s_out = (np.float32(s) for s in scales)
    twice_max = np.float64(2 * max(s1, s2))
    m1, sh1 = quantize_multiplier(np.float64(s1) / twice_max)
    m2, sh2 = quantize_multiplier(np.float64(s2) / twice_max)
    m_out, sh_out = quantize_multiplier(twice_max / np.float64(np.float32((1 << left_shift) * s_out)))
    a = (x1.astype(np.int64) - zero_points[0]) << left_shift
    b = (x2.astype(np.int64) - zero_points[1]) << left_shift
    total = multiply_by_quantized_multiplier(a, m1, sh1).astype(np.int64) + multiply_by_quantized_multiplier(
        b, m2, sh2
    )
    out = multiply_by_quantized_multiplier(total, m_out, sh_out).astype(np.int64) + zero_points[2]
    return np.clip(out, act_min, act_max).astype(np.int8)


def pad(x: np.ndarray, paddings: np.ndarray, value: int) -> np.ndarray:
    """int8 PAD / PADV2: surround with ``value`` (the zero point when no constant is given)."""
    return np.pad(x, [tuple(int(v) for v in row) for row in paddings], constant_values=value)


def requantize(
    x: np.ndarray, *, input_scale: float, input_zero_point: int, output_scale: float,
    output_zero_point: int,
) -> np.ndarray:
    """int8 -> int8 QUANTIZE (``reference_ops::Requantize``): a change of scale and zero point."""
    multiplier, shift = quantize_multiplier(float(np.float64(input_scale) / np.float64(output_scale)))
    out = multiply_by_quantized_multiplier(x.astype(np.int64) - input_zero_point, multiplier, shift)
    return np.clip(out.astype(np.int64) + output_zero_point, INT8_MIN, INT8_MAX).astype(np.int8)


def quantize(x: np.ndarray, *, scale: float, zero_point: int, dtype: type = np.int8) -> np.ndarray:
    """float32 -> integer QUANTIZE (``reference_ops::AffineQuantize``), in float32 like the C++.

    ``round(x / scale) + zero_point`` rounded half away from zero, clamped to ``dtype``
    (int8 unless a model's input says otherwise).
    """
    info = np.iinfo(dtype)
    q = tflite_round(np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.int64) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(x: np.ndarray, *, scale: float, zero_point: int) -> np.ndarray:
    """int8 -> float32 DEQUANTIZE: ``scale * (q - zero_point)`` (double product, stored as float)."""
    return (np.float64(np.float32(scale)) * (x.astype(np.float64) - zero_point)).astype(np.float32)


def relu(
    x: np.ndarray, *, low: float, high: float, input_scale: float, input_zero_point: int,
    output_scale: float, output_zero_point: int,
) -> np.ndarray:
    """Standalone int8 RELU / RELU6 / RELU_N1_TO_1 (``QuantizedReluX``): requantize, then clamp."""
    multiplier, shift = quantize_multiplier(float(np.float64(np.float32(input_scale)) / np.float64(output_scale)))
    act_min = max(INT8_MIN, output_zero_point + int(tflite_round(np.float32(low) / np.float32(output_scale))))
    act_max = INT8_MAX
    if np.isfinite(high):
        act_max = min(INT8_MAX, output_zero_point + int(tflite_round(np.float32(high) / np.float32(output_scale))))
    scaled = multiply_by_quantized_multiplier(x.astype(np.int64) - input_zero_point, multiplier, shift)
    return np.clip(scaled.astype(np.int64) + output_zero_point, act_min, act_max).astype(np.int8)


# --- SOFTMAX ---


def softmax_table(input_scale: float, beta: float) -> np.ndarray:
    """``PopulateSoftmaxLookupTable``: exp(-input_scale * beta * d) for d = 255 .. 0, in float32.

    Entry ``255 - d`` holds the exponential of an input ``d`` steps below the row maximum.
    """
    scale = -np.float32(input_scale) * np.float32(beta)
    steps = np.arange(256, dtype=np.float32)
    # exp in double then rounded to float32: the correctly rounded expf
    values = np.exp((scale * steps).astype(np.float64)).astype(np.float32)
    return values[::-1].copy()


def softmax(x: np.ndarray, *, beta: float, input_scale: float, output_scale: float = 1 / 256,
            output_zero_point: int = -128) -> np.ndarray:
    """int8 SOFTMAX over the last axis, as TFLite's int8 kernel computes it.

    TFLite looks the exponentials up in a 256-entry float table indexed by the
    distance to the row maximum, sums them in float32 (in order), and rounds
    ``exp / (sum * output_scale)`` half away from zero. The arithmetic is float,
    but every input can only take 256 values, so it is still a fixed recipe.
    """
    table = softmax_table(input_scale, beta)
    values = x.astype(np.int64)
    exps = table[255 - values.max(axis=-1, keepdims=True) + values]
    total = np.zeros(exps.shape[:-1], dtype=np.float32)
    for j in range(exps.shape[-1]):  # float32 sum in the same order as the C++ loop
        total = total + exps[..., j]
    inverse = np.float32(1.0) / (total * np.float32(output_scale))
    probability = exps * inverse[..., None]
    out = tflite_round(probability).astype(np.int64) + output_zero_point
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8)
