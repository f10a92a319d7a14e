"""Checks for ``07_custom_quantization``: graded by TFMOT's own quantizers and its own QuantizeConfig for Dense."""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.workbook.check import CORRECT, NotDone, exercise_check

#: The exercise's Dense config: the weight and activation bits TFMOT's n-bit scheme is asked for.
WEIGHT_BITS, ACTIVATION_BITS = 4, 8
#: What a QuantizeConfig must implement: the abstract methods of TFMOT's interface.
METHODS = ("get_weights_and_quantizers", "get_activations_and_quantizers", "set_quantize_weights",
           "set_quantize_activations", "get_output_quantizers", "get_config")


def _weight_quantizer(num_bits: int) -> Any:
    """The quantizer ``LowBitWeights(per_axis=False)`` gives a kernel: TFMOT's own, the scale's reference."""
    from qlab.zoo.keras2 import tfmot

    return tfmot.quantization.keras.quantizers.LastValueQuantizer(
        num_bits=num_bits, per_axis=False, symmetric=True, narrow_range=True)


def tfmot_levels(kernel: np.ndarray, num_bits: int) -> np.ndarray:
    """The distinct values TFMOT's per-tensor weight quantizer rounds ``kernel`` to, in one training step."""
    from qlab.zoo.keras2 import keras, tf

    holder = keras.layers.Layer()  # owns the quantizer's min/max variables, as a QuantizeWrapper would
    quantizer = _weight_quantizer(num_bits)
    variables = quantizer.build(kernel.shape, "kernel", holder)
    return np.unique(quantizer(tf.constant(kernel, tf.float32), True, weights=variables).numpy())


def _scale_mistake(mine: float, kernel: np.ndarray, num_bits: int) -> str:
    """Which common formula ``mine`` came from (the grid TFMOT uses is already known not to match)."""
    magnitude, half = float(np.abs(kernel).max()), 2 ** (num_bits - 1)
    candidates = {
        "narrow range drops the most negative code, so the grid is symmetric: how many steps lie between 0 and "
        "the top code?": magnitude / half,
        "symmetric: the grid is centred on 0 and reaches the kernel's largest magnitude on both sides, not its "
        "min and max.": (float(kernel.max()) - float(kernel.min())) / (2 ** num_bits - 2),
        "narrow range has 2^b - 1 levels, so one step fewer than 2^b levels would have.":
            2 * magnitude / (2 ** num_bits - 1),
        "the largest magnitude counts negative weights too: look at |w|.": float(kernel.max()) / (half - 1),
        f"the weights have {num_bits} bits here (NUM_BITS), not 8.": magnitude / 127,
    }
    for hint, scale in candidates.items():
        if np.isclose(mine, scale, rtol=1e-4):
            return hint
    return f"the scale is the distance between two neighbouring levels of the {num_bits}-bit grid over the kernel."


@exercise_check("07.weight_scale", "the per-tensor scale of a kernel, symmetric and narrow range")
def check_weight_scale(scale: Any, *, kernel: np.ndarray, num_bits: int) -> str | None:
    """``scale`` against the step between the levels TFMOT's ``LastValueQuantizer`` rounds ``kernel`` to."""
    kernel = np.asarray(kernel, np.float32)
    values = np.asarray(scale, dtype=np.float64)
    if values.size != 1:
        return (f"per tensor means one scale for the whole kernel; yours has {values.size} values "
                "(one per channel is what per_axis=True gives).")
    mine = float(values.item())
    if not np.isfinite(mine) or mine <= 0:
        return "the scale is the width of one step of the grid: a positive number."
    levels = tfmot_levels(kernel, num_bits)
    step = float(np.min(np.diff(levels)))  # the grid's step, whatever formula TFMOT used
    if np.isclose(mine, step, rtol=1e-5):
        return CORRECT
    return (f"your scale is {'larger' if mine > step else 'smaller'} than the step of TFMOT's grid: "
            f"{_scale_mistake(mine, kernel, num_bits)}")


def _config_instance(config: Any) -> Any:
    """An instance of the learner's QuantizeConfig (class or instance); NotDone while nothing is written."""
    from qlab.zoo.keras2 import tfmot

    cls = config if isinstance(config, type) else type(config)
    if not issubclass(cls, tfmot.quantization.keras.QuantizeConfig):
        raise TypeError(f"expected a subclass of tfmot.quantization.keras.QuantizeConfig, got {cls.__name__}")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if set(missing) == set(METHODS):
        raise NotDone
    if missing:
        raise TypeError(f"write the method(s) {', '.join(missing)} too: a QuantizeConfig needs all six")
    return config() if isinstance(config, type) else config


def _describe(quantizer: Any) -> str:
    from qlab.qat.quantize import describe_quantizer

    return describe_quantizer(quantizer)


