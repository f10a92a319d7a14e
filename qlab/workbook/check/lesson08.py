"""Checks for ``08_compare_and_debug``: graded by LiteRT runs of the files and by TensorFlow's QuantizationDebugger."""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.workbook.check import CORRECT, exercise_check, one_number

#: Test images the learner's selective file and the debugger's own are both run on.
COMPARE_IMAGES = 500
#: Ops the debugger's *debug* model has beside each quantized layer (its float twins' comparisons).
DEBUG_OPS = ("NUMERIC_VERIFY", "CUSTOM")


def _top1(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """The class each image gets from a LiteRT run of the file."""
    from qlab.conversion.tflite import predict_tflite

    return predict_tflite(model_bytes, x).argmax(axis=1)


def _agreement_problem(agreement: float, expected: float, accuracy: float, images: int) -> str | None:
    """What is wrong with the learner's agreement, or None when it is the LiteRT runs' own."""
    if abs(agreement - expected) <= 0.5 / images:
        return None
    if abs(agreement - 100 * expected) <= 50 / images:
        return "give the agreement as a fraction in [0, 1], not in percent."
    if abs(agreement - accuracy) <= 0.5 / images:
        return ("that is the per-tensor file's accuracy, against the labels. Agreement compares its top-1 class with "
                "float32's on each image, whatever the label says.")
    return (f"your agreement is {agreement:.4g}: it is the share of test images on which the two files' top-1 "
            "classes (the largest of each image's 10 scores) are the same.")


def _newly_wrong_problem(count: float, float_right: np.ndarray, int8_right: np.ndarray) -> str | None:
    """What is wrong with the learner's count of images per-tensor int8 newly gets wrong, or None."""
    newly_wrong = int(np.sum(float_right & ~int8_right))
    if count == newly_wrong:
        return None
    if count == int(np.sum(~int8_right)):
        return ("that counts every image the per-tensor file gets wrong, float32 gets some of them wrong too: count "
                "only those float32 gets right.")
    if count == newly_wrong - int(np.sum(~float_right & int8_right)):
        return ("that is the net change (new errors minus new successes); count only the images float32 gets right "
                "and per-tensor gets wrong.")
    return (f"you counted {count:g}: an image counts when float32's class is its label and per-tensor's is not, both "
            "on the same image.")


@exercise_check("08.agreement", "top-1 agreement of two files, and the images the quantized one newly gets wrong")
def check_agreement(agreement: Any, newly_wrong: Any, *, files: dict[str, bytes], x_test: np.ndarray,
                    y_test: np.ndarray) -> str | None:
    """Both numbers against the classes LiteRT gives the float32 and per-tensor files on the test images."""
    agreement, newly_wrong = one_number(agreement, "my_agreement"), one_number(newly_wrong, "my_newly_wrong")
    float_top1, int8_top1 = _top1(files["float32"], x_test), _top1(files["int8_per_tensor"], x_test)
    labels = np.asarray(y_test)
    problem = _agreement_problem(agreement, float(np.mean(float_top1 == int8_top1)),
                                 float(np.mean(int8_top1 == labels)), len(labels))
    return problem or _newly_wrong_problem(newly_wrong, float_top1 == labels, int8_top1 == labels) or CORRECT


def _debugger_files(model: Any, x_calib: np.ndarray, tensor: str, num_samples: int) -> tuple[bytes, bytes]:
    """TensorFlow's QuantizationDebugger, per-tensor weights: the file with ``tensor`` in float, and all-int8."""
    from qlab.conversion.converter import representative_dataset
    from qlab.ptq import debug
    from qlab.zoo.quiet import tflite_chatter_silenced

    dataset = representative_dataset(x_calib, num_samples, model.input_shape)
    with tflite_chatter_silenced(), debug.quantization_debugger(model, dataset, per_channel=False) as debugger:
        return debug.quantized_with_denylist(debugger, [tensor]), debug.quantized_with_denylist(debugger, [])


@exercise_check("08.keep_worst_in_float", "the debugger's worst layer kept in float, every other layer int8")
def check_keep_worst_in_float(model_bytes: Any, *, model: Any, x_calib: np.ndarray, x_test: np.ndarray,
                              errors: Any, num_samples: int) -> str | None:
    """The learner's file against the one TensorFlow's debugger makes with the table's worst layer denylisted."""
    from qlab.conversion.tflite import predict_tflite
    from qlab.conversion.tflite_file import file_ops

    ops = {op["op"] for op in file_ops(model_bytes)}  # a TypeError or ValueError names a non-file
    if ops & set(DEBUG_OPS):
        return ("that is the debugger's debug model: every quantized layer has a float twin and a comparison op beside "
                "it. Ask the debugger for the model without them.")
    reference, all_int8 = _debugger_files(model, x_calib, errors["layer"][0], num_samples)
    x = x_test[:COMPARE_IMAGES]
    mine = predict_tflite(model_bytes, x)
    if np.array_equal(mine, predict_tflite(reference, x)):
        return CORRECT
    if np.array_equal(mine, predict_tflite(all_int8, x)):
        return ("nothing was kept in float: your file is the all-int8 one. The denylist is a list of TFLite tensor "
                "names, as in the table's `layer` column; Keras layer names match nothing.")
    return ("your file keeps other layers in float than the debugger's worst one alone: the table is sorted by "
            "rmse/scale, worst first.")
