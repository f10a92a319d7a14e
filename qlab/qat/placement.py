"""Where the fake-quant sits: TFMOT's placement against ones TFLite does not compute.

A quantization-aware Keras model only predicts its TFLite file if every
``FakeQuant`` sits on a tensor the TFLite kernels really round. TFLite's int8
``CONV_2D`` and ``FULLY_CONNECTED`` kernels compute

    acc = sum (x_q - x_zp) * w_q          (int32, per output channel)
    y_q = clamp(round(acc * M) + y_zp, act_min, act_max)

where the fused activation is *only* the clamp bounds ``act_min``/``act_max``:
a ReLU is never a separate rounding step, so the one rounded tensor is the
output *after* the ReLU, with a scale chosen for the ReLU output's range.
TFMOT's default scheme knows this: a ``Conv2D(activation="relu")`` gets its
activation quantizer after the ReLU (``post_activation``), and its
``LayerReLUQuantize`` transform removes the quantizer between a layer and a
separate ``ReLU`` layer so the converter can fuse them.

Kinds (:data:`KINDS`):

- ``"correct"``: ``tfmot.quantization.keras.quantize_model`` on the model as it is.
- ``"pre_activation"``: every Conv2D/Dense with a fused ReLU is split into the
  linear layer and a ``ReLU`` layer (:func:`split_relu`), and only the linear
  layers are annotated. The linear layer keeps TFMOT's default config, so its
  quantizer rounds the *pre*-ReLU output on a grid that spends part of its 256
  levels on negatives the ReLU throws away; ``quantize_apply`` then gives the
  unannotated ``ReLU`` an output quantizer of its own (``OutputOnlyConfig``), and
  since the ReLU is not annotated, TFMOT's ``LayerReLUQuantize`` never removes the
  first one. Keras rounds twice: ``fq_relu(relu(fq_pre(conv)))``.

What TFLite computes instead: the converter still fuses ``Conv2D -> ReLU`` into one
``CONV_2D`` (``FULLY_CONNECTED``) with ``fused_activation_function=RELU``, and a fused
op has one output tensor, so the pre-ReLU range has nowhere to go and is dropped:
TFLite computes ``fq_relu(relu(conv))``, one rounding at the ReLU output's scale.
The two differ by the pre-ReLU rounding error (up to half a pre-ReLU step, coarser
than the post-ReLU step because the pre-ReLU range also covers the negatives),
which Keras applies and TFLite does not. The file is the same as the correct
placement's (on mnist_cnn its scores equal the ``"correct"`` file's on all 10,000
test images); the Keras model no longer predicts it, so accuracy measured (or
fine-tuned for) in Keras is not the deployed accuracy.

- ``"per_tensor_before_fold"`` (for a model with Conv2D/DepthwiseConv2D ->
  BatchNormalization, a MobileNet): each such kernel gets one symmetric per-tensor
  fake-quant (:class:`PerTensorWeightsQuantizeConfig`), applied to the kernel
  *before* the BN is folded into it, and nothing between the conv and its BN.

Folding BN (measured on mobilenet_v1). The converter folds a BN into the conv before
it: ``w_c' = w_c * gamma_c / sqrt(var_c + eps)``, one multiplier per output
channel. TFMOT's default scheme also fake-quantizes the kernel before that fold,
and this is harmless: its weight quantizer is per axis (the Conv2D's output
channels; a DepthwiseConv2D's last axis is its depth multiplier, so one range),
and the converter carries the fake-quant's grid through the fold, giving channel
``c`` the scale ``s * multiplier_c``, so the folded int8 kernel is ``fq(w)`` times
the multiplier with no second rounding (checked to 3e-5 of a step on every
weight of ``conv_dw_1`` and ``conv_pw_1``). With a plain per-tensor fake-quant
(``FakeQuantWithMinMaxVars`` rather than its per-channel form) the converter does
not carry the grid through the fold: it leaves those convs in float32, with a
``QUANTIZE``/``DEQUANTIZE`` pair around each. Keras and TFLite then agree closely
(the float conv computes the folded ``fq(w)`` exactly), but the file is no longer
an integer model: ``dequantize_ops`` in :func:`placement_agreement` counts them.

All kinds get their ranges the same way, from calibration images with min/max
(:func:`qlab.ptq.ranges.activation_ranges`, :func:`~qlab.ptq.ranges.set_weight_ranges`,
:func:`~qlab.ptq.ranges.set_activation_ranges`), never from TFMOT's ``[-6, 6]`` start.
:func:`placement_agreement` converts each with :func:`qlab.conversion.converter.convert_qat`
and compares the Keras fake-quant model with its own TFLite file on the same
images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.zoo.models import predict_keras
from qlab.qat.quantize_configs import LowBitWeightsQuantizeConfig

if TYPE_CHECKING:
    import pandas as pd

#: Fake-quant placements :func:`wrong_placement_model` builds, with what each does.
KINDS: dict[str, str] = {
    "correct": "TFMOT's default 8-bit scheme: ReLU fused, output quantized after it (what TFLite computes)",
    "pre_activation": "Conv2D/Dense output quantized before its ReLU, then again after it (ReLU split off)",
    "per_tensor_before_fold": "a kernel followed by BatchNormalization quantized per tensor, before the fold",
}
#: Layer classes whose fused ReLU :func:`split_relu` moves into its own layer.
_SPLIT_CLASSES = ("Conv2D", "DepthwiseConv2D", "Dense")
#: The kernel attribute of the layers whose BatchNormalization the converter folds.
_KERNELS = {"Conv2D": "kernel", "DepthwiseConv2D": "depthwise_kernel"}


def check_kind(kind: Any) -> str:
    """Return ``kind`` if it is a key of :data:`KINDS`, else raise a ValueError listing them."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    return kind


