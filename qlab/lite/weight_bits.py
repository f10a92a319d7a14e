"""Weights at 8 down to 2 bits, per tensor or per channel, through the real int8 TFLite path.

The post-training converter stores weights in 8 bits, so an N-bit weight is
simulated: the kernel (batch norm folded) is fake-quantized to N bits first -
symmetric, narrow range, TFLite's convention - and the converter then stores those
values in int8 (with 8-bit activations, calibrated on the same images). That rounds
each N-bit level once more onto the int8 grid (scale ``max|w| / 127``), which moves it
by up to half an int8 step: the stand-in keeps the N-bit level count, not exactly
the N-bit values. Per-channel N-bit weights go through ``int8_per_channel``,
per-tensor ones through ``int8_per_tensor``. The
studies here are too slow for a lesson and are loaded through
:mod:`qlab.workbook.studies`. Taught in ``05_per_channel``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from qlab.lite.equalize import (bias_correction, cross_layer_equalization, fold_batch_norm,
                                max_output_difference, relu6_to_relu, rescale_channels)
from qlab.lite.introspect import WEIGHT_LAYER_TYPES, channel_ranges_table
from qlab.lite.models import predict_keras
from qlab.lite.progress import say
from qlab.numerics.metrics import gain_columns
from qlab.numerics.quant import dequantize, quantize, weight_quant_params
from qlab.numerics.validate import check_bool, check_num_bits

__all__ = ["BIT_WIDTHS", "fake_quantize_kernel", "fake_quantize_weights", "channel_spreads",
           "activation_spreads", "evaluate_variant", "weight_bits_study", "equalization_study"]

BIT_WIDTHS: tuple[int, ...] = (8, 6, 5, 4, 3, 2)
SMOKE_BIT_WIDTHS: tuple[int, ...] = (8, 3)  # smoke size: enough to exercise the sweep
CALIBRATION_SAMPLES = {"full": 500, "smoke": 100}


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

    from qlab.lite.introspect import model_activations

    rows = []
    for key, values in model_activations(model, x).items():
        bound = np.abs(values.reshape(-1, values.shape[-1])).max(axis=0)
        rows.append({"layer": key.replace(" activations", ""),
                     "activation spread": float(bound.max() / max(np.median(bound), 1e-12))})
    return pd.DataFrame(rows).set_index("layer")


def evaluate_variant(model: Any, variant: str, x_calib: np.ndarray, x_test: np.ndarray
                     ) -> tuple[np.ndarray, float]:
    """Convert ``model`` as ``variant`` (calibrated on ``x_calib``), return (test scores, seconds)."""
    from qlab.lite.conversion import convert
    from qlab.lite.tflite import predict_tflite

    start = time.perf_counter()
    model_bytes = convert(model, variant, x_calib, num_samples=len(x_calib))
    return predict_tflite(model_bytes, x_test), time.perf_counter() - start


def _data(model_name: str, size: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from qlab.lite.models import mnist_for

    (x_train, _), (x_test, y_test) = mnist_for(model_name, size)
    return x_train[:CALIBRATION_SAMPLES[size]], x_test, y_test


def _row(scores: np.ndarray, reference: np.ndarray, labels: np.ndarray, **fields: Any) -> dict:
    from qlab.numerics.metrics import fine_metrics

    return {**fields, **fine_metrics(reference, scores, labels)}


def _spread_summary(model: Any) -> dict[str, float]:
    spreads = channel_spreads(model)["range spread"]
    return {"median channel spread": float(spreads.median()), "max channel spread": float(spreads.max())}


def weight_bits_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = True,
                      bit_widths: Sequence[int] | None = None) -> "pd.DataFrame":
    """Per-tensor vs per-channel N-bit weights, and CLE (+ bias correction), at each bit width.

    8-bit activations throughout (the converter's full-integer path). One row per
    (bits, scheme): accuracy and the finer metrics against the float Keras model
    (:func:`qlab.numerics.metrics.fine_metrics`), the gain over per-tensor at the same
    bits with its 95% interval, the model's channel spreads and the seconds the cell
    took (``bit_widths`` default: :data:`BIT_WIDTHS`, smoke size :data:`SMOKE_BIT_WIDTHS`). Schemes: ``per-tensor``,
    ``per-channel``, ``per-tensor + CLE`` (ReLU6 -> ReLU first) and
    ``per-tensor + CLE + bias corr.``. Float rows (``num_bits`` 32) give the float cost
    of ReLU6 -> ReLU (against the float model) and of CLE (against the ReLU6 -> ReLU
    model, which it must match to float rounding). Taught in ``05_per_channel`` (via
    ``run_study``). In ``int8_per_tensor`` the converter's private per-tensor switch stores
    Dense (FULLY_CONNECTED) weights with one scale per output channel, all equal - per
    tensor in effect - so the N-bit per-tensor grid set here is what is measured.
    """
    import pandas as pd

    from qlab.lite.models import load_or_train

    if bit_widths is None:
        bit_widths = BIT_WIDTHS if size == "full" else SMOKE_BIT_WIDTHS
    bit_widths = [check_num_bits(bits, high=8) for bits in bit_widths]
    model = load_or_train(model_name, size, seed, verbose=0)
    x_calib, x_test, labels = _data(model_name, size)
    reference = predict_keras(model, x_test)
    relu_model = relu6_to_relu(fold_batch_norm(model))
    equalized, _ = cross_layer_equalization(model, relu6_to_relu=True)
    relu_scores = predict_keras(relu_model, x_test)
    rows = []
    for name, candidate in (("float", model), ("float, ReLU6 -> ReLU", relu_model),
                            ("float, CLE", equalized)):
        start = time.perf_counter()
        scores = predict_keras(candidate, x_test)
        rows.append(_row(scores, reference, labels, model=model_name, num_bits=32, scheme=name,
                         **_spread_summary(candidate), seconds=time.perf_counter() - start,
                         **{"max |score diff| vs float": float(np.max(np.abs(scores - reference))),
                            "max |score diff| vs ReLU float": float(np.max(np.abs(scores - relu_scores)))}))
    for bits in bit_widths:
        per_tensor = None
        for scheme in ("per-tensor", "per-channel", "per-tensor + CLE", "per-tensor + CLE + bias corr."):
            start = time.perf_counter()
            source = model if scheme in ("per-tensor", "per-channel") else equalized
            quantized = fake_quantize_weights(source, bits, per_channel=scheme == "per-channel")
            if scheme.endswith("bias corr."):
                quantized = bias_correction(equalized, quantized, x_calib)
            variant = "int8_per_channel" if scheme == "per-channel" else "int8_per_tensor"
            scores, _ = evaluate_variant(quantized, variant, x_calib, x_test)
            per_tensor = scores if per_tensor is None else per_tensor
            row = _row(scores, reference, labels, model=model_name, num_bits=bits, scheme=scheme,
                       **_spread_summary(source), seconds=time.perf_counter() - start)
            rows.append({**row, **gain_columns(scores, per_tensor, labels, "gain vs per-tensor (points)")})
            say(verbose, f"{model_name} {bits}-bit {scheme}: {row['accuracy']:.4f} "
                          f"({row['seconds']:.0f} s)")
    return pd.DataFrame(rows)


def equalization_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = True,
                       spreads: Sequence[float] = (100.0, 1000.0)) -> "pd.DataFrame":
    """The constructed model: a function-preserving rescaling breaks per-tensor int8; what repairs it.

    For the zoo model and :func:`qlab.lite.equalize.rescale_channels` of it at each
    of ``spreads`` (labelled ``constructed``), each of: float32, ``int8_per_tensor``, ``int8_per_channel``,
    ``int16x8`` (per-channel int8 weights, int16 activations) and CLE followed by
    ``int8_per_tensor`` / ``int8_per_channel``. Columns as in :func:`weight_bits_study`
    plus the largest weight and activation channel spreads, and the largest score change
    of the float rescaled / equalized model. Taught in ``05_per_channel`` (via ``run_study``).
    """
    import pandas as pd

    from qlab.lite.models import load_or_train

    model = load_or_train(model_name, size, seed, verbose=0)
    x_calib, x_test, labels = _data(model_name, size)
    reference = predict_keras(model, x_test)
    versions = [("original", fold_batch_norm(model))] + [
        (f"constructed (x{spread:g} rescaling)", rescale_channels(model, spread=spread, seed=seed))
        for spread in spreads]
    rows = []
    for version, base in versions:
        equalized, _ = cross_layer_equalization(base, relu6_to_relu=False)
        act_spread = {id(m): float(activation_spreads(m, x_calib)["activation spread"].max())
                      for m in (base, equalized)}
        for variant, candidate in (("float32", base), ("int8_per_tensor", base),
                                   ("int8_per_channel", base), ("int16x8", base),
                                   ("CLE + float32", equalized), ("CLE + int8_per_tensor", equalized),
                                   ("CLE + int8_per_channel", equalized)):
            start = time.perf_counter()
            keras_variant = variant.replace("CLE + ", "")
            if keras_variant == "float32":
                scores = predict_keras(candidate, x_test)
            else:
                scores, _ = evaluate_variant(candidate, keras_variant, x_calib, x_test)
            row = _row(scores, reference, labels, model=model_name, version=version, variant=variant,
                       **_spread_summary(candidate),
                       **{"max activation spread": act_spread[id(candidate)],
                          "max |score diff| vs float": (float(np.max(np.abs(scores - reference)))
                                                        if keras_variant == "float32" else np.nan),
                          "seconds": time.perf_counter() - start})
            rows.append(row)
            say(verbose, f"{model_name} {version} {variant}: {row['accuracy']:.4f} ({row['seconds']:.0f} s)")
    return pd.DataFrame(rows)
