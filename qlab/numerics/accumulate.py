"""How quantization error builds up through a chain of layers, computed like integer hardware.

:func:`simulate_chain` builds ``depth`` random Dense+ReLU layers and runs a batch
through them twice:

* the **reference** in float64;
* the **quantized** path the way an int8 TFLite kernel does it: ``num_bits``
  inputs and weights, products accumulated in int32 with an int32 bias, the
  accumulator rescaled to the output scale with TFLite's fixed-point multiplier
  (:func:`qlab.numerics.fixedpoint.multiply_by_quantized_multiplier`), the output zero
  point added and the result clamped (with the ReLU fused into the clamp).

After every layer the quantized activations are dequantized and compared with
the reference, so you see the error grow layer by layer. The notebook
``02_error_accumulation`` teaches the idea.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qlab.numerics.metrics import sqnr_db
from qlab.numerics.rounding import tflite_round
from qlab.numerics.validate import check_bool, check_int, check_num_bits
from qlab.numerics.fixedpoint import (
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    quantize_multiplier,
)
from qlab.numerics.quant import (QuantParams, choose_quant_params, dequantize, quantize,
                                 weight_quant_params)

__all__ = ["ChainResult", "simulate_chain", "MAX_DEPTH"]

#: The deepest chain :func:`simulate_chain` (and the widget's depth slider) will build.
MAX_DEPTH = 64


@dataclass(frozen=True, repr=False)
class ChainResult:
    """Per-layer error of the quantized chain against the float reference.

    Every array has one entry per layer (``layer`` = 1..depth). Returned by
    :func:`simulate_chain`; taught in ``02_error_accumulation``.
    """

    layer: np.ndarray
    rmse: np.ndarray  #: root-mean-square error of the dequantized activations
    relative_error: np.ndarray  #: rmse / rms of the float activations
    sqnr_db: np.ndarray  #: signal-to-quantization-noise ratio, dB
    max_abs_error: np.ndarray
    saturated_fraction: np.ndarray  #: share of accumulator sums that hit the accumulator's limits
    settings: dict[str, Any] = field(default_factory=dict)

    def as_frame(self) -> Any:
        """The per-layer numbers as a pandas DataFrame indexed by layer."""
        import pandas as pd

        columns = ("rmse", "relative_error", "sqnr_db", "max_abs_error", "saturated_fraction")
        return pd.DataFrame({c: getattr(self, c) for c in columns}, index=pd.Index(self.layer, name="layer"))

    def _rows(self) -> list[str]:
        return [
            f"{int(l):>5} {r:>10.4g} {rel:>9.2%} {s:>8.2f} {m:>10.4g} {sat:>7.2%}"
            for l, r, rel, s, m, sat in zip(
                self.layer, self.rmse, self.relative_error, self.sqnr_db, self.max_abs_error, self.saturated_fraction
            )
        ]

    def __repr__(self) -> str:
        header = f"{'layer':>5} {'rmse':>10} {'rel.err':>9} {'SQNR dB':>8} {'max|err|':>10} {'satur.':>7}"
        return "\n".join([f"ChainResult({self.settings})", header, *self._rows()])

    def _repr_html_(self) -> str:
        return f"<p>ChainResult {self.settings}</p>" + self.as_frame().to_html(float_format="%.4g")


def _make_layers(rng: np.random.Generator, depth: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random Dense layers whose output channels differ in scale by up to 100x (so per-channel matters)."""
    layers = []
    for _ in range(depth):
        channel_scale = 10.0 ** rng.uniform(-1.0, 1.0, size=width)
        channel_scale /= np.sqrt(np.mean(channel_scale**2))  # keep the activations' size steady (He init)
        weights = rng.normal(size=(width, width)) * np.sqrt(2.0 / width) * channel_scale
        bias = rng.normal(size=width) * 0.1 * channel_scale
        layers.append((weights.astype(np.float32), bias.astype(np.float32)))
    return layers


def _accumulate(x: np.ndarray, w: np.ndarray, bias: np.ndarray, acc_bits: int | None) -> tuple[np.ndarray, float]:
    """Integer dot products: exact (``acc_bits=None``: a wide int32/int64 register) or in a
    saturating ``acc_bits``-bit register; also returns the share of sums that saturated."""
    if acc_bits is None:
        return x @ w + bias, 0.0
    low, high = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    acc = np.clip(np.broadcast_to(bias, (x.shape[0], w.shape[1])), low, high)
    hit = np.zeros(acc.shape, dtype=bool)
    for k in range(w.shape[0]):  # a MAC unit adds one product at a time and saturates
        acc = acc + x[:, k, None] * w[None, k, :]
        hit |= (acc < low) | (acc > high)
        acc = np.clip(acc, low, high)
    return acc, float(hit.mean())


def _activation_params(reference: np.ndarray, num_bits: int) -> QuantParams:
    """Asymmetric per-tensor range calibrated on the float activations (a representative dataset)."""
    return choose_quant_params(min(float(reference.min()), 0.0), max(float(reference.max()), 1e-6), num_bits)


