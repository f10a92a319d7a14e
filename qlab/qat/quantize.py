"""Quantization-aware training with TFMOT: whole model, some layers, and 4-bit weights.

- :func:`quantize_whole_model`: ``tfmot.quantization.keras.quantize_model``, TFMOT's
  default 8-bit scheme (int8 weights per-channel, int8 activations), the model
  behind the published QAT tables.
- :func:`quantize_partial`: only the layers a predicate picks are annotated
  (``quantize_annotate_layer``) and ``quantize_apply`` makes the rest float.
- :func:`quantize_whole_model_n_bit`: TFMOT's ``DefaultNBitQuantizeScheme`` on the whole
  model (4-bit weights, 8-bit activations by default), with the default scheme's
  conv/batch-norm/ReLU handling. The ``qat_4bit`` variant: :func:`qlab.conversion.converter.convert_qat`
  turns it into a .tflite whose conv, depthwise and dense weights are all stored as INT4
  and run by LiteRT's int8 kernels (see :func:`qlab.conversion.converter.weight_storage`).
- :class:`qlab.qat.quantize_configs.LowBitWeightsQuantizeConfig`: a custom ``QuantizeConfig`` giving a layer
  ``num_bits``-bit weights (4 by default) and 8-bit outputs, to see how a QuantizeConfig
  works; whether such a model converts is for ``try_convert_qat`` to say.

Each returns a Keras model to fine-tune with :func:`qlab.qat.training.fine_tune`;
:func:`qlab.qat.training.load_or_fine_tune` does it for a zoo model and caches the result.
:func:`quantizer_table` and :func:`range_variables` show where a quantized model
fake-quantizes; :func:`layer_support_table` says which layers TFMOT can quantize at all.

Taught in ``06_quantization_aware_training`` (TFMOT's 8-bit scheme) and
``07_custom_quantization`` (n-bit weights).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from qlab.numerics.validate import check_int
from qlab.zoo.keras2 import keras, require_keras2_model, tfmot
from qlab.qat.quantize_configs import (EXTRA_CONFIGS, EXTRA_SCOPE, WEIGHT_ATTRS, LowBitWeightsQuantizeConfig,
                                       annotate_extra_layers, has_extra_layers)

if TYPE_CHECKING:
    import pandas as pd

qkeras = tfmot.quantization.keras


class UnsupportedLayerError(ValueError):
    """TFMOT's default scheme has no QuantizeConfig for a layer of the model.

    Raised by :func:`quantize_whole_model`. Taught in ``12_your_own_model``.
    """


def _explain_tfmot_error(exc: Exception, model: Any) -> Exception:
    """Turn TFMOT's 'Layer x:<class> is not supported' into an error that says what to do."""
    match = re.search(r"Layer (\S+?):<class '([\w.]+)'>", str(exc)) or \
        re.search(r"Layer (\S+?):(\S+)", str(exc))
    if not match:
        return exc
    name, cls = match.group(1), match.group(2).split(".")[-1]
    return UnsupportedLayerError(
        f"layer {name!r} ({cls}) of model {model.name!r} cannot be quantized with TFMOT's "
        f"default 8-bit scheme. Either keep it in float (qlab.qat.quantize.quantize_partial with a "
        f"predicate that skips {name!r}), give it a QuantizeConfig "
        f"(quantize_annotate_layer(layer, quantize_config=...) inside quantize_scope), or "
        f"replace it with a supported layer (e.g. a Lambda by a built-in layer).")


def quantize_whole_model(model: Any) -> Any:
    """``tfmot.quantization.keras.quantize_model(model)`` with clear errors.

    Taught in ``06_quantization_aware_training``; used again in ``12_your_own_model``
    (a layer it cannot quantize).

    Raises:
        TypeError: ``model`` is a Keras 3 model (TFMOT needs Keras 2 / tf_keras).
        UnsupportedLayerError: a layer has no default QuantizeConfig; names the layer.
    """
    model = require_keras2_model(model)
    try:
        if not has_extra_layers(model):
            return qkeras.quantize_model(model)
        # Rescaling etc.: qlab's QuantizeConfig (qlab.qat.quantize_configs), the rest TFMOT's
        with qkeras.quantize_scope(EXTRA_SCOPE):
            return qkeras.quantize_apply(qkeras.quantize_annotate_model(annotate_extra_layers(model)))
    except (RuntimeError, ValueError) as exc:
        raise _explain_tfmot_error(exc, model) from exc


