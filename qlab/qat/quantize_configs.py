"""``QuantizeConfig`` s for common layers that TFMOT's default registries refuse.

TFMOT's ``quantize_model`` stops at a ``Rescaling`` layer ("Layer rescaling:<class ...
Rescaling> is not supported", tensorflow/model-optimization#647), although it is the
first layer of many image models. In a full-integer file the TFLite converter turns
Rescaling into a ``MUL`` (and an ``ADD`` when it has an offset) whose output is int8:
no weights to quantize, one 8-bit output range. :class:`RescalingQuantizeConfig` says
exactly that to TFMOT, so the quantization-aware model fake-quantizes where the file
will quantize.

:func:`annotate_extra_layers` annotates every layer of a model that
:data:`EXTRA_CONFIGS` knows; :mod:`qlab.qat.quantize` calls it before
``quantize_annotate_model``, so ``qat_int8``, ``qat_4bit`` and the other whole-model
helpers accept these layers without being asked. Taught in ``12_your_own_model``.

:class:`LowBitWeightsQuantizeConfig` is the QuantizeConfig ``07_custom_quantization``
writes out: ``num_bits`` weights and 8-bit outputs for a Conv2D, DepthwiseConv2D or Dense.
"""

from __future__ import annotations

from typing import Any, Callable

from qlab.numerics.validate import check_num_bits
from qlab.zoo.keras2 import keras, tfmot

qkeras = tfmot.quantization.keras


def output_quantizer_8bit() -> Any:
    """TFMOT's default activation quantizer: 8 bits, asymmetric, per tensor, moving min/max."""
    return qkeras.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                    narrow_range=False)


class RescalingQuantizeConfig(qkeras.QuantizeConfig):
    """Rescaling (``x * scale + offset``): no weights, an 8-bit output like the converter's int8 MUL/ADD.

    The output quantizer is TFMOT's ``MovingAverageQuantizer`` (asymmetric, per tensor,
    not narrow): the same kind TFMOT's default scheme puts after an activation, and what
    a full-integer TFLite file stores for the MUL's output tensor.
    """

    def get_weights_and_quantizers(self, layer: Any) -> list:
        return []

    def get_activations_and_quantizers(self, layer: Any) -> list:
        return []

    def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
        pass

    def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
        pass

    def get_output_quantizers(self, layer: Any) -> list:
        return [output_quantizer_8bit()]

    def get_config(self) -> dict[str, Any]:
        return {}


#: Layer class (tf_keras) -> the QuantizeConfig qlab gives it when TFMOT's registry has none.
EXTRA_CONFIGS: dict[type, Callable[[], Any]] = {
    keras.layers.Rescaling: RescalingQuantizeConfig,
}
#: What ``quantize_apply`` needs in its ``quantize_scope`` to clone the annotated model.
EXTRA_SCOPE: dict[str, type] = {"RescalingQuantizeConfig": RescalingQuantizeConfig}


def extra_config_for(layer: Any) -> Any | None:
    """qlab's QuantizeConfig for ``layer`` if :data:`EXTRA_CONFIGS` has one for its class, else None."""
    make = EXTRA_CONFIGS.get(type(layer))
    return make() if make is not None else None


def has_extra_layers(model: Any) -> bool:
    """Whether any layer of ``model`` needs one of qlab's extra QuantizeConfigs."""
    return any(type(layer) in EXTRA_CONFIGS for layer in model.layers)


def annotate_extra_layers(model: Any) -> Any:
    """A clone of ``model`` whose Rescaling (etc.) layers are annotated with qlab's QuantizeConfig.

    The other layers are the model's own objects (their trained weights are kept);
    ``quantize_annotate_model`` then annotates them and leaves these alone. Call
    ``quantize_apply`` inside ``quantize_scope(EXTRA_SCOPE)``.
    """

    def annotate(layer: Any) -> Any:
        config = extra_config_for(layer)
        if config is None:
            return layer
        return qkeras.quantize_annotate_layer(layer, quantize_config=config)

    return keras.models.clone_model(model, clone_function=annotate)


#: The weight each layer type keeps its kernel in, for :class:`LowBitWeightsQuantizeConfig`.
WEIGHT_ATTRS = {"DepthwiseConv2D": "depthwise_kernel", "Conv2D": "kernel", "Dense": "kernel"}


class LowBitWeightsQuantizeConfig(qkeras.QuantizeConfig):
    """A ``QuantizeConfig``: ``num_bits`` symmetric weights, 8-bit outputs (``MovingAverageQuantizer``).

    For Conv2D, DepthwiseConv2D and Dense layers. ``per_axis=True`` gives Conv2D and
    Dense one scale per output channel; a DepthwiseConv2D kernel's last axis is its
    depth multiplier (1 here), so it stays one scale per tensor. ``07_custom_quantization``
    writes the same config out in a cell the learner edits; :mod:`qlab.qat.placement` builds on it.
    """

    def __init__(self, weight_attr: str = "kernel", num_bits: int = 4, per_axis: bool = True):
        num_bits = check_num_bits(num_bits, high=8)  # TFMOT's weight quantizers stop at 8 bits
        self.weight_attr, self.num_bits, self.per_axis = weight_attr, num_bits, per_axis

    @classmethod
    def for_layer(cls, layer: Any, num_bits: int = 4, per_axis: bool = True
                  ) -> "LowBitWeightsQuantizeConfig":
        """The config for ``layer``, picking its weight attribute by layer type.

        Taught in ``07_custom_quantization``.
        """
        name = type(layer).__name__
        if name not in WEIGHT_ATTRS:
            raise ValueError(f"LowBitWeightsQuantizeConfig supports {list(WEIGHT_ATTRS)}, "
                             f"got layer {layer.name!r} ({name})")
        return cls(WEIGHT_ATTRS[name], num_bits, per_axis)

    def get_weights_and_quantizers(self, layer: Any) -> list:
        quantizer = qkeras.quantizers.LastValueQuantizer(
            num_bits=self.num_bits, per_axis=self.per_axis, symmetric=True, narrow_range=True)
        return [(getattr(layer, self.weight_attr), quantizer)]

    def get_activations_and_quantizers(self, layer: Any) -> list:
        return []

    def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
        setattr(layer, self.weight_attr, quantize_weights[0])

    def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
        pass

    def get_output_quantizers(self, layer: Any) -> list:
        return [output_quantizer_8bit()]

    def get_config(self) -> dict[str, Any]:
        return {"weight_attr": self.weight_attr, "num_bits": self.num_bits,
                "per_axis": self.per_axis}