def _requantize(acc: np.ndarray, multiplier: np.ndarray, out: QuantParams, num_bits: int) -> np.ndarray:
    """Rescale accumulators to the output scale in fixed point, add the zero point, fused ReLU + clamp."""
    qm, shift = quantize_multiplier(multiplier)
    if num_bits <= 8:
        scaled = multiply_by_quantized_multiplier(acc, qm, shift).astype(np.int64)
    else:  # TFLite's 16-bit activation kernels keep int64 accumulators
        scaled = multiply_by_quantized_multiplier_int64(acc, qm, shift).astype(np.int64)
    zero_point = int(out.zero_point)
    return np.clip(scaled + zero_point, max(out.qmin, zero_point), out.qmax)


def _errors(reference: np.ndarray, approx: np.ndarray) -> tuple[float, float, float, float]:
    diff = approx.astype(np.float64) - reference
    rmse = float(np.sqrt(np.mean(diff**2)))
    signal = float(np.sqrt(np.mean(reference**2)))
    relative = rmse / signal if signal > 0 else float("inf")
    return rmse, relative, sqnr_db(reference, approx), float(np.max(np.abs(diff)))


def simulate_chain(
    depth: int = 8,
    width: int = 64,
    num_bits: int = 8,
    per_channel: bool = False,
    int32_accumulate: bool = True,
    requantize: bool = True,
    seed: int = 0,
    batch: int = 256,
) -> ChainResult:
    """Run a chain of random quantized Dense+ReLU layers and measure the error after each one.

    Taught in ``02_error_accumulation``.

    Args:
        depth: number of layers (1.. :data:`MAX_DEPTH`).
        width: units per layer (1..4096); all layers are width x width.
        num_bits: bits for activations and weights (2..16). Up to 8 bits the
            accumulator is int32 (as in TFLite's int8 kernels); above 8 it is
            int64 (as in TFLite's 16-bit activation kernels).
        per_channel: quantize weights with one scale per output channel
            (TFLite's default for Dense/Conv) instead of one for the whole matrix.
            The layers' output channels differ in scale by up to 100x, so this matters.
        int32_accumulate: True accumulates in a register wide enough never to
            overflow (int32/int64). False simulates a narrow accumulator only as wide
            as one product (``2 * num_bits`` bits, e.g. int16 for int8) that saturates
            after every multiply-add, to show why TFLite accumulates int8 products in
            32 bits; ``saturated_fraction`` reports how often it clipped.
        requantize: True rescales each layer's accumulators back to ``num_bits``
            activations (the normal integer pipeline). False skips the
            requantization of activations: each layer's output is kept in float
            (the accumulator times its scale, exactly) and the next layer multiplies
            those float activations by its dequantized weights - i.e. only the
            network input and the weights are quantized, so the difference from
            True is the error that requantizing activations adds. (The accumulator
            setting then only affects the first layer, the only integer x integer one.)
        seed: seed for the random layers and inputs (the result is deterministic).
        batch: number of input rows (1..100000).

    Returns:
        :class:`ChainResult` with per-layer rmse, relative_error, sqnr_db,
        max_abs_error and saturated_fraction.
    """
    depth = check_int(depth, "depth", 1, MAX_DEPTH)
    width = check_int(width, "width", 1, 4096)
    batch = check_int(batch, "batch", 1, 100_000)
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    num_bits = check_num_bits(num_bits)
    per_channel = check_bool(per_channel, "per_channel")
    int32_accumulate = check_bool(int32_accumulate, "int32_accumulate")
    requantize = check_bool(requantize, "requantize")

    rng = np.random.default_rng(seed)
    layers = _make_layers(rng, depth, width)
    reference = rng.normal(size=(batch, width))
    in_params = _activation_params(reference, num_bits)
    q_in = quantize(reference.astype(np.float32), in_params).astype(np.int64)
    float_in: np.ndarray | None = None  # set once activations stop being integers (requantize=False)
    rows = []
    for weights, bias in layers:
        reference = np.maximum(reference @ weights.astype(np.float64) + bias, 0.0)
        w_params = weight_quant_params(weights, num_bits, axis=-1 if per_channel else None)
        w_float = dequantize(quantize(weights, w_params), w_params).astype(np.float64)
        if float_in is not None:
            approx, saturated = np.maximum(float_in @ w_float + bias, 0.0), 0.0
        else:
            acc_scale = in_params.scale.astype(np.float64) * w_params.scale.astype(np.float64)
            bias_q = tflite_round(bias / acc_scale).astype(np.int64)  # int32 bias, scale s_in * s_w, zero point 0
            q_w = quantize(weights, w_params).astype(np.int64)
            acc_bits = None if int32_accumulate else 2 * num_bits
            acc, saturated = _accumulate(q_in - int(in_params.zero_point), q_w, bias_q, acc_bits)
            if requantize:
                out_params = _activation_params(reference, num_bits)
                q_in = _requantize(acc, acc_scale / out_params.scale.astype(np.float64), out_params, num_bits)
                in_params = out_params
                approx = dequantize(q_in, out_params).astype(np.float64)
            else:
                float_in = approx = np.maximum(acc * acc_scale, 0.0)
        if float_in is not None:
            float_in = approx
        rows.append((*_errors(reference, approx), saturated))

    columns = np.array(rows, dtype=np.float64).T
    settings = dict(depth=depth, width=width, num_bits=num_bits, per_channel=per_channel,
                    int32_accumulate=int32_accumulate, requantize=requantize, seed=seed, batch=batch)
    return ChainResult(np.arange(1, depth + 1), *columns, settings=settings)