def quantize_with_scheme(model: Any, scheme: Any) -> Any:
    """``quantize_apply(quantize_annotate_model(model), scheme)``, with qlab's QuantizeConfig for a Rescaling.

    The way into TFMOT's other schemes (the collaborative-optimization ones of
    :mod:`qlab.compression.prune` and :mod:`qlab.compression.cluster`) for a model with a layer TFMOT has no
    QuantizeConfig for but qlab has (:data:`qlab.qat.quantize_configs.EXTRA_CONFIGS`), as
    :func:`quantize_whole_model` does for the default scheme. Taught in ``09_deep_compression``.
    """
    model = require_keras2_model(model)
    try:
        if not has_extra_layers(model):
            return qkeras.quantize_apply(qkeras.quantize_annotate_model(model), scheme)
        with qkeras.quantize_scope(EXTRA_SCOPE):
            return qkeras.quantize_apply(qkeras.quantize_annotate_model(annotate_extra_layers(model)), scheme)
    except (RuntimeError, ValueError) as exc:
        raise _explain_tfmot_error(exc, model) from exc


def is_conv_or_dense(layer: Any) -> bool:
    """Default predicate of :func:`quantize_partial`: Conv2D (not depthwise) and Dense layers."""
    return type(layer) in (keras.layers.Conv2D, keras.layers.Dense)


def quantize_partial(model: Any, predicate: Callable[[Any], bool] = is_conv_or_dense,
                     quantize_config: Any = None, scope: dict[str, Any] | None = None) -> Any:
    """Annotate the layers ``predicate`` picks, then ``quantize_apply``; the rest stays float.

    Taught in ``06_quantization_aware_training``; used again in ``07_custom_quantization``
    (a custom ``quantize_config``) and ``12_your_own_model``.

    Args:
        model: a float Keras 2 model.
        predicate: ``layer -> bool``; by default Conv2D and Dense layers.
        quantize_config: a ``QuantizeConfig`` for the picked layers, or a callable
            ``layer -> QuantizeConfig``; None uses TFMOT's default 8-bit scheme.
        scope: custom objects ``quantize_apply`` needs to clone the model (the
            QuantizeConfig classes); :class:`LowBitWeightsQuantizeConfig` is always in it.
    """
    model = require_keras2_model(model)

    def annotate(layer: Any) -> Any:
        if not predicate(layer):
            return layer
        config = quantize_config(layer) if callable(quantize_config) else quantize_config
        return qkeras.quantize_annotate_layer(layer, quantize_config=config)

    # returning the layer itself (not a copy) keeps its trained weights
    annotated = keras.models.clone_model(model, clone_function=annotate)
    custom = {"LowBitWeightsQuantizeConfig": LowBitWeightsQuantizeConfig, **(scope or {})}
    try:
        with qkeras.quantize_scope(custom):
            return qkeras.quantize_apply(annotated)
    except (RuntimeError, ValueError) as exc:
        raise _explain_tfmot_error(exc, model) from exc


def quantize_low_bit_weights(model: Any, num_bits: int = 4, per_axis: bool = True) -> Any:
    """Every Conv2D, DepthwiseConv2D and Dense layer gets ``num_bits`` weights; the rest stays float.

    The shortcut for the clone-annotate-apply that ``07_custom_quantization`` writes out.
    """
    return quantize_partial(
        model, predicate=lambda layer: type(layer).__name__ in WEIGHT_ATTRS,
        quantize_config=lambda layer: LowBitWeightsQuantizeConfig.for_layer(layer, num_bits, per_axis))


def quantize_whole_model_n_bit(model: Any, num_bits_weight: int = 4,
                               num_bits_activation: int = 8) -> Any:
    """The whole model with TFMOT's ``DefaultNBitQuantizeScheme``: n-bit weights and activations.

    ``quantize_annotate_model`` + ``quantize_apply(scheme=DefaultNBitQuantizeScheme(...))``:
    the default 8-bit scheme's layer handling (batch norm folded into the conv before it,
    ReLU fused) with other bit widths. At 4-bit weights and 8-bit activations (the
    ``qat_4bit`` variant) :func:`qlab.conversion.converter.convert_qat` stores the conv and dense
    weights as INT4 in the file. Builds the ``qat_4bit`` model that ``07_custom_quantization``
    loads.

    Raises:
        TypeError: ``model`` is a Keras 3 model (TFMOT needs Keras 2 / tf_keras).
        UnsupportedLayerError: a layer has no QuantizeConfig in the scheme; names the layer.
    """
    model = require_keras2_model(model)
    # TFMOT's quantizers and the converter stop at 8 bits
    num_bits_weight = check_int(num_bits_weight, "num_bits_weight", 2, 8)
    num_bits_activation = check_int(num_bits_activation, "num_bits_activation", 2, 8)
    scheme = qkeras.experimental.default_n_bit.DefaultNBitQuantizeScheme(
        num_bits_weight=num_bits_weight, num_bits_activation=num_bits_activation)
    try:
        annotated = qkeras.quantize_annotate_model(annotate_extra_layers(model)
                                                   if has_extra_layers(model) else model)
        with qkeras.quantize_scope(EXTRA_SCOPE):  # quantize_apply clones the annotated model
            return qkeras.quantize_apply(annotated, scheme=scheme)
    except (RuntimeError, ValueError) as exc:
        raise _explain_tfmot_error(exc, model) from exc


