"""Magnitude pruning with TFMOT, and pruning-preserving QAT: the first stage of Deep Compression.

- :func:`prune_model`: ``tfmot.sparsity.keras.prune_low_magnitude`` with a ``PolynomialDecay``
  schedule (the share of zeros grows from ``initial_sparsity`` to ``target_sparsity``
  between ``begin_step`` and ``end_step``), or TFMOT's structured 2:4 sparsity (``m_by_n``).
- :func:`fine_tune_pruned`: fine-tunes with ``UpdatePruningStep``, then ``strip_pruning``,
  and measures the sparsity it reached.
- :func:`quantize_preserving_sparsity`: pruning-preserving QAT (PQAT) through
  ``quantize_apply`` with ``Default8BitPrunePreserveQuantizeScheme``.
- :func:`sparsity_table` (Keras) and :func:`tflite_sparsity` (a ``.tflite``) count the zeros;
  :func:`zeros_kept_in_file` checks that the pruned zeros survived conversion.

Which weights TFMOT prunes (its ``PruneRegistry``): the ``kernel`` of Conv1D/2D/3D,
Conv2DTranspose, Dense and LocallyConnected, the ``pointwise_kernel`` of SeparableConv, the
``embeddings`` of Embedding. DepthwiseConv2D maps to no weight: it is wrapped, never pruned.
Biases and batch-norm parameters are never pruned.

A pruned model stores its zeros densely: its ``.tflite`` is as big as the unpruned one, and
only a compressor (:func:`qlab.numerics.compression.gzip_size`) turns the zeros into bytes saved.

Taught in ``09_deep_compression``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from qlab.zoo.keras2 import keras, require_keras2_model, tfmot
from qlab.zoo.models import copy_model
from qlab.conversion.tflite_file import file_weights
from qlab.numerics.sparsity import check_m_by_n, check_sparsity, tflite_layout, zero_fraction, zeros_kept
from qlab.numerics.validate import check_int

if TYPE_CHECKING:
    import pandas as pd

sparsity_keras = tfmot.sparsity.keras
#: Adam's default, as TFMOT's pruning guide fine-tunes; cosine-decayed by :func:`qlab.qat.training.fine_tune`.
PRUNE_LEARNING_RATE = 1e-3
#: Weight attributes that may hold a layer's main weights (the ones pruning and sparsity tables look at).
_WEIGHT_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")
_MAX_STEP = 10**9


def _wrapper_class() -> type:
    """TFMOT's ``PruneLowMagnitude`` wrapper class (not in its public API)."""
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    return PruneLowMagnitude


def tfmot_prunable_weights(layer: Any) -> list[str] | None:
    """The weight attributes TFMOT's ``PruneRegistry`` prunes in ``layer``; None if it cannot wrap it.

    ``[]`` for a layer TFMOT wraps but leaves dense: DepthwiseConv2D, pooling, batch norm.
    A custom layer with ``get_prunable_weights`` answers for itself. Taught in ``09_deep_compression``.
    """
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    layer = getattr(layer, "layer", layer)  # a PruneLowMagnitude or QuantizeWrapper: the layer inside
    if hasattr(layer, "get_prunable_weights") and not prune_registry.PruneRegistry.supports(layer):
        return [w.name.split("/")[-1].split(":")[0] for w in layer.get_prunable_weights()]
    if not prune_registry.PruneRegistry.supports(layer):
        return None
    # the registry is TFMOT's table of built-in layers; it has no public accessor
    return list(prune_registry.PruneRegistry._LAYERS_WEIGHTS_MAP.get(type(layer), []))


def pruning_schedule(target_sparsity: float, begin_step: int, end_step: int, frequency: int = 100,
                     initial_sparsity: float = 0.0) -> Any:
    """A validated ``tfmot.sparsity.keras.PolynomialDecay`` from ``initial_sparsity`` to ``target_sparsity``.

    TFMOT re-ranks the weights every ``frequency`` steps from ``begin_step`` on, and only
    up to ``end_step``; so ``end_step - begin_step`` must be a multiple of ``frequency``,
    or the last update comes before ``end_step`` and stops short of ``target_sparsity``.
    :func:`pruning_end_step` gives the right ``end_step`` for a fine-tune.
    """
    target_sparsity = check_sparsity(target_sparsity, "target_sparsity")
    initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity", allow_zero=True)
    if initial_sparsity >= target_sparsity:
        raise ValueError(f"initial_sparsity must be below target_sparsity ({target_sparsity}), "
                         f"got {initial_sparsity}")
    begin_step = check_int(begin_step, "begin_step", 0, _MAX_STEP)
    frequency = check_int(frequency, "frequency", 1, _MAX_STEP)
    end_step = check_int(end_step, "end_step", begin_step + 1, _MAX_STEP)
    if (end_step - begin_step) % frequency:
        below = begin_step + (end_step - begin_step) // frequency * frequency
        raise ValueError(
            f"end_step - begin_step must be a multiple of frequency ({frequency}) so that the last "
            f"update reaches target_sparsity; got end_step={end_step}, begin_step={begin_step}. "
            f"Use end_step={below}{f' or {below + frequency}' if below > begin_step else ''} "
            f"(qlab.compression.prune.pruning_end_step(steps, frequency, begin_step) picks one).")
    return sparsity_keras.PolynomialDecay(initial_sparsity=initial_sparsity, final_sparsity=target_sparsity,
                                          begin_step=begin_step, end_step=end_step, frequency=frequency)


