"""N-bit LayerNorm outputs, simulated in Keras 3, and what SmoothQuant repairs in the file and in the simulation.

SmoothQuant (:mod:`qlab.ptq.smooth_quant`) narrows the per-tensor range of each LayerNorm
output that Dense / EinsumDense layers read. Whether that matters is measured two ways:

* **in the file**: full int8 through the converter (per-channel and per-tensor weights) and
  through the LiteRT Quantizer's static int8 recipes, on the float and the smoothed model; and
  the weight break of :mod:`qlab.ptq.layer_bits` (2-bit weights, float activations), where
  smoothing has no activation range to narrow and only reshapes the weight rows;
* **in a simulation** (:func:`fake_quant_norm_outputs`), for bit widths no converter offers:
  each smoothable LayerNorm output is fake-quantized to ``num_bits`` with one range per tensor
  (its min and max over calibration images, ``keras.quantizers.fake_quant_with_min_max_vars``),
  and the kernels reading it are rounded to ``weight_bits`` per output channel. Everything
  else stays float, so the simulation isolates exactly what smoothing changes. It is a
  simulation in Keras, not a file any runtime executes.

:func:`smooth_quant_table` puts both side by side with the share of each setting's loss that
smoothing recovers. Taught in the transformer lesson.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.numerics.validate import check_int
from qlab.ptq.smooth_quant import layer_outputs, require_smoothing_pairs, smooth_quant
from qlab.zoo.keras3 import copy_keras3_model, require_keras3

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FILE_SETTINGS", "round_kernel_per_channel", "fake_quant_norm_outputs", "alpha_sweep", "smooth_quant_table"]

#: The file settings :func:`smooth_quant_table` can measure, by key, with their labels in the table.
FILE_SETTINGS: dict[str, str] = {
    "int8_per_channel": "converter int8, per-channel weights",
    "int8_per_tensor": "converter int8, per-tensor weights",
    "aeq_int8_per_channel": "LiteRT Quantizer int8, per-channel weights",
    "aeq_int8_per_tensor": "LiteRT Quantizer int8, per-tensor weights",
    "aeq_weights_2bit": "LiteRT Quantizer 2-bit attention and feed-forward weights, float activations "
                        "(the weight break)",
}


@functools.cache
def _fake_quant_norm_class(base: type) -> type:
    """``base`` (a LayerNormalization) whose output is fake-quantized per tensor."""
    keras = require_keras3()

    class FakeQuantOutput(base):
        def call(self, inputs: Any) -> Any:
            return keras.quantizers.fake_quant_with_min_max_vars(
                super().call(inputs), self.qlab_min, self.qlab_max, num_bits=self.qlab_num_bits)

    FakeQuantOutput.__name__ = f"FakeQuantOutput{base.__name__}"
    return FakeQuantOutput


def round_kernel_per_channel(kernel: Any, num_bits: int) -> np.ndarray:
    """A 2-D ``kernel`` (input rows, output columns) rounded to ``num_bits`` per output channel.

    TFLite's weight grid (:func:`qlab.numerics.quant.weight_quant_params`, taught in
    ``05_per_channel``): symmetric, narrow range, one scale per column, ``max|w| / (2**(num_bits-1) - 1)``.
    """
    from qlab.numerics.quant import dequantize, quantize, weight_quant_params

    num_bits = check_int(num_bits, "num_bits", 2, 16)
    w = np.asarray(kernel, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"kernel must be 2-D (input rows, output columns), got shape {w.shape}")
    params = weight_quant_params(w, num_bits, axis=1)
    return dequantize(quantize(w, params), params).astype(np.float32)


def fake_quant_norm_outputs(model: Any, x: Any, num_bits: int, weight_bits: int | None = 8) -> Any:
    """A copy of the Keras 3 ``model`` simulating ``num_bits`` LayerNorm outputs and ``weight_bits`` readers.

    Each LayerNorm of :func:`qlab.ptq.smooth_quant.smoothing_pairs` outputs through
    ``keras.quantizers.fake_quant_with_min_max_vars`` with one range per tensor: its min and
    max over the calibration images ``x``, widened to hold 0 as TFLite's asymmetric grid is.
    The kernels reading it are rounded per output channel (:func:`round_kernel_per_channel`;
    ``weight_bits=None`` keeps them float). Everything else stays float. A simulation in Keras:
    no converter writes activations below 8 bits.
    """
    num_bits = check_int(num_bits, "num_bits", 2, 16)
    if weight_bits is not None:
        weight_bits = check_int(weight_bits, "weight_bits", 2, 16)
    pairs = require_smoothing_pairs(model)
    outputs = layer_outputs(model, [pair.norm for pair in pairs], x)
    copy = copy_keras3_model(model)
    layers = {layer.path: layer for layer in copy._flatten_layers()}
    for pair, out in zip(pairs, outputs):
        norm = copy.get_layer(pair.norm)
        norm.qlab_min, norm.qlab_max = float(min(out.min(), 0.0)), float(max(out.max(), 0.0))
        norm.qlab_num_bits = num_bits
        norm.__class__ = _fake_quant_norm_class(type(norm))
        for path in pair.consumers if weight_bits is not None else ():
            kernel = np.asarray(layers[path].kernel)
            rows = round_kernel_per_channel(kernel.reshape(kernel.shape[0], -1), weight_bits)
            layers[path].kernel.assign(rows.reshape(kernel.shape))
    return copy


def alpha_sweep(model: Any, x_calibration: np.ndarray, x_validation: np.ndarray, y_validation: np.ndarray,
                num_bits: int = 3, alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                num_samples: int = 500) -> "pd.DataFrame":
    """Accuracy of the :func:`fake_quant_norm_outputs` simulation at ``num_bits`` after smoothing with each alpha.

    Choose alpha here, on images that are not the test images, then measure the chosen one on
    the test images (:func:`smooth_quant_table`): picking it on the test images would flatter it.
    One row per alpha (the first, alpha NaN, is the unsmoothed model); ``attrs["best alpha"]``.
    """
    import pandas as pd

    if not len(alphas):
        raise ValueError("alphas must name at least one alpha in [0, 1] to try, e.g. (0.5, 1.0)")
    x_calibration = np.asarray(x_calibration, dtype=np.float32)[:check_int(num_samples, "num_samples", 1, 10**9)]
    y_validation = np.asarray(y_validation)
    rows = []
    for alpha in (None, *alphas):
        smoothed = model if alpha is None else smooth_quant(model, x_calibration, alpha)
        scores = _simulated_scores(smoothed, x_calibration, num_bits, x_validation)
        accuracy = float(np.mean(scores.argmax(1) == y_validation))
        rows.append({"alpha": np.nan if alpha is None else float(alpha), "accuracy": accuracy})
    table = pd.DataFrame(rows)
    best = table.iloc[1:]["accuracy"].idxmax()  # the first (least migration) of equally good alphas
    table.attrs["best alpha"] = float(table.loc[best, "alpha"])
    return table


def _file_scores(model: Any, setting: str, x_calibration: np.ndarray, x_test: np.ndarray,
                 num_samples: int) -> np.ndarray:
    """The logits on ``x_test`` of ``model``'s ``.tflite`` made by one of :data:`FILE_SETTINGS`."""
    from qlab.conversion.converter import convert
    from qlab.conversion.litert_quantizer import mixed_weight_recipe, quantize, quantize_variant
    from qlab.conversion.tflite import predict_tflite
    from qlab.ptq.layer_bits import ENCODER_GROUPS

    if setting.startswith("int8_"):
        return predict_tflite(convert(model, setting, x_calibration, num_samples), x_test)
    float_bytes = convert(model, "float32")
    if setting == "aeq_weights_2bit":  # layer_bits' break: 2-bit weights in every encoder group
        scopes = "|".join(f"(?:{regex})" for regex in ENCODER_GROUPS.values())
        return predict_tflite(quantize(float_bytes, mixed_weight_recipe(float_bytes, 2, scopes)), x_test)
    return predict_tflite(quantize_variant(float_bytes, setting, x_calibration, num_samples), x_test)


