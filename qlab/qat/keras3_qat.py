"""Quantization-aware training written in Keras 3, where TFMOT cannot go (a Keras 3 transformer).

TFMOT needs tf_keras and has no QuantizeConfig for MultiHeadAttention or LayerNormalization.
What QAT needs is small: every chosen ``Dense`` / ``EinsumDense`` layer computes with its kernel
fake-quantized (``keras.quantizers.fake_quant_with_min_max_vars``: symmetric, narrow range,
one range per output channel taken from the kernel itself at every step, as TFMOT's
``LastValueQuantizer`` does), and the gradient passes straight through the rounding.
:func:`fake_quant_kernels` does it by giving each chosen layer a subclass whose ``kernel``
property returns the fake-quantized kernel; the float weights stay the trained variables.

The file: the trained float weights go back into a plain copy of the model, and the LiteRT
Quantizer's recipe with the same bit width and grid
(:func:`qlab.conversion.litert_quantizer.mixed_weight_recipe`) stores them as integers - the
file the fake-quantized Keras model implies. :func:`keras3_qat_contrast` measures it against
post-training quantization and against a float fine-tune of the same length (the control).
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

import numpy as np

from qlab.numerics.validate import check_int
from qlab.zoo.keras3 import copy_keras3_model, require_keras3

def reduced_axes(layer: Any) -> list[int]:
    """The kernel axes a layer sums over (the rest are its output channels).

    ``Dense``: axis 0 of ``(inputs, units)``. ``EinsumDense``: the kernel's letters that do not
    appear in the equation's output, e.g. ``c`` of ``abc,cde->abde`` (a query projection).
    """
    equation = getattr(layer, "equation", None)
    if equation is None:
        return [0]
    inputs, output = equation.split("->")
    kernel = inputs.split(",")[1]
    return [i for i, letter in enumerate(kernel) if letter not in output]


@functools.cache
def _fake_quant_class(base: type) -> type:
    """``base`` (Dense or EinsumDense) whose ``kernel`` is fake-quantized per output channel."""
    keras = require_keras3()
    ops = keras.ops

    class FakeQuantKernel(base):
        @property
        def kernel(self) -> Any:
            weights = base.kernel.fget(self)
            reduced = self.qlab_reduced_axes
            kept = [i for i in range(len(weights.shape)) if i not in reduced]
            order = reduced + kept
            moved = ops.transpose(weights, order)
            rows = int(np.prod([weights.shape[i] for i in reduced]))
            matrix = ops.reshape(moved, (rows, -1))  # one column per output channel
            bound = ops.maximum(ops.max(ops.abs(matrix), axis=0), 1e-8)
            rounded = keras.quantizers.fake_quant_with_min_max_vars(
                matrix, -bound, bound, num_bits=self.qlab_num_bits, narrow_range=True, axis=1)
            return ops.transpose(ops.reshape(rounded, ops.shape(moved)), np.argsort(order).tolist())

    FakeQuantKernel.__name__ = f"FakeQuant{base.__name__}"
    return FakeQuantKernel


def fake_quant_kernels(model: Any, pattern: str, num_bits: int) -> tuple[Any, list[str]]:
    """A copy of the Keras 3 ``model`` whose Dense / EinsumDense layers matching ``pattern`` train through rounding.

    ``pattern`` is a regular expression over the layers' paths (``block0_attention/query``,
    ``block1_ff2``, ...). Returns ``(copy, the paths of the layers made fake-quantized)``;
    ``model`` is left as it is. Raises a ValueError naming the pattern if no layer matches.
    """
    from qlab.zoo.keras3 import is_keras3_model

    keras = require_keras3()
    num_bits = check_int(num_bits, "num_bits", 2, 8)
    if not is_keras3_model(model):
        raise TypeError("fake_quant_kernels works on a Keras 3 model (`import keras`); for tf_keras use TFMOT")
    copy = copy_keras3_model(model)
    chosen = []
    for layer in copy._flatten_layers():
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) and re.fullmatch(pattern, layer.path):
            layer.qlab_reduced_axes, layer.qlab_num_bits = reduced_axes(layer), num_bits
            layer.__class__ = _fake_quant_class(type(layer))
            chosen.append(layer.path)
    if not chosen:
        paths = [layer.path for layer in copy._flatten_layers()
                 if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))]
        raise ValueError(f"no Dense or EinsumDense layer's path matches {pattern!r}; they are {', '.join(paths)}")
    return copy, chosen


#: The file scopes (LiteRT Quantizer) and the Keras layer paths of the encoder's attention and feed-forward layers.
ENCODER_FILE_SCOPES = r"(?:.*_attention_1/.*)|(?:.*_ff[12]_1/.*)"
ENCODER_LAYER_PATHS = r".*(?:attention|ff[12]).*"


def keras3_qat_contrast(model: Any, data: Any, num_bits: int = 2, epochs: int = 2, samples: int = 30_000,
                        learning_rate: float = 5e-4, seed: int = 0, layer_paths: str = ENCODER_LAYER_PATHS,
                        file_scopes: str = ENCODER_FILE_SCOPES, float_file: bytes | None = None) -> "pd.DataFrame":
    """Post-training quantization, a float fine-tune (the control) and Keras 3 QAT, at ``num_bits`` weights.

    Every row is a LiteRT file made by the same recipe (``num_bits`` weights in ``file_scopes``,
    8 bits elsewhere, :func:`qlab.conversion.litert_quantizer.mixed_weight_recipe`) from a model's
    float weights, run on all test images: ``PTQ`` from the trained model, ``control`` after a
    float fine-tune, ``QAT`` after the same fine-tune through :func:`fake_quant_kernels`
    (``epochs`` over ``samples`` training images, Adam with a cosine-decayed ``learning_rate``,
    the same seed). Columns: the file's accuracy and fine metrics against the float model's file,
    ``Keras accuracy`` of the model that was fine-tuned (for QAT, the fake-quantized one),
    ``Keras-file agreement`` and, for QAT, its gain over the control with the 95% paired interval.
    ``float_file``: ``model``'s float ``.tflite`` if already converted (``convert(model, "float32")``);
    None converts it here. Taught in the transformer lesson.
    """
    import pandas as pd

    from qlab.conversion.converter import convert
    from qlab.conversion.litert_quantizer import mixed_weight_recipe, quantize
    from qlab.conversion.tflite import predict_tflite
    from qlab.conversion.tflite_file import read_flatbuffer
    from qlab.numerics.metrics import fine_metrics, gain_columns
    from qlab.zoo.models import predict_keras
    from qlab.zoo.transformer import compile_encoder

    keras = require_keras3()
    (x_train, y_train), (x_test, y_test) = data
    x_train, y_train, y_test = x_train[:samples], np.asarray(y_train[:samples]), np.asarray(y_test)
    if float_file is None:
        float_file = convert(model, "float32")
    read_flatbuffer(float_file, "float_file")  # given bytes that are not a .tflite fail here, named
    reference = predict_tflite(float_file, x_test)
    steps = epochs * int(np.ceil(len(x_train) / 128))

    def file_scores(trained: Any) -> np.ndarray:
        """The scores of the integer file made from ``trained``'s float weights (the model's own file for PTQ)."""
        if trained is model:
            weights_file = float_file
        else:  # the plain model with the trained weights: no fake-quant wrappers in the graph
            plain = copy_keras3_model(model)
            plain.set_weights(trained.get_weights())
            weights_file = convert(plain, "float32")
        return predict_tflite(quantize(weights_file, mixed_weight_recipe(weights_file, num_bits, file_scopes)),
                              x_test)

    def fine_tuned(start: Any) -> tuple[Any, float]:
        compile_encoder(start, learning_rate, steps)
        keras.utils.set_random_seed(seed)
        began = time.perf_counter()
        start.fit(x_train, y_train, batch_size=128, epochs=epochs, shuffle=True, verbose=0)
        return start, round(time.perf_counter() - began, 1)

    control_start = copy_keras3_model(model)
    qat_start, _ = fake_quant_kernels(model, layer_paths, num_bits)
    runs = {"PTQ": (model, 0.0), "control: float fine-tune, then PTQ": fine_tuned(control_start),
            "QAT (Keras 3, fake-quantized kernels)": fine_tuned(qat_start)}
    rows, scores = [], {}
    for method, (trained, seconds) in runs.items():
        scores[method] = file_scores(trained)
        keras_scores = predict_keras(trained, x_test)
        rows.append({"method": method, **fine_metrics(reference, scores[method], y_test),
                     "Keras accuracy": float(np.mean(keras_scores.argmax(1) == y_test)),
                     "Keras-file agreement": float(np.mean(keras_scores.argmax(1) == scores[method].argmax(1))),
                     "steps": 0 if method == "PTQ" else steps, "fine-tune seconds": seconds})
    qat, control = rows[2]["method"], rows[1]["method"]
    rows[2].update(gain_columns(scores[qat], scores[control], y_test, "QAT gain vs control (points)"))
    return pd.DataFrame(rows)
