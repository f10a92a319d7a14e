"""Where QAT's activation ranges start (lesson 06): TFMOT's [-6, 6] against ranges from the data.

:func:`range_start_study` fine-tunes the same QAT model from both starts with the zoo
budget and follows the ranges during training (:class:`qlab.qat.ranges.RangeTrajectory`),
so the lesson can show how far a few hundred steps move a range that started wrong.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from qlab.numerics.validate import check_int
from qlab.qat.ranges import RangeTrajectory, calibrated_qat_model, ema_check, mismatch_summary, qat_range_table
from qlab.zoo.models import predict_keras


def _correct(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.asarray(scores).argmax(axis=1) == labels


def _evaluate_start(start: str, float_model: Any, data: Any, x_calib: np.ndarray,
                    quantizers: int | Sequence[str], seed: int) -> dict[str, Any]:
    """Fine-tune one QAT model from ``start`` and measure it (see :func:`range_start_study`)."""
    from qlab.conversion.converter import convert_qat
    from qlab.qat.training import fine_tune
    from qlab.qat.quantize import quantize_whole_model
    from qlab.ptq.ranges import activation_ranges
    from qlab.conversion.tflite import predict_tflite

    (x, y), (x_test, y_test) = data
    qat_model = quantize_whole_model(float_model) if start == "default" else \
        calibrated_qat_model(float_model, x_calib)
    recorder = RangeTrajectory(quantizers, activation_ranges(float_model, x_calib, qat_model=qat_model))
    timing = fine_tune(qat_model, x, y, seed=seed, verbose=0, callbacks=[recorder])
    keras_scores = predict_keras(qat_model, x_test)
    int8_scores = predict_tflite(convert_qat(qat_model, int8_io=True), x_test)
    final = qat_range_table(qat_model, float_model, x_calib)
    return {"start": start, "keras": _correct(keras_scores, y_test), "int8": _correct(int8_scores, y_test),
            "final": final.assign(start=start), "trajectory": recorder.table().assign(start=start), **timing}


class RangeStartStudy(NamedTuple):
    """:func:`range_start_study`'s tables."""

    accuracy: Any  # one row per start: accuracies, range mismatch, seconds
    differences: Any  # calibrated minus default, paired, for keras and int8
    final_ranges: Any  # qat_range_table of both fine-tuned models
    trajectory: Any  # RangeTrajectory rows of both
    ema: Any  # ema_check of the default start


def range_start_study(name: str = "mnist_cnn", size: str = "full", seed: int = 0,
                      calib_samples: int = 1000, quantizers: int | Sequence[str] = 3) -> RangeStartStudy:
    """Fine-tune zoo model ``name`` from TFMOT's ``[-6, 6]`` start and from calibrated ranges.

    Same budget as :func:`qlab.qat.training.load_or_fine_tune` (``QAT_BUDGETS[size]``); each
    model's test accuracy as fake-quantized Keras and as the converted int8 file, the
    paired difference calibrated - default (:func:`qlab.numerics.metrics.paired_accuracy_difference`),
    the final ranges against the data (:func:`qat_range_table` on ``calib_samples``
    training images) and the ranges' trajectories. Taught in ``06_quantization_aware_training``.
    """
    import pandas as pd

    from qlab.zoo.models import load_or_train, mnist_for
    from qlab.qat.training import QAT_BUDGETS
    from qlab.numerics.metrics import paired_accuracy_difference

    if size not in QAT_BUDGETS:
        raise ValueError(f"size must be one of {', '.join(QAT_BUDGETS)}, got {size!r}")
    epochs, samples = QAT_BUDGETS[size]
    float_model = load_or_train(name, size, seed, verbose=0)
    (x, y), test = mnist_for(name, size)
    x_calib = x[:check_int(calib_samples, "calib_samples", 1, len(x))]
    data = ((x[:samples], y[:samples]), test)
    runs = [_evaluate_start(start, float_model, data, x_calib, quantizers, seed)
            for start in ("default", "calibrated")]
    accuracy = pd.DataFrame([{"start": r["start"], "keras accuracy": float(r["keras"].mean()),
                              "int8 accuracy": float(r["int8"].mean()),
                              **{k: v for k, v in mismatch_summary(r["final"]).items()},
                              "steps": r["steps"], "fine_tune_seconds": r["fine_tune_seconds"]} for r in runs])
    differences = pd.DataFrame([{"evaluated_with": how, **paired_accuracy_difference(
        runs[0][how], runs[1][how], seed=seed).as_dict()} for how in ("keras", "int8")])
    trajectory = pd.concat([r["trajectory"] for r in runs], ignore_index=True)
    return RangeStartStudy(accuracy, differences, pd.concat([r["final"] for r in runs], ignore_index=True),
                           trajectory, ema_check(trajectory[trajectory["start"] == "default"]))
