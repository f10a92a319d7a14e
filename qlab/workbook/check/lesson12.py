"""Checks for ``12_your_own_model``: data graded by qlab's own data checks, a partial QAT model by TFMOT's own.

The prepared images and labels go through :func:`qlab.workbook.user_data.check_dataset`, what
``compare_keras_model`` runs before any work, and are then set beside the lesson's training data.
The predicate is graded by the model it makes against the one TFMOT's own calls make: every layer
its default registry supports annotated, then ``quantize_apply``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.workbook.check import CORRECT, exercise_check

#: How far a prepared pixel may be from the lesson's (float32 rounding of a division, not a different scale).
PIXEL_TOLERANCE = 1e-6


@exercise_check("12.dataset", "images and labels as a photo library stores them, prepared for the model")
def check_dataset_prepared(x_train: Any, y_train: Any, *, model: Any, test: tuple, x_expected: np.ndarray,
                           y_expected: np.ndarray) -> str | None:
    """``check_dataset``'s verdict on the prepared arrays, then the arrays against the lesson's training data."""
    from qlab.workbook.user_data import check_dataset

    try:
        check_dataset(model, ((x_train, y_train), test))
    except (TypeError, ValueError) as error:  # what is wrong, before the "; fix it with ..." part
        return str(error).split("; ")[0] + "."
    if len(x_train) != len(x_expected):
        return f"prepare each of the {len(x_expected)} images once; yours are {len(x_train)}."
    if not np.array_equal(y_train, y_expected):
        return "some labels are not the class of their image: keep the images' order, one class index per image."
    if not np.allclose(x_train, x_expected, rtol=0, atol=PIXEL_TOLERANCE):
        return (f"your pixels span {float(np.min(x_train)):.4g}..{float(np.max(x_train)):.4g}, the training images' "
                f"{float(x_expected.min()):.4g}..{float(x_expected.max()):.4g}: scale them exactly as in training.")
    return CORRECT


def _tfmot_supported(model: Any) -> list[str]:
    """The layers TFMOT's default 8-bit registry has a QuantizeConfig for."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry)

    supports = registry.Default8BitQuantizeRegistry().supports
    return [layer.name for layer in model.layers if supports(layer)]


def _tfmot_reference(model: Any, supported: list[str]) -> Any:
    """TFMOT's own partial QAT model: the ``supported`` layers annotated, then ``quantize_apply``."""
    from qlab.zoo.keras2 import keras, tfmot

    annotate = tfmot.quantization.keras.quantize_annotate_layer
    annotated = keras.models.clone_model(
        model, clone_function=lambda layer: annotate(layer) if layer.name in supported else layer)
    return tfmot.quantization.keras.quantize_apply(annotated)


def _quantized_layers(qat_model: Any) -> list[str]:
    """Names of the layers a QAT model wraps for quantization-aware training."""
    return [layer.layer.name for layer in qat_model.layers if type(layer).__name__.startswith("QuantizeWrapper")]


@exercise_check("12.keep_in_float", "a predicate that trains every layer TFMOT can quantize, the rest left in float")
def check_keep_in_float(predicate: Any, *, model: Any) -> str | None:
    """``quantize_partial(model, predicate)`` against TFMOT's own model: the same layers wrapped, the same outputs."""
    from qlab.qat.quantize import quantize_partial

    if not callable(predicate):
        return f"my_predicate must be a function of a layer, returning True or False, not a {type(predicate).__name__}."
    supported = _tfmot_supported(model)
    picked: list[str] = [layer.name for layer in model.layers if predicate(layer)]
    unsupported = [name for name in picked if name not in supported]
    if unsupported:
        return (f"your predicate picks {unsupported}, which TFMOT cannot quantize (no QuantizeConfig): "
                "quantize_partial would fail. It must return False for such a layer.")
    if not picked:
        return ("your predicate picks no layer, so nothing would train quantization-aware. (The model's layers are "
                "tf_keras layers, qlab.keras.layers, not Keras 3's.)")
    missing = [name for name in supported if name not in picked]
    if missing:
        return f"{missing} would stay float although TFMOT can quantize them: pick every such layer."
    mine, reference = quantize_partial(model, predicate), _tfmot_reference(model, supported)
    x = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype(np.float32)
    same = _quantized_layers(mine) == _quantized_layers(reference) and np.allclose(
        mine.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=0, atol=1e-6)
    return CORRECT if same else "the model your predicate makes differs from TFMOT's with the same layers quantized."

