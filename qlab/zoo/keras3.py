"""Keras 3 models in qlab: convert them as they are, rebuild them in tf_keras for QAT.

Most models people bring today are Keras 3 models (``import keras``, ``.keras`` files).
The TFLite converter takes them directly (``tf.lite.TFLiteConverter.from_keras_model``),
so every post-training variant works on the model as given
(:func:`qlab.conversion.converter.convert` takes both kinds).
Only TFMOT's quantization-aware training needs Keras 2 (``tf_keras``):
:func:`rebuild_in_tf_keras` makes the same model in tf_keras, layer by layer, from each
layer's class, config and weights (Sequential and functional graphs, nested models too),
and checks that the rebuilt model's outputs match the original's on sample inputs.

A layer with no tf_keras counterpart - a custom layer class, a ``Lambda`` - raises
:class:`Keras3RebuildError`, which names the layer and says what still works.
Taught in ``12_your_own_model``.
"""

from __future__ import annotations

import inspect
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qlab.zoo.keras2 import keras as tf_keras

#: Keras 3 layer classes :func:`rebuild_in_tf_keras` rebuilds (tf_keras has each under the same name).
SUPPORTED_LAYERS = (
    "InputLayer", "Rescaling", "Normalization", "Conv1D", "Conv2D", "DepthwiseConv2D",
    "SeparableConv2D", "Conv2DTranspose", "BatchNormalization", "LayerNormalization", "ReLU",
    "LeakyReLU", "Activation", "Softmax", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dropout", "SpatialDropout2D", "Flatten",
    "Dense", "Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate",
    "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Reshape", "Permute",
)
#: Largest |rebuilt - original| output allowed, relative to max(1, largest |original output|):
#: both run the same TensorFlow kernels in float32, so they differ by rounding only (about 1e-6).
REBUILD_TOLERANCE = 1e-4
#: Sample inputs used to check a rebuild when none are given.
DEFAULT_CHECK_SAMPLES = 16
#: The post-training variants, which go through the converter on a Keras 3 model directly.
_PTQ_NOTE = ("every post-training variant (float32, float16, dynamic_int8, int8_per_channel, "
             "int8_per_tensor, int16x8, the LiteRT Quantizer's aeq_* and Keras 3's keras_*) still works: the "
             "TFLite converter takes the Keras 3 model as it is (qlab.compare_keras_model(model, data), whose "
             "table says 'not applicable' for the rest); only the QAT variants (qat_int8, qat_partial, qat_4bit) "
             "and Deep Compression's need the tf_keras rebuild")
#: Why a Keras 3 built-in layer that :func:`rebuild_in_tf_keras` does not rebuild is left out.
_NOT_REBUILT = {"MultiHeadAttention": "TFMOT cannot quantize attention (it has no QuantizeConfig for "
                                      "MultiHeadAttention, tensorflow/model-optimization#718), so qlab does not "
                                      "rebuild it"}


class Keras3RebuildError(ValueError):
    """A Keras 3 model cannot be rebuilt in tf_keras, or the rebuild does not match it.

    The message names the layer (or the largest output difference) and says what still works;
    ``reason`` is its first part, without that advice (the comparison table's note).
    Taught in ``12_your_own_model``.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def keras3_module() -> Any | None:
    """The ``keras`` package if it is Keras 3 and installed, else None (imports it on first use)."""
    try:
        import keras
    except ImportError:
        return None
    return keras if str(getattr(keras, "__version__", "")).startswith("3.") else None


def require_keras3() -> Any:
    """The Keras 3 ``keras`` package, or a RuntimeError saying how to install it."""
    keras = keras3_module()
    if keras is None:
        raise RuntimeError("this needs Keras 3 (`import keras`, version 3.x), which is not installed; "
                           "`make setup` installs it")
    return keras


def copy_keras3_model(model: Any) -> Any:
    """An uncompiled copy of a Keras 3 model with the same weights (the Keras 3 side of
    :func:`qlab.zoo.models.copy_model`): quantizing, fine-tuning or saving it leaves ``model`` as it is."""
    copy = require_keras3().models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def is_keras3_model(model: Any) -> bool:
    """Whether ``model`` is a Keras 3 model (``import keras``), not a tf_keras one."""
    if isinstance(model, tf_keras.Model) or "keras" not in sys.modules:
        return False
    keras = keras3_module()
    return keras is not None and isinstance(model, keras.Model)


def saved_keras_version(path: str | Path) -> str | None:
    """The Keras version a ``.keras`` archive records in its ``metadata.json``, or None."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        if "metadata.json" not in archive.namelist():
            return None
        return str(json.loads(archive.read("metadata.json")).get("keras_version", "")) or None


