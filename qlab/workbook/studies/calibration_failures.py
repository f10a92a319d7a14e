"""Study ``calibration_failures`` (lesson 04): full-int8 files calibrated on the wrong representative data.

Each broken set of :data:`qlab.ptq.representative.CALIBRATION_FAILURES` (pixels in
[0, 255], blank images, one class, noise, a single image) calibrates a full-int8 file;
each file is scored against the float model beside the properly calibrated one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.ptq.representative import (CALIBRATION_FAILURES, DEFAULT_NUM_SAMPLES, broken_representative_data,
                                     check_kinds)
from qlab.zoo.models import predict_keras

if TYPE_CHECKING:
    import pandas as pd


def calibration_failures(model: Any, data: Any, kinds: str | Sequence[str] = "all",
                         num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0,
                         name: str | None = None, verbose: bool = False) -> pd.DataFrame:
    """Full-integer int8 accuracy and fine metrics of ``model`` calibrated on each set of ``kinds``.

    Every set is converted with ``int8_per_channel`` (int8 in and out) and run with
    LiteRT on the test images; the fine metrics compare its scores with the float
    Keras model's on the same images (:func:`qlab.numerics.metrics.fine_metrics`).
    Taught in ``04_post_training_quantization``; works on any Keras 2 classifier.

    Args:
        model: the trained float Keras 2 model.
        data: ``((x_train, y_train), (x_test, y_test))``, images preprocessed as for training.
        kinds: names of :data:`CALIBRATION_FAILURES`, or ``"all"``.
        num_samples: images per set.

    Returns:
        One row per set: ``model``, ``representative set``, ``description``, ``images``,
        the fine metrics (``accuracy``, ``top1_agreement``, ``output_sqnr_db``,
        ``kl_divergence``, ``accuracy_delta`` with ``delta_low``/``delta_high``,
        ``mcnemar_p``), ``float32_accuracy`` and ``seconds``.
    """
    import pandas as pd

    from qlab.conversion.converter import convert
    from qlab.ptq.ranges import check_images
    from qlab.conversion.tflite import predict_tflite
    from qlab.numerics.metrics import fine_metrics

    kinds = check_kinds(kinds)
    (x_train, y_train), (x_test, y_test) = data
    x_train, x_test = check_images(model, x_train, "x_train"), check_images(model, x_test, "x_test")
    reference = predict_keras(model, x_test)
    float_accuracy = float(np.mean(reference.argmax(axis=1) == np.asarray(y_test)))
    rows = []
    for kind in kinds:
        start = time.perf_counter()
        if verbose:
            print(f"  {name or model.name}: calibrating on {kind}", flush=True)
        images = broken_representative_data(kind, x_train, y_train, num_samples, seed)
        scores = predict_tflite(convert(model, "int8_per_channel", images, len(images)), x_test)
        rows.append({"model": name or model.name, "representative set": kind,
                     "description": CALIBRATION_FAILURES[kind][1], "images": len(images),
                     **fine_metrics(reference, scores, y_test), "float32_accuracy": float_accuracy,
                     "seconds": round(time.perf_counter() - start, 1)})
    return pd.DataFrame(rows)


def calibration_failure_study(model_name: str, size: str = "full", seed: int = 0,
                              verbose: bool = True) -> pd.DataFrame:
    """:func:`calibration_failures` on zoo model ``model_name`` (a ``qlab.workbook.studies`` study).

    500 images per set at full size, 100 in smoke. Taught in ``04_post_training_quantization``.
    """
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train(model_name, size, seed, verbose=0)
    num_samples = DEFAULT_NUM_SAMPLES if size == "full" else 100
    return calibration_failures(model, mnist_for(model_name, size), num_samples=num_samples,
                                seed=seed, name=model_name, verbose=verbose)