def pruning_end_step(steps: int, frequency: int = 100, begin_step: int = 0) -> int:
    """The last step at which TFMOT can update the masks in a fine-tune of ``steps`` steps.

    ``UpdatePruningStep`` counts training steps from 1, so step ``steps`` is the last; the
    result is the latest ``begin_step + k * frequency`` not after it (k >= 1). Taught in
    ``09_deep_compression``.
    """
    steps = check_int(steps, "steps", 1, _MAX_STEP)
    frequency = check_int(frequency, "frequency", 1, _MAX_STEP)
    begin_step = check_int(begin_step, "begin_step", 0, _MAX_STEP)
    turns = (steps - begin_step) // frequency
    if turns < 1:
        raise ValueError(f"a fine-tune of {steps} steps has no pruning update after begin_step="
                         f"{begin_step} with frequency={frequency}: lower frequency or train longer")
    return begin_step + turns * frequency


def wrap_supported_layers(model: Any, wrap: Callable[[Any], Any], supported: Callable[[Any], bool],
                          what: str) -> Any:
    """``wrap`` applied to every layer of ``model`` that ``supported`` accepts; weightless others kept as they are.

    TFMOT's whole-model ``prune_low_magnitude`` refuses a model with any layer its registry does
    not know, even one without weights (a Keras ``Rescaling``, say). Such a layer has nothing to
    prune, so it is copied unwrapped; a layer *with* weights that TFMOT does not know is refused
    by name. ``what`` names the TFMOT call in the error.
    """
    unknown = [layer for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer) and not supported(layer)]
    weighted = [f"{layer.name!r} ({type(layer).__name__})" for layer in unknown if layer.weights]
    if weighted:
        raise ValueError(
            f"TFMOT's {what} cannot wrap layer(s) {', '.join(weighted)} of model {model.name!r}: its "
            f"registry does not know them. Give such a layer a get_prunable_weights() method "
            f"(tfmot.sparsity.keras.PrunableLayer), or wrap only the other layers inside clone_model.")
    if not unknown:
        return wrap(model)
    skip = {id(layer) for layer in unknown}

    def clone(layer: Any) -> Any:
        if id(layer) in skip or isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        return wrap(layer)

    return keras.models.clone_model(model, clone_function=clone)


def prune_model(model: Any, target_sparsity: float | None, begin_step: int = 0, end_step: int | None = None,
                frequency: int = 100, initial_sparsity: float = 0.0,
                m_by_n: tuple[int, int] | None = None) -> Any:
    """A copy of ``model`` wrapped by ``prune_low_magnitude``, ready to fine-tune.

    Taught in ``09_deep_compression``. Fine-tune it with :func:`fine_tune_pruned`.

    Args:
        model: a trained float Keras 2 model (it is copied, not changed).
        target_sparsity: the share of each prunable kernel set to zero at ``end_step``
            (e.g. 0.75); None with ``m_by_n``.
        begin_step, end_step, frequency, initial_sparsity: the ``PolynomialDecay``
            schedule (:func:`pruning_schedule`); ``end_step`` must be reached by the fine-tune.
        m_by_n: ``(m, n)``, e.g. ``(2, 4)``: TFMOT's structured sparsity, m zeros in every n
            consecutive input-channel weights. TFMOT then ignores the schedule and sets the
            mask once, at the first training step; a layer with fewer than n input channels
            (a first conv on a grey image) keeps all its weights.
    """
    model = require_keras2_model(model)
    if m_by_n is not None:
        m, n = check_m_by_n(m_by_n)
        if target_sparsity is not None:
            raise ValueError(f"with m_by_n={m_by_n!r} the sparsity is m/n = {m / n:g}, set at the first "
                             f"training step: pass target_sparsity=None, got {target_sparsity!r}")
        params = {"sparsity_m_by_n": (m, n)}
    elif target_sparsity is None or end_step is None:
        raise ValueError("target_sparsity and end_step are needed for magnitude pruning, got "
                         f"target_sparsity={target_sparsity!r}, end_step={end_step!r} (or pass m_by_n)")
    else:
        params = {"pruning_schedule": pruning_schedule(target_sparsity, begin_step, end_step, frequency,
                                                       initial_sparsity)}
    return wrap_supported_layers(copy_model(model), lambda x: sparsity_keras.prune_low_magnitude(x, **params),
                                 lambda layer: tfmot_prunable_weights(layer) is not None, "prune_low_magnitude")