def quantize_4bit_weights(model: Any) -> Any:
    """The ``qat_4bit`` variant: :func:`quantize_whole_model_n_bit` with 4-bit weights, 8-bit activations."""
    return quantize_whole_model_n_bit(model, 4, 8)


def describe_quantizer(quantizer: Any) -> str:
    """``LastValueQuantizer(8-bit, per-axis, symmetric, narrow)``: a quantizer in TFMOT's words."""
    config = quantizer.get_config() if hasattr(quantizer, "get_config") else {}
    flags = [f"{config['num_bits']}-bit"] if "num_bits" in config else []
    flags += [word for key, word in (("per_axis", "per-axis"), ("symmetric", "symmetric"),
                                      ("narrow_range", "narrow")) if config.get(key)]
    return f"{type(quantizer).__name__}({', '.join(flags)})"


def _weight_names(config: Any) -> list[str]:
    # once the model has run, layer.kernel is the fake-quantized tensor, so take the
    # attribute names from the config (TFMOT: weight_attrs, qlab: weight_attr)
    settings = config.get_config()
    return list(settings.get("weight_attrs") or [settings.get("weight_attr", "weight")])


def quantizer_table(qat_model: Any) -> pd.DataFrame:
    """Where a quantization-aware model fake-quantizes: one row per layer.

    Columns: ``layer``, ``class`` (``QuantizeLayer``, ``QuantizeWrapperV2`` or a plain
    float layer), ``wraps`` (the original layer's class), ``config`` (its
    ``QuantizeConfig``), and the quantizers it applies to ``weights``, ``activations``
    (after the activation function) and ``outputs``; ``range variables`` lists the
    learned min/max variables. Taught in ``06_quantization_aware_training``; used again
    in ``07_custom_quantization``.
    """
    import pandas as pd

    rows = []
    for layer in qat_model.layers:
        inner, config = getattr(layer, "layer", None), getattr(layer, "quantize_config", None)
        row = {"layer": layer.name, "class": type(layer).__name__,
               "wraps": type(inner).__name__ if inner is not None else "", "config": "",
               "weights": "", "activations": "", "outputs": ""}
        if config is not None:
            row["config"] = type(config).__name__
            row["weights"] = "; ".join(f"{name}: {describe_quantizer(q)}" for name, (_, q) in
                                       zip(_weight_names(config), config.get_weights_and_quantizers(inner)))
            row["activations"] = "; ".join(describe_quantizer(q) for _, q in
                                           config.get_activations_and_quantizers(inner))
            row["outputs"] = "; ".join(describe_quantizer(q)
                                       for q in config.get_output_quantizers(inner))
        elif hasattr(layer, "quantizer"):  # QuantizeLayer: quantizes the model input
            row["outputs"] = describe_quantizer(layer.quantizer)
        row["range variables"] = ", ".join(sorted(v.name.split("/")[-1][:-2] for v in layer.weights
                                                  if v.name.endswith(("_min:0", "_max:0"))))
        rows.append(row)
    return pd.DataFrame(rows)


def range_variables(layer: Any) -> dict[str, Any]:
    """A QAT layer's learned ranges and float weights by short name (``kernel_min``, ``kernel``, ...).

    A ``QuantizeLayer``'s own range (``quantize_layer_1_min``, numbered when a session
    made several) is returned as ``min`` and ``max``. Taught in
    ``06_quantization_aware_training``; used again in ``07_custom_quantization``.
    """
    names = (v.name.split("/")[-1][:-2] for v in layer.weights)
    return {name.removeprefix(f"{layer.name}_"): v.numpy() for name, v in zip(names, layer.weights)}


def layer_support_table(model: Any) -> "pd.DataFrame":
    """Which layers TFMOT's default 8-bit scheme can quantize, before you try ``quantize_model``.

    One row per layer: its name, class, and ``supported`` (TFMOT's default registry
    has a QuantizeConfig for it). Layers marked False make :func:`quantize_whole_model`
    fail; keep them in float with :func:`quantize_partial` or give them a QuantizeConfig.
    Taught in ``12_your_own_model``.
    """
    import pandas as pd
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry)

    supports = registry.Default8BitQuantizeRegistry().supports
    model = require_keras2_model(model)
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        inbound = [type(node.inbound_layers).__name__ for node in layer.inbound_nodes
                   if not isinstance(node.inbound_layers, list)]
        folded = kind == "BatchNormalization" and set(inbound) & set(WEIGHT_ATTRS)
        extra = type(layer) in EXTRA_CONFIGS  # qlab's own QuantizeConfig (quantize_configs)
        rows.append({"layer": layer.name, "class": kind,
                     "supported": bool(supports(layer) or kind == "InputLayer" or folded or extra),
                     "note": "folded into the layer before it" if folded else
                     f"qlab's {EXTRA_CONFIGS[type(layer)].__name__}" if extra else ""})
    return pd.DataFrame(rows)