def _simulated_scores(model: Any, x_calibration: np.ndarray, num_bits: int, x_test: np.ndarray) -> np.ndarray:
    """The logits on ``x_test`` of :func:`fake_quant_norm_outputs` at ``num_bits`` (8-bit weights)."""
    return fake_quant_norm_outputs(model, x_calibration, num_bits).predict(x_test, batch_size=500, verbose=0)


def _pair_row(label: str, reference: np.ndarray, scores: np.ndarray, smoothed: np.ndarray,
              y_test: np.ndarray) -> dict[str, Any]:
    """One setting without and with smoothing: the loss against float, the gain, the share recovered."""
    from qlab.numerics.metrics import fine_metrics, gain_columns

    plain, smooth = fine_metrics(reference, scores, y_test), fine_metrics(reference, smoothed, y_test)
    loss = -100 * plain["accuracy_delta"]
    gain = gain_columns(smoothed, scores, y_test, "gain (points)")
    return {"setting": label, "accuracy": plain["accuracy"], "loss (points)": loss,
            "loss low": -100 * plain["delta_high"], "loss high": -100 * plain["delta_low"],
            "output SQNR (dB)": plain["output_sqnr_db"], "smoothed accuracy": smooth["accuracy"],
            "smoothed output SQNR (dB)": smooth["output_sqnr_db"], **gain,
            "recovered": gain["gain (points)"] / loss if loss > 0 else np.nan}


