"""Studies ``weight_bits`` and ``equalization`` (lesson 05): weights per tensor or per channel at 8 to 2 bits.

- ``weight_bits``: every zoo model with per-tensor and per-channel N-bit weights
  (:func:`qlab.ptq.weight_bits.fake_quantize_weights`) through the real int8 file,
  with cross-layer equalization and bias correction as repairs;
- ``equalization``: the constructed 8-bit collapse of ``05_per_channel`` (channel ranges
  spread by :func:`qlab.ptq.equalize.rescale_channels`) and what per-channel, 16x8 and
  equalization each repair.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.workbook.studies import CALIBRATION_SAMPLES
from qlab.numerics.metrics import gain_columns
from qlab.numerics.validate import check_num_bits
from qlab.ptq.batch_norm_folding import fold_batch_norm, relu6_to_relu
from qlab.ptq.bias_correction import bias_correction
from qlab.ptq.equalize import cross_layer_equalization, rescale_channels
from qlab.ptq.weight_bits import activation_spreads, channel_spreads, evaluate_variant, fake_quantize_weights
from qlab.zoo.models import predict_keras
from qlab.zoo.progress import say

if TYPE_CHECKING:
    import pandas as pd

BIT_WIDTHS: tuple[int, ...] = (8, 6, 5, 4, 3, 2)
SMOKE_BIT_WIDTHS: tuple[int, ...] = (8, 3)  # smoke size: enough to exercise the sweep


def _data(model_name: str, size: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from qlab.zoo.models import mnist_for

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

    from qlab.zoo.models import load_or_train

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

    For the zoo model and :func:`qlab.ptq.equalize.rescale_channels` of it at each
    of ``spreads`` (labelled ``constructed``), each of: float32, ``int8_per_tensor``, ``int8_per_channel``,
    ``int16x8`` (per-channel int8 weights, int16 activations) and CLE followed by
    ``int8_per_tensor`` / ``int8_per_channel``. Columns as in :func:`weight_bits_study`
    plus the largest weight and activation channel spreads, and the largest score change
    of the float rescaled / equalized model. Taught in ``05_per_channel`` (via ``run_study``).
    """
    import pandas as pd

    from qlab.zoo.models import load_or_train

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
