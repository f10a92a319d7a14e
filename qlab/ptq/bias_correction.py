"""Empirical bias correction (Nagel et al. 2019, sec. 4.2): the mean error rounding adds, taken back out.

Rounding a kernel shifts each output channel's mean by ``E[(W_q - W) x]``. With the
mean input ``E[x]`` measured on calibration images, that shift is subtracted from the
bias. Taught in ``05_per_channel``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from qlab.ptq.batch_norm_folding import check_model, fold_batch_norm
from qlab.zoo.introspect import WEIGHT_LAYER_TYPES


def _layer_input_means(model: Any, names: Sequence[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """Mean of each layer's input per input channel (or per input feature for Dense) on ``x``."""
    from qlab.zoo.keras2 import keras

    probe = keras.Model(model.inputs, [model.get_layer(n).input for n in names])
    outputs = probe.predict(np.asarray(x, np.float32), batch_size=250, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return {n: np.asarray(o, np.float64).reshape(-1, o.shape[-1]).mean(axis=0)
            for n, o in zip(names, outputs)}


def _expected_error(layer: Any, delta: np.ndarray, mean_in: np.ndarray) -> np.ndarray:
    """``E[(W_q - W) x]`` per output channel, from the kernel error and the mean input."""
    kind = type(layer).__name__
    if kind == "Dense":
        return mean_in @ delta
    if kind == "DepthwiseConv2D":
        return (delta.sum(axis=(0, 1)) * mean_in[:, None]).reshape(-1)
    return np.einsum("hwio,i->o", delta, mean_in)


def bias_correction(float_model: Any, quantized_model: Any, x: np.ndarray) -> Any:
    """Empirical bias correction (Nagel et al. 2019, sec. 4.2) of a weight-quantized model.

    ``quantized_model`` has the same layers as ``float_model`` (batch norm folded) with
    quantized kernels, e.g. from :func:`qlab.ptq.weight_bits.fake_quantize_weights`.
    Each weight layer's bias is reduced by the expected output error
    ``E[(W_q - W) x]``, with ``E[x]`` measured per channel on the calibration images
    ``x`` (zero padding at the borders is ignored, so it is an estimate). Returns a new model.
    Taught in ``05_per_channel``.
    """
    from qlab.zoo.models import copy_model

    float_model = fold_batch_norm(check_model(float_model))
    quantized_model = check_model(quantized_model)
    names = [layer.name for layer in quantized_model.layers
             if type(layer).__name__ in WEIGHT_LAYER_TYPES and layer.use_bias]
    missing = [n for n in names if n not in {lay.name for lay in float_model.layers}]
    if missing or not names:
        raise ValueError(f"quantized_model must have the weight layers of float_model with biases "
                         f"(fold batch norm first); unmatched: {missing or 'no layers with bias'}")
    means = _layer_input_means(float_model, names, x)
    corrected = copy_model(quantized_model)
    for name in names:
        layer = corrected.get_layer(name)
        kernel, bias = layer.get_weights()[:2]
        delta = kernel.astype(np.float64) - float_model.get_layer(name).get_weights()[0]
        error = _expected_error(layer, delta, means[name])
        layer.set_weights([kernel, (bias - error).astype(np.float32)])
    return corrected