def is_keras3_file(path: str | Path) -> bool:
    """Whether ``path`` is a ``.keras`` file saved by Keras 3."""
    return (saved_keras_version(path) or "").startswith("3.")


def load_keras3_model(path: str | Path) -> Any:
    """Load a ``.keras`` file saved by Keras 3 with Keras 3 (``keras.models.load_model``, not compiled).

    A file with a custom layer class that Keras cannot find raises a :class:`Keras3RebuildError`
    saying how to load it yourself. Taught in ``12_your_own_model``.
    """
    keras = keras3_module()
    if keras is None:
        raise ImportError(f"{path} was saved by Keras 3, which is not installed; pip install keras")
    try:
        return keras.models.load_model(path, compile=False)
    except (TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise Keras3RebuildError(
            f"Keras 3 could not load {path}: {first}. If the model has a custom layer, load it "
            f"yourself with keras.models.load_model(path, custom_objects={{...}}) and pass the model; "
            f"{_PTQ_NOTE}") from None


@dataclass
class Keras3Rebuild:
    """A tf_keras copy of a Keras 3 model and how closely its outputs match the original's.

    Returned by :func:`rebuild_in_tf_keras`. Taught in ``12_your_own_model``.
    """

    model: Any
    max_abs_diff: float
    tolerance: float
    samples: int
    layers: int

    def __repr__(self) -> str:
        return (f"Keras3Rebuild({self.model.name!r}: {self.layers} layers rebuilt in tf_keras; "
                f"outputs on {self.samples} samples differ by at most {self.max_abs_diff:.3g} "
                f"(tolerance {self.tolerance:.3g}))")


def rebuild_in_tf_keras(model: Any, sample_inputs: np.ndarray | None = None,
                        tolerance: float = REBUILD_TOLERANCE) -> Keras3Rebuild:
    """The Keras 3 ``model`` rebuilt in tf_keras with the same weights, checked on ``sample_inputs``.

    Args:
        model: a built Keras 3 Sequential or functional model.
        sample_inputs: inputs to compare the two models' outputs on (e.g. the first training
            images); None draws :data:`DEFAULT_CHECK_SAMPLES` uniform [0, 1) images.
        tolerance: the largest output difference allowed, relative to max(1, largest |output|).

    Raises:
        Keras3RebuildError: a layer has no tf_keras counterpart (named, with what still
            works), or the outputs differ by more than the tolerance (the largest difference named).
    """
    if not is_keras3_model(model):
        raise TypeError(f"model must be a Keras 3 model (import keras), got {type(model).__module__}."
                        f"{type(model).__name__}; a tf_keras model needs no rebuild")
    check_layers_supported(model)
    rebuilt = _rebuild_model(model)
    x = _sample_inputs(model, sample_inputs)
    diff = check_rebuild(model, rebuilt, x, tolerance)
    return Keras3Rebuild(rebuilt, diff, tolerance, len(x), len(rebuilt.layers))


def unsupported_layers(model: Any) -> list[tuple[str, str]]:
    """``(layer name, class with module)`` of every layer (nested models searched) tf_keras cannot rebuild."""
    keras = keras3_module()
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model) and type(layer).__name__ in ("Sequential", "Functional"):
            found += unsupported_layers(layer)
        elif not _is_builtin(layer):
            found.append((layer.name, f"{type(layer).__module__}.{type(layer).__name__}"))
    return found


def check_layers_supported(model: Any) -> None:
    """Raise a :class:`Keras3RebuildError` naming the first layer that has no tf_keras counterpart."""
    bad = unsupported_layers(model)
    if not bad:
        return
    name, cls = bad[0]
    why = ("a Lambda layer holds Python code that cannot be rebuilt from its config"
           if cls.endswith(".Lambda") else
           "it is not one of Keras's built-in layers that tf_keras also has" if not cls.startswith("keras.")
           else _NOT_REBUILT.get(cls.rsplit(".", 1)[-1], "tf_keras has no layer of that class that qlab knows "
                                                          "to rebuild"))
    others = f" (and {len(bad) - 1} more: {', '.join(n for n, _ in bad[1:])})" if len(bad) > 1 else ""
    reason = f"layer {name!r} ({cls}) of Keras 3 model {model.name!r} cannot be rebuilt in tf_keras: {why}{others}"
    raise Keras3RebuildError(
        f"{reason}. {_PTQ_NOTE[0].upper()}{_PTQ_NOTE[1:]}. For QAT, replace the layer by "
        f"built-in ones, or build the model in tf_keras yourself with a QuantizeConfig for it "
        f"(notebook 07)", reason)


