"""Checks for ``04_post_training_quantization``: graded by the converter's file and a LiteRT run."""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np

from qlab.workbook.check import CORRECT, NotDone, exercise_check

#: Test images both files are run on: identical int8 outputs on all of them is the bar.
COMPARE_IMAGES = 200


def _same_outputs(mine: bytes, reference: bytes, x_test: np.ndarray) -> bool:
    from qlab.conversion.tflite import predict_tflite

    x = x_test[:COMPARE_IMAGES]
    return np.array_equal(predict_tflite(mine, x), predict_tflite(reference, x))


def _reference_file(model: Any, x_calib: np.ndarray) -> bytes:
    """The full-integer file from the lesson's representative images, converted by qlab."""
    from qlab.conversion.converter import convert

    return convert(model, "int8_per_channel", x_calib, num_samples=len(x_calib))


def _representative_problem(items: list, x_calib: np.ndarray) -> str | None:
    """What is wrong with the yielded items, structurally, or None."""
    if not items:
        return "the generator yielded nothing: yield one item per calibration image."
    first = items[0]
    if not isinstance(first, (list, tuple)):
        return ("each item must be a list with one array per model input, e.g. [image], not the array itself "
                f"(yours is a {type(first).__name__}).")
    if len(first) != 1:
        return f"the model has one input, so each item is a list of one array; yours has {len(first)}."
    image = np.asarray(first[0])
    expected = (1, *x_calib.shape[1:])
    if image.shape != expected:
        return (f"each image must be shaped like the model input with a batch of one, {expected}; yours is "
                f"{image.shape}. Slicing [i:i + 1] keeps the batch axis; [..., None] adds the channel axis.")
    if image.dtype != np.float32:
        return f"the model takes float32 images; yours are {image.dtype}."
    if float(image.max()) > 1.5:
        return (f"your pixels go up to {float(image.max()):.0f}: the model was trained on pixels in [0, 1], "
                "so calibrate on images preprocessed the same way.")
    if len(items) != len(x_calib):
        return f"yield every one of the {len(x_calib)} camera images once; yours yielded {len(items)}."
    return None


@exercise_check("04.representative", "a representative_dataset generator for camera images (uint8, 0..255)")
def check_representative(generator_function: Callable, *, model: Any, x_calib: np.ndarray,
                         x_test: np.ndarray) -> str | None:
    """Yielded items checked for shape and range, then converted: the file must match one calibrated on ``x_calib``."""
    from qlab.conversion.converter import convert

    generator = generator_function()
    if generator is None:
        raise NotDone
    items = list(itertools.islice(iter(generator), len(x_calib) + 1))
    problem = _representative_problem(items, x_calib)
    if problem:
        return problem
    mine = convert(model, "int8_per_channel", lambda: iter(items))
    if _same_outputs(mine, _reference_file(model, x_calib), x_test):
        return CORRECT
    return ("the converter calibrated other activation ranges from your images than from the lesson's: "
            "yield the camera images in order, each divided by 255 as in training.")


@exercise_check("04.full_integer", "the converter settings for full integer int8 with int8 input and output")
def check_full_integer(converter: Any, *, model: Any, x_calib: np.ndarray, x_test: np.ndarray) -> str | None:
    """The learner's settings, then their file: integer-only, int8 in and out, the same outputs as qlab's."""
    from qlab.conversion.tflite import make_interpreter
    from qlab.conversion.tflite_file import count_non_integer_ops
    from qlab.zoo.keras2 import tf
    from qlab.zoo.quiet import tflite_chatter_silenced

    ops = set(converter.target_spec.supported_ops)
    if not converter.optimizations and ops == {tf.lite.OpsSet.TFLITE_BUILTINS} \
            and converter.inference_input_type in (None, tf.float32):
        raise NotDone
    if tf.lite.Optimize.DEFAULT not in (converter.optimizations or []):
        return "without converter.optimizations = [tf.lite.Optimize.DEFAULT] nothing is quantized."
    if ops != {tf.lite.OpsSet.TFLITE_BUILTINS_INT8}:
        return ("ask for int8 kernels only (converter.target_spec.supported_ops), so that the converter fails "
                "rather than quietly keeping an op in float.")
    with tflite_chatter_silenced():
        mine = converter.convert()
    interpreter = make_interpreter(mine)
    dtypes = (interpreter.get_input_details()[0]["dtype"], interpreter.get_output_details()[0]["dtype"])
    if dtypes != (np.int8, np.int8):
        return (f"the file takes {dtypes[0].__name__} and returns {dtypes[1].__name__}: set the inference input "
                "and output types to tf.int8.")
    if count_non_integer_ops(mine):
        return f"{count_non_integer_ops(mine)} op(s) of your file are not integer-only."
    if _same_outputs(mine, _reference_file(model, x_calib), x_test):
        return CORRECT
    return "the file is integer-only but differs from the lesson's: keep the representative_dataset given in the cell."
