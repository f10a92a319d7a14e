"""Checks for ``10_litert_quantizer``: the learner's recipe is applied by the LiteRT Quantizer, and the file read back.

A recipe is graded by what it makes, not by how it is written: the Quantizer quantizes the
lesson's float file with it, and the check reads the new file's own op table and stored weight
types (:mod:`qlab.conversion.tflite_file`), and for the per-tensor recipe sets the file beside
the converter's ``int8_per_tensor`` file of the same model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.workbook.check import CORRECT, NotDone, exercise_check

#: Calibration images of a check: enough for every activation range, few enough to take a second or two.
CHECK_SAMPLES = 32
#: Test images the per-tensor file and the converter's are both run on.
COMPARE_IMAGES = 200
#: Top-1 agreement with the converter's file that makes the same model: calibrated the same way, the two
#: routes differ only in the last float32 bits of a few scales (the lesson's side-by-side section).
SAME_MODEL_AGREEMENT = 0.98
#: The two ops that have 4-bit static weights in the Quantizer.
FOUR_BIT_OPS = ("CONV_2D", "FULLY_CONNECTED")


def _recipe(recipe: Any) -> list:
    """The learner's recipe as a list; NotDone while it is still empty (the Quantizer's own start)."""
    if not isinstance(recipe, (list, tuple)):
        raise TypeError("pass the recipe the Quantizer holds, my_quantizer.get_quantization_recipe(); got a "
                        f"{type(recipe).__name__}")
    if not recipe:
        raise NotDone
    return list(recipe)


def _weight_types(model_bytes: bytes) -> dict[str, set[str]]:
    """``{op: stored weight types}``, read from the file."""
    from qlab.conversion.converter import weight_types_by_op

    return {op: set(kinds) for op, kinds in weight_types_by_op(model_bytes).items()}


def _non_integer_ops(model_bytes: bytes) -> dict[str, int]:
    """``{op: how many of it touch a float tensor}`` (empty for an integer-only file)."""
    from qlab.conversion.tflite_file import integer_only_ops

    table = integer_only_ops(model_bytes)
    return dict(zip(table["op"], table["count"].astype(int)))


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {op}" for op, n in counts.items())


def _activation_types(model_bytes: bytes) -> set[str]:
    """The stored types of every tensor an op writes."""
    from qlab.conversion.tflite_file import file_ops

    return {kind for op in file_ops(model_bytes) for kind in op["types"][len(op["inputs"]):]}


@exercise_check("10.per_tensor", "a one-config recipe: int8 activations, int8 weights with one scale per tensor")
def check_per_tensor(recipe: Any, *, model: Any, float_file: bytes, x_calib: np.ndarray,
                     x_test: np.ndarray) -> str | None:
    """The Quantizer's file from ``recipe``, calibrated as the converter calibrates, beside its ``int8_per_tensor``."""
    from qlab.conversion import litert_quantizer as lq
    from qlab.conversion.converter import convert
    from qlab.conversion.tflite import predict_tflite
    from qlab.conversion.tflite_file import weight_tensors

    # min/max on builtin kernels: the converter's calibration, so the two files can be compared
    mine = lq.quantize(float_file, _recipe(recipe), x_calib, CHECK_SAMPLES, calibration="min_max", xnnpack=False)
    other_bits = {op: sorted(kinds - {"INT8", "FLOAT32"}) for op, kinds in _weight_types(mine).items()
                  if kinds - {"INT8", "FLOAT32"}}
    if other_bits:
        return f"the file stores weights as {other_bits}; int8 weights are 8 bits (weight_num_bits)."
    floats = _non_integer_ops(mine)
    if floats:
        return (f"{_listed(floats)} op(s) still compute in float: the config must quantize activations too "
                "(a static config), for every op of the model.")
    if "INT16" in _activation_types(mine):
        return "the activations are stored as INT16: 8-bit activations (activation_num_bits)."
    weights = weight_tensors(mine)
    per_channel = weights[weights["distinct scales"] > 1]
    if len(per_channel):
        return (f"{len(per_channel)} weight tensor(s) ({', '.join(per_channel['op'])}) have one scale per output "
                "channel, the default granularity; ask for one scale per weight tensor.")
    x = x_test[:COMPARE_IMAGES]
    reference = convert(model, "int8_per_tensor", x_calib, CHECK_SAMPLES)
    agreement = float(np.mean(predict_tflite(mine, x).argmax(1) == predict_tflite(reference, x).argmax(1)))
    if agreement >= SAME_MODEL_AGREEMENT:
        return CORRECT
    return (f"your file is int8 per tensor, yet picks the converter's class on only {agreement:.0%} of the test "
            "images: keep the default weight algorithm (min-max), as the converter does.")


@exercise_check("10.layered_recipe", "a layered recipe: 8 bits for every op, then 4-bit weights where they exist")
def check_layered_recipe(recipe: Any, *, float_file: bytes, x_calib: np.ndarray) -> str | None:
    """The file from ``recipe``: integer-only, INT4 conv and dense weights, INT8 depthwise weights."""
    from qlab.conversion import litert_quantizer as lq

    mine = lq.quantize(float_file, _recipe(recipe), x_calib, CHECK_SAMPLES)
    floats = _non_integer_ops(mine)
    if "DEPTHWISE_CONV_2D" in floats:
        return (f"{floats['DEPTHWISE_CONV_2D']} DEPTHWISE_CONV_2D ops compute in float: 4-bit static weights exist "
                "only for CONV_2D and FULLY_CONNECTED, so a 4-bit config leaves the depthwise convolutions to an "
                "earlier config, or to float if there is none.")
    if floats:
        return (f"{_listed(floats)} op(s) still compute in float: every op needs a config that quantizes "
                "activations too (a static config).")
    types = _weight_types(mine)
    for op in FOUR_BIT_OPS:
        if op in types and types[op] != {"INT4"}:
            return (f"{op} weights are stored as {sorted(types[op])}, not INT4: your recipe holds no 4-bit config for "
                    f"{op}. Configs apply in order, and a config for every op replaces the configs added before it "
                    "with the same regex.")
    if types.get("DEPTHWISE_CONV_2D", {"INT8"}) != {"INT8"}:
        return f"the depthwise weights are stored as {sorted(types['DEPTHWISE_CONV_2D'])}; they should stay INT8."
    return CORRECT