def _last_step_needed(pruned_model: Any) -> int:
    """The latest ``end_step`` of the model's pruning schedules (1 for m:n, updated at step 1)."""
    needed = 0
    for layer in pruned_model.layers:
        if isinstance(layer, _wrapper_class()):
            if layer.sparsity_m_by_n:
                needed = max(needed, 1)
            else:
                needed = max(needed, int(getattr(layer.pruning_schedule, "end_step", 0)))
    if not needed:
        raise ValueError("pruned_model has no prune_low_magnitude wrapper: make it with "
                         "qlab.compression.prune.prune_model")
    return needed


def fine_tune_pruned(pruned_model: Any, x: Any, y: Any, epochs: int = 2, batch_size: int = 128,
                     learning_rate: float = PRUNE_LEARNING_RATE, seed: int = 0, verbose: int | str = "auto",
                     description: str = "pruning fine-tune") -> tuple[Any, dict[str, Any]]:
    """Fine-tune a :func:`prune_model` model with ``UpdatePruningStep``, then ``strip_pruning``.

    Taught in ``09_deep_compression``.

    Returns:
        ``(stripped, info)``: the plain Keras model with the zeros in its kernels, and
        ``fine_tune_seconds``, ``steps``, ``end_step`` and the measured ``sparsity`` of
        each kernel TFMOT pruned (``{layer name: share of zeros}``).

    Raises:
        ValueError: the fine-tune is shorter than the schedule's ``end_step``, so the
            model would stop short of its target sparsity.
    """
    from qlab.qat.training import fine_tune

    epochs = check_int(epochs, "epochs", 1, 10_000)
    batch_size = check_int(batch_size, "batch_size", 1, 1 << 20)
    steps = epochs * math.ceil(len(x) / batch_size)
    end_step = _last_step_needed(pruned_model)
    if end_step > steps:
        raise ValueError(
            f"the fine-tune runs {steps} steps ({epochs} epoch(s) of {len(x)} images in batches of "
            f"{batch_size}) but the pruning schedule ends at end_step={end_step}: the model would not "
            f"reach its target sparsity. Prune with end_step <= {steps} (qlab.compression.prune.pruning_end_step"
            f"({steps}, frequency, begin_step) picks the last update step), or train longer.")
    info = fine_tune(pruned_model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                     seed=seed, verbose=verbose, callbacks=[sparsity_keras.UpdatePruningStep()],
                     description=description)
    # strip_pruning reuses the wrapped layers, each then part of two graphs; a copy has one graph,
    # so tools that read a layer's output (qlab.qat.ranges.start_from_data) work on it
    stripped = copy_model(sparsity_keras.strip_pruning(pruned_model))
    pruned = {row["layer"]: row["sparsity"] for row in _sparsity_rows(stripped) if row["prunable"]}
    return stripped, {**info, "end_step": end_step, "sparsity": pruned}


def _sparsity_rows(model: Any) -> list[dict[str, Any]]:
    rows = []
    for wrapper in model.layers:
        layer = getattr(wrapper, "layer", wrapper)  # PruneLowMagnitude / QuantizeWrapper: the layer inside
        prunable = tfmot_prunable_weights(layer) or []
        for name in _WEIGHT_NAMES:
            weight = getattr(layer, name, None)
            if weight is None:
                continue
            values = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
            rows.append({"layer": layer.name, "type": type(layer).__name__, "weight": name,
                         "shape": tuple(values.shape), "size": int(values.size),
                         "zeros": int(np.count_nonzero(values == 0)), "sparsity": zero_fraction(values),
                         "prunable": name in prunable})
    return rows


def sparsity_table(model: Any) -> "pd.DataFrame":
    """The zeros of every weight layer of a Keras model: one row per kernel.

    Columns: ``layer``, ``type``, ``weight`` (kernel, depthwise_kernel, ...), ``shape``,
    ``size``, ``zeros``, ``sparsity`` (zeros / size) and ``prunable`` (whether TFMOT's
    registry prunes this weight: False for DepthwiseConv2D). Works on a float, a pruned
    (wrapped) or a stripped model. A PQAT model trains its float kernels freely and masks
    them only inside the weight quantizer, so count its zeros in the converted file
    (:func:`tflite_sparsity`). Taught in ``09_deep_compression``.
    """
    import pandas as pd

    return pd.DataFrame(_sparsity_rows(require_keras2_model(model)),
                        columns=["layer", "type", "weight", "shape", "size", "zeros", "sparsity", "prunable"])


