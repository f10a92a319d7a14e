"""Batch-norm folding and ReLU6 -> ReLU: rewrites that keep a model's function, before quantizing it.

The converter folds each BatchNormalization into the convolution before it, so the
weights a quantized file stores are the folded ones: ``w * gamma / sqrt(var + eps)``
per output channel, and a bias ``beta - mean * gamma / sqrt(var + eps)``.
:func:`fold_batch_norm` does the same in Keras, so per-channel ranges, equalization
and AdaRound see the weights the file will hold. :func:`relu6_to_relu` swaps the one
activation that stops cross-layer equalization (:mod:`qlab.ptq.equalize`).
Taught in ``05_per_channel``.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from qlab.zoo.introspect import WEIGHT_LAYER_TYPES, batch_norm_scale, following_batch_norm


def check_model(model: Any) -> Any:
    from qlab.zoo.keras2 import require_keras2_model

    return require_keras2_model(model)


def _rebuild(model: Any, edit: Callable[[dict], None]) -> Any:
    """A new model from ``model``'s config after ``edit(config)``; weights copied by layer name."""
    from qlab.zoo.keras2 import keras

    config = copy.deepcopy(model.get_config())
    edit(config)
    cls = keras.Sequential if isinstance(model, keras.Sequential) else keras.Model
    rebuilt = cls.from_config(config)
    for layer in rebuilt.layers:
        if layer.weights and layer.name in {lay.name for lay in model.layers}:
            source = model.get_layer(layer.name).get_weights()
            if len(source) == len(layer.get_weights()):
                layer.set_weights(source)
    return rebuilt


def _layer_configs(config: dict) -> list[dict]:
    return config["layers"]


def _drop_layers(config: dict, replaced_by: dict[str, str]) -> None:
    """Remove layers from a Sequential or functional config, rewiring their consumers."""
    config["layers"] = [c for c in config["layers"] if c["config"]["name"] not in replaced_by]

    def rewire(value: Any) -> Any:
        if isinstance(value, list):
            if value and isinstance(value[0], str) and value[0] in replaced_by:
                return [replaced_by[value[0]], *value[1:]]
            return [rewire(v) for v in value]
        if isinstance(value, dict):
            return {k: rewire(v) for k, v in value.items()}
        return value

    for layer in config["layers"]:
        if "inbound_nodes" in layer:
            layer["inbound_nodes"] = rewire(layer["inbound_nodes"])
    if "output_layers" in config:
        config["output_layers"] = rewire(config["output_layers"])


def out_channels(layer: Any, kernel: np.ndarray) -> int:
    if type(layer).__name__ == "DepthwiseConv2D":
        return kernel.shape[2] * kernel.shape[3]
    return kernel.shape[-1]


def scale_out(layer: Any, kernel: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``kernel`` with output channel ``i`` multiplied by ``scale[i]`` (depthwise: in * multiplier)."""
    if type(layer).__name__ == "DepthwiseConv2D":
        kh, kw, cin, mult = kernel.shape
        return (kernel * scale.reshape(cin, mult)).astype(np.float32)
    return (kernel * scale).astype(np.float32)


def _folded_weights(model: Any, name: str, bn: Any) -> list[np.ndarray]:
    """``[kernel * bn_scale, (bias - mean) * bn_scale + beta]`` for layer ``name``."""
    layer = model.get_layer(name)
    weights = layer.get_weights()
    kernel = weights[0]
    bias = weights[1] if layer.use_bias else np.zeros(out_channels(layer, kernel), np.float32)
    scale = batch_norm_scale(bn).astype(np.float32)
    stats = {w.name.split("/")[-1].split(":")[0]: np.asarray(w) for w in bn.weights}
    beta = stats.get("beta", np.zeros_like(scale))
    kernel = scale_out(layer, kernel, scale)
    return [kernel, ((bias - stats["moving_mean"]) * scale + beta).astype(np.float32)]


def fold_batch_norm(model: Any) -> Any:
    """The same model with every BatchNormalization folded into the weight layer before it.

    Each Conv2D/DepthwiseConv2D/Dense whose sole consumer is a BatchNormalization gets
    ``kernel * gamma / sqrt(var + eps)`` and the matching bias (``use_bias`` turned on),
    and the BatchNormalization is removed - what the TFLite converter does internally.
    Outputs agree to float32 rounding (checked in the tests). Taught in ``05_per_channel``.
    """
    model = check_model(model)
    folds = {}
    for layer in model.layers:
        if type(layer).__name__ in WEIGHT_LAYER_TYPES:
            bn = following_batch_norm(model, layer.name)
            if bn is not None:
                folds[layer.name] = bn
    if not folds:
        return _rebuild(model, lambda config: None)

    def edit(config: dict) -> None:
        for layer in _layer_configs(config):
            if layer["config"]["name"] in folds:
                layer["config"]["use_bias"] = True
        _drop_layers(config, {bn.name: name for name, bn in folds.items()})

    rebuilt = _rebuild(model, edit)
    for name, bn in folds.items():
        rebuilt.get_layer(name).set_weights(_folded_weights(model, name, bn))
    return rebuilt


def _is_relu6(layer_config: dict, class_name: str) -> bool:
    if class_name == "ReLU":
        return layer_config.get("max_value") is not None
    return layer_config.get("activation") == "relu6"


def relu6_to_relu(model: Any) -> Any:
    """The same model with every ReLU6 (ReLU layer with ``max_value``, or ``activation="relu6"``) made a ReLU.

    This changes the float function wherever an activation exceeded 6: measure it
    (:func:`max_output_difference`, accuracy). Nagel et al. do the same before
    equalizing MobileNetV2. Taught in ``05_per_channel``.
    """
    model = check_model(model)

    def edit(config: dict) -> None:
        for layer in _layer_configs(config):
            if _is_relu6(layer["config"], layer["class_name"]):
                if layer["class_name"] == "ReLU":
                    layer["config"]["max_value"] = None
                else:
                    layer["config"]["activation"] = "relu"

    return _rebuild(model, edit)