def _is_builtin(layer: Any) -> bool:
    """A Keras 3 built-in layer class (not a user subclass) that tf_keras has under the same name."""
    cls = type(layer)
    return (cls.__module__.startswith("keras.") and cls.__name__ in SUPPORTED_LAYERS
            and hasattr(tf_keras.layers, cls.__name__))


def tf_keras_config(layer: Any) -> dict[str, Any]:
    """The Keras 3 ``layer``'s config in the arguments its tf_keras class takes.

    Initializers are dropped (the weights are copied afterwards); the dtype policy becomes its
    name; regularizers and constraints are rebuilt by class name; arguments tf_keras does not
    take are dropped (the output check catches one that mattered).
    """
    cls = getattr(tf_keras.layers, type(layer).__name__)
    config = dict(layer.get_config())
    accepted = _init_arguments(cls)
    result = {"name": layer.name, "trainable": layer.trainable}
    for key, value in config.items():
        if key in ("name", "trainable", "dtype") or key.endswith("_initializer"):
            continue
        if key.endswith(("_regularizer", "_constraint")) and isinstance(value, dict):
            kind = "regularizers" if key.endswith("_regularizer") else "constraints"
            value = getattr(tf_keras, kind).get({"class_name": value["class_name"],
                                                 "config": value.get("config", {})})
        if key in accepted:
            result[key] = _tuples(value)
    result["dtype"] = _dtype_name(config.get("dtype"))
    return result


def _init_arguments(cls: type) -> set[str]:
    """The named arguments of ``cls.__init__`` (its ``**kwargs`` go to the base Layer, which refuses others)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _dtype_name(dtype: Any) -> str:
    """``'float32'`` from a Keras 3 dtype policy config (or a plain name)."""
    if isinstance(dtype, dict):
        return str(dtype.get("config", {}).get("name", "float32"))
    return str(dtype or "float32")


def _tuples(value: Any) -> Any:
    """Lists (as JSON gives them) as tuples, nested: tf_keras wants tuples for shapes and padding."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _rebuild_model(model: Any) -> Any:
    """A tf_keras Sequential or functional model with ``model``'s layers and weights."""
    keras = keras3_module()
    if isinstance(model, keras.Sequential):
        rebuilt = tf_keras.Sequential(name=model.name)
        rebuilt.add(tf_keras.Input(shape=tuple(model.input_shape[1:]), name=model.inputs[0].name))
        for layer in model.layers:
            rebuilt.add(_rebuild_layer(layer))
        _copy_weights(model, rebuilt)
        return rebuilt
    tensors: dict[int, Any] = {}
    inputs = [_rebuild_input(t, tensors) for t in model.inputs]
    outputs = [_rebuild_tensor(t, tensors) for t in model.outputs]
    rebuilt = tf_keras.Model(inputs if len(inputs) > 1 else inputs[0],
                             outputs if len(outputs) > 1 else outputs[0], name=model.name)
    _copy_weights(model, rebuilt)
    return rebuilt


def _rebuild_input(tensor: Any, tensors: dict[int, Any]) -> Any:
    layer = tensor._keras_history.operation
    tensors[id(tensor)] = tf_keras.Input(shape=tuple(tensor.shape[1:]), dtype=str(tensor.dtype),
                                         name=layer.name)
    return tensors[id(tensor)]


def _rebuild_tensor(tensor: Any, tensors: dict[int, Any]) -> Any:
    """The tf_keras tensor for Keras 3 graph tensor ``tensor``, rebuilding the layers behind it."""
    from keras import tree

    if id(tensor) in tensors:
        return tensors[id(tensor)]
    layer, node_index, tensor_index = tensor._keras_history
    node = layer._inbound_nodes[node_index]
    swap = lambda value: _rebuild_tensor(value, tensors) if _is_keras_tensor(value) else value  # noqa: E731
    args = tree.map_structure(swap, node.arguments.args)
    kwargs = tree.map_structure(swap, node.arguments.kwargs)
    new_layer = _rebuild_layer(layer)
    outputs = tree.flatten(new_layer(*args, **kwargs))
    for old, new in zip(node.outputs, outputs):
        tensors[id(old)] = new
    return tensors[id(tensor)]


def _is_keras_tensor(value: Any) -> bool:
    return type(value).__name__ == "KerasTensor" and hasattr(value, "_keras_history")