def tflite_sparsity(model_bytes: bytes) -> "pd.DataFrame":
    """The zeros of the weight tensor of every conv/dense op, read from a ``.tflite`` file.

    Columns: ``op``, ``tensor``, ``dtype``, ``shape``, ``size``, ``zeros``, ``sparsity`` and
    ``bytes`` (size x bytes per value). ``bytes`` does not depend on ``zeros``: the file
    stores every zero, in float32 4 bytes and in int8 1 byte, so a pruned model's file is as
    big as the unpruned one until it is compressed. Taught in ``09_deep_compression``.
    """
    import pandas as pd

    rows = [{"op": op, "tensor": detail["name"], "dtype": values.dtype.name,
             "shape": tuple(int(s) for s in values.shape), "size": int(values.size),
             "zeros": int(np.count_nonzero(values == 0)), "sparsity": zero_fraction(values),
             "bytes": int(values.nbytes)}
            for detail, op, values in file_weights(model_bytes)]
    return pd.DataFrame(rows, columns=["op", "tensor", "dtype", "shape", "size", "zeros", "sparsity",
                                       "bytes"])


def zeros_kept_in_file(pruned_model: Any, model_bytes: bytes) -> "pd.DataFrame":
    """For each pruned Conv2D/Dense kernel: are its zeros still zero in the converted file?

    Each kernel of ``pruned_model`` (stripped, before conversion) is matched, in model order,
    with the next file weight of the same shape in TFLite's layout (:func:`tflite_layout`);
    batch-norm folding and per-channel scales keep a zero at zero. Columns: ``layer``,
    ``zeros`` (in the Keras kernel), ``zeros in file``, ``kept`` (share of the kernel's zeros
    still zero in the file). Taught in ``09_deep_compression``.
    """
    import pandas as pd

    stored = [values for _, _, values in file_weights(model_bytes)]
    rows = []
    for row in _sparsity_rows(require_keras2_model(pruned_model, "pruned_model")):
        if not row["prunable"] or row["type"] not in ("Conv2D", "Dense") or not row["zeros"]:
            continue
        kernel = tflite_layout(getattr(pruned_model.get_layer(row["layer"]), row["weight"]).numpy())
        match = next((i for i, values in enumerate(stored) if values.shape == kernel.shape), None)
        if match is None:
            raise ValueError(f"no weight tensor of shape {kernel.shape} (layer {row['layer']!r} in TFLite's "
                             "layout) in model_bytes: is it the file converted from pruned_model?")
        values = stored.pop(match)
        rows.append({"layer": row["layer"], "zeros": row["zeros"],
                     "zeros in file": int(np.count_nonzero(values == 0)), "kept": zeros_kept(kernel, values)})
    return pd.DataFrame(rows, columns=["layer", "zeros", "zeros in file", "kept"])


def quantize_preserving_sparsity(stripped_pruned_model: Any) -> Any:
    """Pruning-preserving QAT: ``quantize_apply`` with ``Default8BitPrunePreserveQuantizeScheme``.

    TFMOT's default 8-bit QAT, except that the weight quantizer of each Conv2D and Dense
    layer multiplies the weights by a mask of their non-zeros (taken when this is called),
    so fine-tuning cannot bring a pruned weight back. DepthwiseConv2D kernels get no mask
    (TFMOT never prunes them). Fine-tune the result with :func:`qlab.qat.training.fine_tune`,
    convert it with :func:`qlab.conversion.converter.convert_qat`, and count the zeros that
    survived with :func:`zeros_kept_in_file`. Taught in ``09_deep_compression``.

    Args:
        stripped_pruned_model: the model :func:`fine_tune_pruned` returns (pruning wrappers
            stripped: ``strip_pruning``).
    """
    model = require_keras2_model(stripped_pruned_model, "stripped_pruned_model")
    if any(isinstance(layer, _wrapper_class()) for layer in model.layers):
        raise ValueError("stripped_pruned_model still has pruning wrappers: call "
                         "tfmot.sparsity.keras.strip_pruning(model) first (fine_tune_pruned does)")
    from qlab.qat.quantize import quantize_with_scheme

    # the same class as tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme, the
    # name TFMOT's collaborative-optimization guides use and its source marks as deprecated
    return quantize_with_scheme(model, tfmot.quantization.keras.collab_opts.Default8BitPrunePreserveQuantizeScheme())