def smooth_quant_table(model: Any, x_calibration: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                       alpha: float = 0.5, files: Sequence[str] = tuple(FILE_SETTINGS),
                       activation_bits: Sequence[int] = (8, 4, 3), num_samples: int = 500) -> "pd.DataFrame":
    """Every setting without and with SmoothQuant (:func:`qlab.ptq.smooth_quant.smooth_quant` at ``alpha``).

    Rows: ``float``, then each of ``files`` (keys of :data:`FILE_SETTINGS`; the ``.tflite`` run
    by LiteRT), then the Keras simulation of :func:`fake_quant_norm_outputs` at each of
    ``activation_bits`` with 8-bit weights. Columns: ``accuracy`` without smoothing, its
    ``loss (points)`` against the float model with the 95% paired interval, ``output SQNR (dB)``,
    the same with smoothing, the ``gain (points)`` smoothing brings with its interval
    (:func:`qlab.numerics.metrics.gain_columns`) and ``recovered``, the gain as a share of the loss
    (NaN where nothing was lost). Calibration (scales, ranges, converter) uses the first
    ``num_samples`` of ``x_calibration``. Taught in the transformer lesson.
    """
    import pandas as pd

    files = (files,) if isinstance(files, str) else tuple(files)
    unknown = [key for key in files if key not in FILE_SETTINGS]
    if unknown:
        raise ValueError(f"unknown files {unknown}; valid: {', '.join(FILE_SETTINGS)}")
    bits = [check_int(b, "activation_bits", 2, 16) for b in activation_bits]
    num_samples = check_int(num_samples, "num_samples", 1, max(len(x_calibration), 1))
    y_test = np.asarray(y_test)
    x_calibration = np.asarray(x_calibration, dtype=np.float32)[:num_samples]
    smoothed = smooth_quant(model, x_calibration, alpha)
    reference = model.predict(x_test, batch_size=500, verbose=0)
    rows = [{"setting": "float", "accuracy": float(np.mean(reference.argmax(1) == y_test))}]
    for key in files:
        plain, smooth = (_file_scores(m, key, x_calibration, x_test, num_samples) for m in (model, smoothed))
        rows.append(_pair_row(FILE_SETTINGS[key], reference, plain, smooth, y_test))
    for num_bits in bits:
        plain, smooth = (_simulated_scores(m, x_calibration, num_bits, x_test) for m in (model, smoothed))
        label = f"simulated: LayerNorm outputs at {num_bits} bits per tensor, their readers' weights 8 bits per channel"
        rows.append(_pair_row(label, reference, plain, smooth, y_test))
    table = pd.DataFrame(rows)
    table.attrs.update({"alpha": alpha, "test images": len(y_test), "calibration images": num_samples})
    return table
