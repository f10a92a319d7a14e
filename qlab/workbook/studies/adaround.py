"""Study ``adaround`` (lesson 06): nearest rounding against AdaRound at 4, 3 and 2 weight bits.

Calls :func:`qlab.ptq.adaround.adaround_weights` on each zoo model, per tensor and per
channel, and scores every file against the float model on the same test images.
Recorded by ``qlab bench``; lessons load it with :func:`qlab.workbook.studies.run_study`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from qlab.workbook.studies import CALIBRATION_SAMPLES
from qlab.ptq.adaround import ADAROUND_ITERATIONS, adaround_weights
from qlab.zoo.progress import say

if TYPE_CHECKING:
    import pandas as pd

STUDY_BITS = {"full": (4, 3, 2), "smoke": (2,)}
ADAROUND_SAMPLES = {"full": 1024, "smoke": 128}  # the paper's 1024 unlabeled images


def _study_data(model_name: str, size: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from qlab.zoo.models import mnist_for

    (x_train, _), (x_test, y_test) = mnist_for(model_name, size)
    return x_train[:ADAROUND_SAMPLES[size]], x_train[:CALIBRATION_SAMPLES[size]], x_test, y_test


def _study_row(scores: np.ndarray, reference: np.ndarray, labels: np.ndarray, nearest: np.ndarray | None,
               **fields: Any) -> dict[str, Any]:
    from qlab.numerics.metrics import fine_metrics, gain_columns

    name = "gain vs nearest (points)"
    gain = (gain_columns(scores, nearest, labels, name) if nearest is not None
            else {name: 0.0, "gain low": 0.0, "gain high": 0.0})
    return {**fields, **fine_metrics(reference, scores, labels), **gain}


def adaround_study(model_name: str, size: str = "full", seed: int = 0,
                   verbose: bool = True) -> "pd.DataFrame":
    """Round-to-nearest vs AdaRound weights at 4, 3 and 2 bits, per tensor and per channel, through LiteRT.

    Both roundings are stored by the real converter: the N-bit weights (batch norm folded)
    go through ``int8_per_tensor`` / ``int8_per_channel`` with 8-bit activations calibrated on
    500 training images, so the file keeps the N-bit *levels* on the int8 grid (each level
    rounded once more to the nearest int8 step, see :mod:`qlab.ptq.weight_bits`). Scored on
    every test image. AdaRound uses the first 1024 training images (no labels) and
    :data:`ADAROUND_ITERATIONS` steps per layer. One row per (bits, scheme, rounding) plus
    the float row: accuracy and :func:`qlab.numerics.metrics.fine_metrics` against the float
    Keras model, the gain of AdaRound over nearest at the same bits and scheme (points, 95%
    paired bootstrap interval), the share of weights AdaRound rounded the other way, the
    AdaRound seconds and the cell's seconds (both include conversion and LiteRT scoring for
    the cell's row), and the budget (``iterations``, ``AdaRound images``, ``calibration images``).
    The nearest rows equal :func:`qlab.workbook.studies.weight_bits.weight_bits_study`'s per-tensor and
    per-channel rows. Smoke size: 2 bits only, 60 steps per layer, seconds. Too slow for a
    lesson at full size (about 3 minutes for ``mnist_cnn``): ``06_quantization_aware_training`` loads
    the recorded table via :func:`qlab.workbook.studies.run_study`.
    """
    import pandas as pd

    from qlab.zoo.models import check_size, load_or_train, predict_keras

    size = check_size(size)
    model = load_or_train(model_name, size, seed, verbose=0)
    data = _study_data(model_name, size)
    reference = predict_keras(model, data[2])
    rows = [_study_row(reference, reference, data[3], None, model=model_name, num_bits=32, scheme="float",
                       rounding="float", iterations=0, **{"AdaRound images": 0, "calibration images": 0,
                                                           "flipped share": 0.0, "AdaRound seconds": 0.0,
                                                           "seconds": 0.0})]
    for bits in STUDY_BITS[size]:
        for per_channel in (False, True):
            rows += _study_cell(model, model_name, size, seed, bits, per_channel, data, reference)
            say(verbose, f"{model_name} {bits}-bit {rows[-1]['scheme']}: "
                          f"nearest {rows[-2]['accuracy']:.4f}, "
                          f"AdaRound {rows[-1]['accuracy']:.4f} ({rows[-1]['gain vs nearest (points)']:+.2f} "
                          f"points, {rows[-1]['AdaRound seconds']:.0f} s AdaRound)")
    return pd.DataFrame(rows)


def _study_cell(model: Any, model_name: str, size: str, seed: int, bits: int, per_channel: bool,
                data: tuple[np.ndarray, ...], reference: np.ndarray) -> list[dict[str, Any]]:
    """The nearest and the AdaRound row of one (bits, scheme) cell, both through the converter."""
    from qlab.ptq.weight_bits import evaluate_variant, fake_quantize_weights

    x_ada, x_calib, x_test, labels = data
    fields = {"model": model_name, "num_bits": bits, "scheme": "per-channel" if per_channel else "per-tensor",
              "iterations": ADAROUND_ITERATIONS[size], "AdaRound images": len(x_ada),
              "calibration images": len(x_calib)}
    variant = "int8_per_channel" if per_channel else "int8_per_tensor"
    start = time.perf_counter()
    nearest, _ = evaluate_variant(fake_quantize_weights(model, bits, per_channel), variant, x_calib, x_test)
    rows = [_study_row(nearest, reference, labels, None, **fields, rounding="nearest", **{
        "flipped share": 0.0, "AdaRound seconds": 0.0, "seconds": time.perf_counter() - start})]
    start = time.perf_counter()
    rounded, table = adaround_weights(model, x_ada, bits, per_channel, ADAROUND_ITERATIONS[size],
                                      seed=seed, verbose=False)
    ada_seconds = time.perf_counter() - start
    scores, _ = evaluate_variant(rounded, variant, x_calib, x_test)
    flipped = float((table["flipped share"] * table["weights"]).sum() / table["weights"].sum())
    rows.append(_study_row(scores, reference, labels, nearest, **fields, rounding="AdaRound", **{
        "flipped share": flipped, "AdaRound seconds": ada_seconds, "seconds": time.perf_counter() - start}))
    return rows
