"""Looking inside a Keras model as the TFLite converter will see it.

Which layers carry weights, the kernel of each with batch norm folded in and its
output-channel axis (as the converter quantizes it), and the activations each
fused conv -> batch norm -> ReLU chain produces. Taught in ``05_per_channel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from qlab.numerics.per_channel import channel_ranges_view

__all__ = ["WEIGHT_LAYER_TYPES", "LayerWeights", "weight_layers", "sole_consumer",
           "following_batch_norm",
           "batch_norm_scale", "layer_weights", "layer_activations", "fused_output_layer",
           "model_activations", "channel_ranges_table"]

#: Keras layer classes whose kernels TFLite quantizes per channel.
WEIGHT_LAYER_TYPES: tuple[str, ...] = ("Conv2D", "DepthwiseConv2D", "Dense")


@dataclass(frozen=True)
class LayerWeights:
    """A layer's kernel and the axis TFLite quantizes it along.

    Returned by :func:`layer_weights`. Taught in ``05_per_channel``.
    """

    name: str
    kind: str
    kernel: np.ndarray
    channel_axis: int
    folded_batch_norm: str = ""  #: name of the BatchNormalization folded into ``kernel``, if any

    def __repr__(self) -> str:
        folded = f", folded {self.folded_batch_norm}" if self.folded_batch_norm else ""
        return (f"LayerWeights({self.name!r}, {self.kind}{folded}, shape {self.kernel.shape}, "
                f"axis {self.channel_axis})")


def weight_layers(model: Any) -> list[str]:
    """Names of the Conv2D, DepthwiseConv2D and Dense layers of a Keras model, in order."""
    return [layer.name for layer in model.layers if type(layer).__name__ in WEIGHT_LAYER_TYPES]


def sole_consumer(model: Any, layer_name: str) -> Any:
    """The one layer of ``model`` that reads ``layer_name``'s output, or None if there are more or none."""
    consumers = [node.outbound_layer for node in model.get_layer(layer_name).outbound_nodes
                 if node.outbound_layer in model.layers]
    return consumers[0] if len(consumers) == 1 else None


def following_batch_norm(model: Any, layer_name: str) -> Any:
    """The BatchNormalization layer that alone consumes ``layer_name``'s output, or None."""
    consumer = sole_consumer(model, layer_name)
    return consumer if type(consumer).__name__ == "BatchNormalization" else None


def batch_norm_scale(bn_layer: Any) -> np.ndarray:
    """Per-channel factor ``gamma / sqrt(moving_variance + epsilon)`` a folded kernel is multiplied by."""
    weights = {w.name.split("/")[-1].split(":")[0]: np.asarray(w) for w in bn_layer.weights}
    gamma = weights.get("gamma", np.ones_like(weights["moving_variance"]))
    return gamma / np.sqrt(weights["moving_variance"] + bn_layer.epsilon)


def layer_weights(model: Any, layer_name: str, fold_batch_norm: bool = True) -> LayerWeights:
    """The kernel of ``layer_name`` with its output-channel axis, as TFLite will quantize it.

    A DepthwiseConv2D kernel (kh, kw, in, multiplier) is reshaped to
    (kh, kw, in * multiplier) with the channels last, as TFLite does. With
    ``fold_batch_norm`` a BatchNormalization right after the layer is folded
    into the kernel (the converter does the same), which is what makes
    MobileNet's depthwise channels so unequal. Taught in ``05_per_channel``.
    """
    names = weight_layers(model)
    if layer_name not in names:
        raise ValueError(f"layer_name {layer_name!r} is not a Conv2D/DepthwiseConv2D/Dense layer "
                         f"of the model; choose from {names}")
    layer = model.get_layer(layer_name)
    kind = type(layer).__name__
    kernel = np.asarray(layer.get_weights()[0])
    if kind == "DepthwiseConv2D":
        kh, kw, cin, mult = kernel.shape
        kernel = kernel.reshape(kh, kw, cin * mult)
    bn = following_batch_norm(model, layer_name) if fold_batch_norm else None
    if bn is not None:
        kernel = kernel * batch_norm_scale(bn)  # output channels are the last axis now
    return LayerWeights(layer_name, kind, kernel, kernel.ndim - 1, bn.name if bn is not None else "")


def layer_activations(model: Any, layer_name: str, x: np.ndarray) -> np.ndarray:
    """The output of ``layer_name`` on the input batch ``x`` (runs the model up to that layer)."""
    from qlab.zoo.keras2 import keras

    layer = model.get_layer(layer_name)
    probe = keras.Model(model.inputs, layer.output)
    return np.asarray(probe(np.asarray(x, dtype=np.float32), training=False))


# Layers the converter fuses into the op before them: their output is the tensor it quantizes.
_FUSED_AFTER = ("BatchNormalization", "ReLU", "Activation")


def fused_output_layer(model: Any, layer_name: str) -> str:
    """The last layer of ``layer_name``'s fused chain (conv -> batch norm -> ReLU -> ...).

    TFLite folds batch norm and fuses the activation into the convolution, so
    the int8 tensor it quantizes is the output of the last layer in that chain.
    """
    name = layer_name
    while (consumer := sole_consumer(model, name)) is not None \
            and type(consumer).__name__ in _FUSED_AFTER:
        name = consumer.name
    return name


def model_activations(model: Any, x: np.ndarray,
                      layer_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``{"<layer> activations": output}`` of each weight layer's fused chain on the batch ``x``.

    One forward pass for all layers; keys name the Conv2D/DepthwiseConv2D/Dense
    layer, values are the outputs TFLite would quantize (after batch norm and ReLU).
    """
    from qlab.zoo.keras2 import keras

    names = list(layer_names) if layer_names is not None else weight_layers(model)
    outputs = [model.get_layer(fused_output_layer(model, n)).output for n in names]
    probe = keras.Model(model.inputs, outputs)
    results = probe(np.asarray(x, dtype=np.float32), training=False)
    results = results if isinstance(results, (list, tuple)) else [results]
    return {f"{n} activations": np.asarray(r) for n, r in zip(names, results)}


def channel_ranges_table(model: Any, num_bits: int = 8) -> "pd.DataFrame":
    """Per-tensor vs per-channel weight quantization for every weight layer of ``model``.

    One row per Conv2D/DepthwiseConv2D/Dense layer (batch norm folded in, as the
    converter does): its kind, channel count, how unequal its channels are
    (largest channel range / median channel range) and the weight SQNR of both
    schemes. Taught in ``05_per_channel``.
    """
    import pandas as pd

    rows = []
    for name in weight_layers(model):
        weights = layer_weights(model, name)
        view = channel_ranges_view(weights.kernel, weights.channel_axis, num_bits, name)
        bound = np.maximum(np.abs(view.channel_min), np.abs(view.channel_max))
        rows.append({"layer": name, "kind": weights.kind, "channels": view.channels,
                     "range spread": float(bound.max() / max(np.median(bound), 1e-12)),
                     "per-tensor SQNR dB": view.per_tensor_sqnr_db,
                     "per-channel SQNR dB": view.per_channel_sqnr_db})
    table = pd.DataFrame(rows).set_index("layer")
    table["gain dB"] = table["per-channel SQNR dB"] - table["per-tensor SQNR dB"]
    return table