def _rebuild_layer(layer: Any) -> Any:
    """A tf_keras layer like ``layer`` (a nested model: rebuilt whole, weights included)."""
    keras = keras3_module()
    if isinstance(layer, keras.Model):
        return _rebuild_model(layer)
    cls = getattr(tf_keras.layers, type(layer).__name__)
    if type(layer).__name__ == "InputLayer":
        raise Keras3RebuildError(f"layer {layer.name!r}: an InputLayer inside a model is not rebuilt")
    return cls(**tf_keras_config(layer))


def _copy_weights(source: Any, target: Any) -> None:
    """Copy every layer's weights from the Keras 3 ``source`` to the tf_keras ``target``, by name."""
    keras = keras3_module()
    targets = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        if isinstance(layer, keras.Model) or not layer.weights:
            continue  # a nested model copied its own weights when it was rebuilt
        _copy_layer_weights(layer, targets[layer.name])


def _copy_layer_weights(source: Any, target: Any) -> None:
    """Match the weights by short name (``kernel``, ``moving_mean``), else by order when the shapes agree."""
    values = {_short_name(v.name): np.asarray(v.numpy()) for v in source.weights}
    names = [_short_name(v.name) for v in target.weights]
    if set(names) == set(values):
        target.set_weights([values[name] for name in names])
        return
    ordered = [np.asarray(v.numpy()) for v in source.weights]
    if [tuple(v.shape) for v in target.weights] != [v.shape for v in ordered]:
        raise Keras3RebuildError(
            f"layer {source.name!r} ({type(source).__name__}): its Keras 3 weights {sorted(values)} "
            f"do not match the tf_keras layer's {names}; {_PTQ_NOTE}")
    target.set_weights(ordered)


def _short_name(name: str) -> str:
    return name.split("/")[-1].split(":")[0]


def _sample_inputs(model: Any, sample_inputs: np.ndarray | None) -> np.ndarray:
    if sample_inputs is not None:
        x = np.asarray(sample_inputs, dtype=np.float32)
        if len(x) == 0:
            raise ValueError("sample_inputs is empty; give at least one input to check the rebuild on")
        return x
    shape = tuple(32 if d is None else int(d) for d in model.input_shape[1:])
    return np.random.default_rng(0).random((DEFAULT_CHECK_SAMPLES, *shape), dtype=np.float32)


def max_output_difference(original: Any, rebuilt: Any,
                          x: np.ndarray) -> tuple[float, tuple, float]:
    """``(max |rebuilt - original|, where (sample, output index), scale)`` on inputs ``x`` (inference mode).

    ``scale`` is max(1, largest |original output|), what the tolerance is relative to.
    """
    expected = np.asarray(original.predict(x, batch_size=256, verbose=0), dtype=np.float64)
    actual = np.asarray(rebuilt.predict(x, batch_size=256, verbose=0), dtype=np.float64)
    if expected.shape != actual.shape:
        raise Keras3RebuildError(f"the rebuilt model outputs shape {actual.shape}, the Keras 3 model "
                                 f"{expected.shape}; {_PTQ_NOTE}")
    diff = np.abs(actual - expected)
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return float(diff[where]), tuple(int(i) for i in where), max(1.0, float(np.abs(expected).max()))


def check_rebuild(original: Any, rebuilt: Any, x: np.ndarray,
                  tolerance: float = REBUILD_TOLERANCE) -> float:
    """The largest output difference between the two models on ``x``; raise if above the tolerance."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, e.g. {REBUILD_TOLERANCE}; got {tolerance!r}")
    diff, where, scale = max_output_difference(original, rebuilt, x)
    if not diff <= tolerance * scale:
        raise Keras3RebuildError(
            f"the tf_keras rebuild of {original.name!r} does not match it: outputs differ by up to "
            f"{diff:.4g} (sample {where[0]}, output {where[1:]}), more than the tolerance "
            f"{tolerance:g} x {scale:.4g}; a layer's config did not carry over. {_PTQ_NOTE}")
    return diff


def as_tf_keras(model: Any, sample_inputs: np.ndarray | None = None) -> Any:
    """``model`` if it is a tf_keras model, else its checked tf_keras rebuild (:func:`rebuild_in_tf_keras`)."""
    if is_keras3_model(model):
        return rebuild_in_tf_keras(model, sample_inputs).model
    return model


__all__: Sequence[str] = ["Keras3RebuildError", "Keras3Rebuild", "rebuild_in_tf_keras",
                          "is_keras3_model", "is_keras3_file",
                          "load_keras3_model", "as_tf_keras", "check_rebuild"]