class PerTensorWeightsQuantizeConfig(LowBitWeightsQuantizeConfig):
    """8-bit symmetric weights with one scale for the whole kernel, and no output quantizer.

    For a Conv2D/DepthwiseConv2D followed by BatchNormalization: no fake-quant sits
    between them, so the converter folds the BN into the kernel as TFMOT's default does.
    """

    def __init__(self, weight_attr: str = "kernel"):
        super().__init__(weight_attr, num_bits=8, per_axis=False)

    def get_output_quantizers(self, layer: Any) -> list:
        return []

    def get_config(self) -> dict[str, Any]:
        return {"weight_attr": self.weight_attr}


def _default_8bit_configs() -> Any:
    """TFMOT's ``default_8bit_quantize_configs`` module (NoOp and output-only configs; not exported)."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs)

    return default_8bit_quantize_configs


def _has_fused_relu(layer: Any) -> bool:
    activation = getattr(layer, "activation", None)
    return type(layer).__name__ in _SPLIT_CLASSES and getattr(activation, "__name__", "") == "relu"


def split_relu(model: Any) -> Any:
    """A copy of a Sequential ``model`` where each fused ReLU is its own ``<layer>_relu`` layer.

    The float model computes the same function (same weights); only where a
    quantizer can be placed changes. Raises a TypeError for non-Sequential models.
    """
    from qlab.zoo.keras2 import keras, require_keras2_model

    model = require_keras2_model(model)
    if not isinstance(model, keras.Sequential):
        raise TypeError(f"split_relu needs a keras.Sequential model, got {type(model).__name__} "
                        f"{model.name!r}")
    if not any(_has_fused_relu(layer) for layer in model.layers):
        raise ValueError(f"model {model.name!r} has no {'/'.join(_SPLIT_CLASSES)} layer with "
                         "activation='relu'; there is no ReLU to split off")
    layers: list[Any] = [keras.Input(model.input_shape[1:])]
    for layer in model.layers:
        config = layer.get_config()
        if _has_fused_relu(layer):
            config["activation"] = "linear"
        copy = type(layer).from_config(config)
        layers.append(copy)
        if _has_fused_relu(layer):
            layers.append(keras.layers.ReLU(name=f"{layer.name}_relu"))
    split = keras.Sequential(layers, name=f"{model.name}_split_relu")
    for layer in model.layers:
        split.get_layer(layer.name).set_weights(layer.get_weights())
    return split


def _consumers(model: Any) -> dict[str, list[Any]]:
    """Layer name -> the layers of ``model`` that take its output (Keras' public ``outbound_nodes``)."""
    return {layer.name: [node.outbound_layer for node in layer.outbound_nodes
                         if node.outbound_layer in model.layers] for layer in model.layers}


def _only_consumer(consumers: dict[str, list[Any]], layer: Any, class_names: tuple[str, ...]) -> bool:
    taken_by = consumers.get(layer.name, [])
    return len(taken_by) == 1 and type(taken_by[0]).__name__ in class_names


def _before_fold_configs(model: Any) -> dict[str, Any]:
    """Layer name -> QuantizeConfig for the ``per_tensor_before_fold`` kind (others: TFMOT default)."""
    configs = _default_8bit_configs()
    consumers, chosen = _consumers(model), {}
    for layer in model.layers:
        name = type(layer).__name__
        if name in _KERNELS and _only_consumer(consumers, layer, ("BatchNormalization",)):
            chosen[layer.name] = PerTensorWeightsQuantizeConfig(_KERNELS[name])
            bn = consumers[layer.name][0]
            # a BN the converter fuses with its ReLU must not be rounded before it (that is kind a)
            chosen[bn.name] = (configs.NoOpQuantizeConfig()
                               if _only_consumer(consumers, bn, ("ReLU", "Activation"))
                               else configs.Default8BitOutputQuantizeConfig())
    if not chosen:
        raise ValueError(f"model {model.name!r} has no Conv2D/DepthwiseConv2D followed by "
                         "BatchNormalization; kind 'per_tensor_before_fold' needs one (a MobileNet)")
    return chosen


def applicable_kinds(model: Any) -> list[str]:
    """The kinds that apply to ``model``: ``"correct"``, plus each misplacement it has a site for."""
    from qlab.zoo.keras2 import keras

    kinds = ["correct"]
    if isinstance(model, keras.Sequential) and any(_has_fused_relu(layer) for layer in model.layers):
        kinds.append("pre_activation")
    consumers = _consumers(model)
    if any(type(layer).__name__ in _KERNELS and _only_consumer(consumers, layer, ("BatchNormalization",))
           for layer in model.layers):
        kinds.append("per_tensor_before_fold")
    return kinds


def float_model_for(model: Any, kind: str) -> Any:
    """The float model whose layers :func:`wrong_placement_model` annotates for ``kind``."""
    return split_relu(model) if check_kind(kind) == "pre_activation" else model


def wrong_placement_model(model: Any, kind: str) -> Any:
    """The quantization-aware (TFMOT) model of ``model`` with fake-quants placed as ``kind`` says.

    Ranges are TFMOT's initial ones; :func:`calibrated_placement_model` sets them from data.
    """
    from qlab.qat.quantize import quantize_partial, quantize_whole_model

    if check_kind(kind) == "correct":
        return quantize_whole_model(model)
    if kind == "per_tensor_before_fold":
        configs = _default_8bit_configs()
        chosen = _before_fold_configs(model)
        return quantize_partial(model, predicate=lambda layer: True,
                                quantize_config=lambda layer: chosen.get(layer.name),
                                scope={"PerTensorWeightsQuantizeConfig": PerTensorWeightsQuantizeConfig,
                                       "NoOpQuantizeConfig": configs.NoOpQuantizeConfig,
                                       "Default8BitOutputQuantizeConfig":
                                           configs.Default8BitOutputQuantizeConfig})
    # the ReLU layers stay unannotated: TFMOT's LayerReLUQuantize only fuses annotated pairs
    return quantize_partial(float_model_for(model, kind),
                            predicate=lambda layer: type(layer).__name__ != "ReLU")


def calibrated_placement_model(model: Any, kind: str, x_calib: np.ndarray) -> Any:
    """:func:`wrong_placement_model` with min/max ranges from ``x_calib`` and weight ranges set."""
    from qlab.ptq.ranges import activation_ranges, check_images, set_activation_ranges, set_weight_ranges

    x_calib = check_images(model, x_calib, "x_calib")
    float_model = float_model_for(model, kind)
    qat_model = wrong_placement_model(model, kind)
    set_weight_ranges(qat_model)
    set_activation_ranges(qat_model, activation_ranges(float_model, x_calib, "minmax", qat_model=qat_model))
    return qat_model


def op_names(model_bytes: bytes) -> list[str]:
    """The builtin op of every node in a TFLite flatbuffer, in execution order."""
    from qlab.conversion.tflite import make_interpreter

    # LiteRT has no public op listing; the private one is what its own tests use
    return [op["op_name"] for op in make_interpreter(model_bytes)._get_ops_details()]


def placement_agreement(model: Any, x_calib: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                        kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Per placement ``kind``: Keras fake-quant against its own TFLite file on ``x_test``.

    ``kinds`` defaults to :func:`applicable_kinds` (mnist_cnn: ``correct``, ``pre_activation``;
    a MobileNet: ``correct``, ``per_tensor_before_fold``). ``x_calib`` sets every range (min/max).

    Columns: ``kind``, ``keras_accuracy``, ``tflite_accuracy``,
    ``keras_tflite_agreement`` (same top-1 class on the same image), ``keras_tflite_sqnr_db``
    (TFLite's output scores against Keras's), ``float_tflite_agreement`` (against the float
    model) and ``dequantize_ops`` (ops the file runs in float32 between two of them; 0 for
    an all-integer file with int8 input and output).
    """
    import pandas as pd

    from qlab.conversion.converter import convert_qat
    from qlab.ptq.ranges import check_images
    from qlab.conversion.tflite import predict_tflite
    from qlab.numerics.metrics import output_sqnr_db, top1_agreement

    kinds = applicable_kinds(model) if kinds is None else [check_kind(kind) for kind in kinds]
    x_test = check_images(model, x_test, "x_test")
    y_test = np.asarray(y_test)
    reference = predict_keras(model, x_test)
    rows = []
    for kind in kinds:
        qat_model = calibrated_placement_model(model, kind, x_calib)
        keras_scores = predict_keras(qat_model, x_test)
        model_bytes = convert_qat(qat_model, int8_io=True)
        tflite_scores = predict_tflite(model_bytes, x_test)
        rows.append({"kind": kind,
                     "keras_accuracy": float(np.mean(keras_scores.argmax(1) == y_test)),
                     "tflite_accuracy": float(np.mean(tflite_scores.argmax(1) == y_test)),
                     "keras_tflite_agreement": top1_agreement(keras_scores, tflite_scores),
                     "keras_tflite_sqnr_db": output_sqnr_db(keras_scores, tflite_scores),
                     "float_tflite_agreement": top1_agreement(reference, tflite_scores),
                     "dequantize_ops": op_names(model_bytes).count("DEQUANTIZE")})
    return pd.DataFrame(rows)
