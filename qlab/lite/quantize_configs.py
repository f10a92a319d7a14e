"""``QuantizeConfig`` s for common layers that TFMOT's default registries refuse.

TFMOT's ``quantize_model`` stops at a ``Rescaling`` layer ("Layer rescaling:<class ...
Rescaling> is not supported", tensorflow/model-optimization#647), although it is the
first layer of many image models. In a full-integer file the TFLite converter turns
Rescaling into a ``MUL`` (and an ``ADD`` when it has an offset) whose output is int8:
no weights to quantize, one 8-bit output range. :class:`RescalingQuantizeConfig` says
exactly that to TFMOT, so the quantization-aware model fake-quantizes where the file
will quantize.

:func:`annotate_extra_layers` annotates every layer of a model that
:data:`EXTRA_CONFIGS` knows; :mod:`qlab.lite.qat` calls it before
``quantize_annotate_model``, so ``qat_int8``, ``qat_4bit`` and the other whole-model
helpers accept these layers without being asked. Taught in ``11_your_own_model``.
"""

from __future__ import annotations

from typing import Any, Callable

from qlab.lite.keras2 import keras, tfmot

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
