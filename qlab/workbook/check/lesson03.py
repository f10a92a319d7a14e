"""Checks for ``03_float_baselines``: the float16 export and a LiteRT run, written out by the learner.

``03.float16`` converts the learner's ``TFLiteConverter`` and compares the file with the one
``qlab.convert(model, "float16")`` writes: its weights stored as float16, and the same outputs in
the LiteRT interpreter. ``03.run_tflite`` runs the learner's interpreter loop on the model's
float32 and float16 files and compares its scores with qlab's LiteRT run of the same files.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from qlab.workbook.check import CORRECT, NotDone, exercise_check, is_blank_function

#: Test images the learner's file and run are compared on.
COMPARE_IMAGES = 100
#: How far two runs of the same float file may differ (batch 1 against batch N, in XNNPACK's float kernels).
SCORE_TOLERANCE = 1e-4


def _float16_tensors(model_bytes: bytes) -> int:
    """How many tensors of the file are stored as float16 (the weights the loader converts to float32)."""
    from qlab.conversion.tflite_file import file_ops

    return sum(t == "FLOAT16" for op in file_ops(model_bytes) for t in op["types"])


def _listed(value: Any, name: str, example: str) -> list:
    if isinstance(value, (list, tuple, set)):
        return list(value)
    raise TypeError(f"{name} takes a list, e.g. {example}; yours is {value!r}")


def _settings_problem(converter: Any) -> str | None:
    """What is wrong with the converter's float16 settings, or None; NotDone while they are untouched."""
    from qlab.zoo.keras2 import tf

    try:
        optimizations = _listed(converter.optimizations, "converter.optimizations", "[tf.lite.Optimize.DEFAULT]")
        types = _listed(converter.target_spec.supported_types, "converter.target_spec.supported_types",
                        "[tf.float16]")
    except TypeError as error:
        return f"{error}."
    if not optimizations and not types:
        raise NotDone
    enabling = {tf.lite.Optimize.DEFAULT, tf.lite.Optimize.OPTIMIZE_FOR_SIZE, tf.lite.Optimize.OPTIMIZE_FOR_LATENCY}
    if not enabling.intersection(optimizations):
        return ("without converter.optimizations = [tf.lite.Optimize.DEFAULT] the converter leaves every weight "
                "in float32.")
    if not types:
        return ("the optimization alone stores int8 weights (dynamic range quantization, lesson 04): name "
                "float16 as the type the target supports.")
    try:
        names = sorted(tf.as_dtype(t).name for t in types)
    except TypeError:
        return f"supported_types lists TensorFlow types, like tf.float16; yours are {types!r}."
    if names != ["float16"]:
        return f"the target should support float16 only; yours lists {', '.join(names)}."
    return None


@exercise_check("03.float16", "the converter settings for a float16 .tflite file")
def check_float16(converter: Any, *, model: Any, x_test: np.ndarray) -> str | None:
    """The settings, then the file: float16 weights and the outputs of ``qlab.convert(model, "float16")``."""
    from qlab.conversion.converter import convert
    from qlab.conversion.tflite import predict_tflite

    problem = _settings_problem(converter)
    if problem:
        return problem
    mine, reference = converter.convert(), convert(model, "float16")
    if _float16_tensors(mine) != _float16_tensors(reference):
        return (f"your file stores {_float16_tensors(mine)} float16 tensors, the converter's float16 file "
                f"{_float16_tensors(reference)}: convert the model as it is, with only the two settings.")
    x = x_test[:COMPARE_IMAGES]
    if np.allclose(predict_tflite(mine, x), predict_tflite(reference, x), rtol=0, atol=SCORE_TOLERANCE):
        return CORRECT
    return "your file stores float16 weights but computes other scores than the converter's float16 file."


def _scores_problem(scores: Any, expected: np.ndarray) -> str | None:
    """What is wrong with the learner's ``scores`` of N images against LiteRT's, or None."""
    scores = np.asarray(scores)
    n, classes = expected.shape
    if scores.dtype.kind not in "iuf":
        return f"return a numpy array of scores; yours holds {scores.dtype}."
    if scores.shape == (n, 1, classes):
        return (f"your scores have shape {scores.shape}: each output keeps the batch axis of one; take the first "
                f"(and only) row of it, so that the scores are ({n}, {classes}).")
    if scores.shape == (classes,) or scores.shape == (1, classes):
        return f"you returned the scores of one image; collect one row per image, shape ({n}, {classes})."
    if scores.shape != (n, classes):
        return f"return one row of {classes} scores per image, shape ({n}, {classes}); yours is {scores.shape}."
    if np.allclose(scores, expected, rtol=0, atol=SCORE_TOLERANCE):
        return None
    if n > 1 and np.allclose(scores, scores[:1]):
        return "every row of your scores is the same: set each image, invoke, and read the output once per image."
    i = int(np.argmax(np.any(~np.isclose(scores, expected, rtol=0, atol=SCORE_TOLERANCE), axis=1)))
    return (f"image {i}: LiteRT scores its classes {np.round(expected[i], 3).tolist()}, yours "
            f"{np.round(scores[i], 3).tolist()}. Give the interpreter each image as it is, float32 with a batch "
            "axis of one, and keep the output of that image.")


@exercise_check("03.run_tflite", "the scores of a .tflite file for a batch of images, from the LiteRT interpreter")
def check_run_tflite(run_tflite: Callable, *, model: Any, x_test: np.ndarray) -> str | None:
    """The learner's run of the float32 and float16 files against ``qlab.predict_tflite`` on the same images."""
    from qlab.conversion.converter import convert
    from qlab.conversion.tflite import predict_tflite

    if is_blank_function(run_tflite):
        raise NotDone
    x = x_test[:COMPARE_IMAGES]
    for variant in ("float32", "float16"):
        model_bytes = convert(model, variant)
        scores = run_tflite(model_bytes, x.copy())
        if scores is None:
            return "run_tflite returns None: end it with a return statement."
        problem = _scores_problem(scores, predict_tflite(model_bytes, x))
        if problem:
            return problem if variant == "float32" else f"on the float16 file: {problem}"
    return CORRECT