def _weights_problem(mine: list, reference: list, layer: Any) -> str | None:
    if not mine:
        return "get_weights_and_quantizers returns nothing, so the kernel stays float."
    if len(mine) > 1 or mine[0][0] is not layer.kernel:
        return "round the kernel only (layer.kernel): TFLite keeps a Dense layer's bias in int32."
    ours, theirs = mine[0][1], reference[0][1]
    if ours == theirs:
        return None
    if type(ours) is not type(theirs):
        return (f"the kernel's quantizer is a {type(ours).__name__}: weights take their range from their own "
                "current values at every step, as in LowBitWeights.")
    if ours.num_bits != WEIGHT_BITS:
        return f"the kernel gets {ours.num_bits} bits; the exercise asks for {WEIGHT_BITS}."
    if ours.per_axis:
        return ("one scale per output channel: TFLite's FULLY_CONNECTED cannot take that for a 4-bit Keras kernel "
                "(section 2's refusal), so round the kernel per tensor.")
    return f"TFMOT rounds weights to a symmetric, narrow-range grid; yours is {_describe(ours)}."


def _activations_problem(mine: list, outputs: list, reference: list, layer: Any) -> str | None:
    if not mine:
        if outputs:
            return ("you quantize the layer's output (get_output_quantizers); TFMOT's scheme quantizes the "
                    "activation function instead (get_activations_and_quantizers, layer.activation).")
        return "nothing quantizes the activations: the converter would have no range for the layer's output."
    if len(mine) > 1 or mine[0][0] is not layer.activation:
        return "quantize the activation function, layer.activation, and nothing else."
    if mine[0][1] != reference[0][1]:
        return (f"the activation's quantizer is {_describe(mine[0][1])}; activations take TFMOT's 8-bit one: "
                "asymmetric, per tensor, a moving average of min and max.")
    if outputs:
        return "the activation function is already quantized: an output quantizer would round the same tensor twice."
    return None


def _dense_only(model: Any, config_for: Any) -> Any:
    """``model`` with its Dense layers annotated by ``config_for(layer)`` and ``quantize_apply``'d."""
    from qlab.zoo.keras2 import keras, tfmot

    qkeras = tfmot.quantization.keras

    def annotate(layer: Any) -> Any:
        if isinstance(layer, keras.layers.Dense):
            return qkeras.quantize_annotate_layer(layer, quantize_config=config_for(layer))
        return layer

    return qkeras.quantize_apply(keras.models.clone_model(model, clone_function=annotate))


def _applied_problem(mine: Any, reference: Any, x: np.ndarray) -> str | None:
    """Both Dense-only models run on ``x``: the layers must read the rounded tensors, and the outputs agree."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation import (
        QuantizeAwareActivation)

    from qlab.zoo.keras2 import keras, tf

    outputs = [(mine(x, training=True).numpy(), reference(x, training=True).numpy())]  # sets the ranges
    for wrapper in (layer for layer in mine.layers if isinstance(getattr(layer, "layer", None), keras.layers.Dense)):
        if isinstance(wrapper.layer.kernel, tf.Variable):
            return "set_quantize_weights must put the rounded kernel back where the layer reads it (layer.kernel)."
        if not isinstance(wrapper.layer.activation, QuantizeAwareActivation):
            return ("set_quantize_activations must put the quantized activation back where the layer calls it "
                    "(layer.activation).")
    outputs.append((mine(x, training=False).numpy(), reference(x, training=False).numpy()))
    if all(np.allclose(m, r, rtol=1e-5, atol=1e-6) for m, r in outputs):
        return None
    return "the model computes other outputs than with TFMOT's config: compare your methods with LowBitWeights."


@exercise_check("07.dense_config", "a QuantizeConfig for Dense: 4-bit per-tensor kernel, 8-bit activation")
def check_dense_config(config: Any, *, model: Any, x: np.ndarray) -> str | None:
    """The learner's config against the one TFMOT's ``DefaultNBitQuantizeScheme(4, 8)`` gives a Dense layer:
    the quantizers first (TFMOT's own ``__eq__``), then both applied to ``model``'s Dense layers and run."""
    from qlab.zoo.keras2 import keras, tfmot

    instance = _config_instance(config)
    registry = tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeScheme(
        num_bits_weight=WEIGHT_BITS, num_bits_activation=ACTIVATION_BITS).get_quantize_registry()
    dense = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    layer = keras.layers.Dense.from_config(dense.get_config())  # a fresh copy: the methods may change it
    layer.build(dense.input_shape)
    reference = registry.get_quantize_config(layer)
    problem = (_weights_problem(instance.get_weights_and_quantizers(layer),
                                reference.get_weights_and_quantizers(layer), layer)
               or _activations_problem(instance.get_activations_and_quantizers(layer),
                                       instance.get_output_quantizers(layer),
                                       reference.get_activations_and_quantizers(layer), layer))
    if problem:
        return problem
    scope = {type(instance).__name__: type(instance), type(reference).__name__: type(reference)}
    with tfmot.quantization.keras.quantize_scope(scope):  # quantize_apply rebuilds each config from get_config
        mine = _dense_only(model, lambda _: instance)
        theirs = _dense_only(model, registry.get_quantize_config)
    return _applied_problem(mine, theirs, np.asarray(x[:64], np.float32)) or CORRECT
