"""Per-tensor against per-channel weight quantization: each channel's range and error under both.

Taught in ``05_per_channel``; :mod:`qlab.plots.channel_ranges` draws the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlab.numerics.metrics import sqnr_db
from qlab.numerics.quant import dequantize, quantize, weight_quant_params
from qlab.numerics.validate import check_num_bits

__all__ = ["ChannelRangesView", "channel_ranges_view"]


@dataclass(frozen=True)
class ChannelRangesView:
    """Per-channel weight ranges against the per-tensor range, and the error of both schemes.

    Returned by :func:`channel_ranges_view`. Taught in ``05_per_channel``.
    """

    layer_name: str
    channel_min: np.ndarray
    channel_max: np.ndarray
    tensor_min: float
    tensor_max: float
    per_tensor_mse: np.ndarray  #: each channel's MSE under the one per-tensor scale
    per_channel_mse: np.ndarray  #: each channel's MSE under its own scale
    per_tensor_sqnr_db: float
    per_channel_sqnr_db: float
    num_bits: int

    @property
    def channels(self) -> int:
        return int(self.channel_min.size)

    def __repr__(self) -> str:
        return (f"ChannelRangesView({self.layer_name or 'kernel'}: {self.channels} channels, "
                f"int{self.num_bits} SQNR per-tensor {self.per_tensor_sqnr_db:.1f} dB, "
                f"per-channel {self.per_channel_sqnr_db:.1f} dB)")


def channel_ranges_view(kernel: np.ndarray, channel_axis: int = -1, num_bits: int = 8,
                        layer_name: str = "") -> ChannelRangesView:
    """Quantize ``kernel`` per tensor and per channel (symmetric, narrow_range, as TFLite does).

    Taught in ``05_per_channel``; :func:`qlab.plots.channel_ranges.draw_channel_ranges` draws the result.

    Args:
        kernel: a weight tensor, e.g. a Conv2D kernel (kh, kw, in, out).
        channel_axis: the output-channel axis (-1 for Conv2D/Dense, 2 for
            DepthwiseConv2D with depth multiplier 1).
        num_bits: bits per weight, 2..16.
    """
    num_bits = check_num_bits(num_bits)
    w = np.asarray(kernel, dtype=np.float64)
    if w.ndim == 0 or w.size == 0:
        raise ValueError(f"kernel must be a non-empty array, got shape {w.shape}")
    if not -w.ndim <= channel_axis < w.ndim:
        raise ValueError(f"channel_axis {channel_axis} is out of range for kernel shape {w.shape}")
    w2 = np.moveaxis(w, channel_axis, -1).reshape(-1, w.shape[channel_axis])
    c_min, c_max = w2.min(axis=0), w2.max(axis=0)
    t_min, t_max = float(c_min.min()), float(c_max.max())
    tensor_params = weight_quant_params(w2, num_bits)
    channel_params = weight_quant_params(w2, num_bits, axis=1)
    w_tensor = np.asarray(dequantize(quantize(w2, tensor_params), tensor_params))
    w_channel = np.asarray(dequantize(quantize(w2, channel_params), channel_params))
    return ChannelRangesView(
        layer_name, c_min, c_max, t_min, t_max,
        np.mean((w2 - w_tensor) ** 2, axis=0), np.mean((w2 - w_channel) ** 2, axis=0),
        sqnr_db(w2, w_tensor), sqnr_db(w2, w_channel), num_bits)
