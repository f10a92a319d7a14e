"""Quantization-aware fine-tuning: TFMOT's quantized model trained a little more, cached for the zoo.

- :func:`fine_tune`: a small, cosine-decayed learning rate for one epoch, the float
  weights adapting to the rounding;
- :func:`load_or_fine_tune`: a zoo model's QAT variant (:data:`QAT_BUILDERS`), its
  activation ranges started from data, fine-tuned and cached like the float models;
- :func:`n_bit_qat_from_data`: TFMOT's n-bit scheme with every range set from data, ready to
  fine-tune; :func:`changed_codes` counts the weights whose integer code fine-tuning moved;
- :func:`quantize_under` and :func:`qat_run`: the same steps under a ``tf.distribute`` strategy,
  scored through the converted file (:mod:`qlab.zoo.distribute` explains what replicas change).

Taught in ``06_quantization_aware_training``; used again in ``07_custom_quantization``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from qlab.qat.quantize import quantize_4bit_weights, quantize_partial, quantize_whole_model
from qlab.ptq.weight_bits import kernel_codes
from qlab.qat.ranges import start_from_data
from qlab.zoo.distribute import check_built_under, check_strategy, replicas

#: The learning rate of every QAT fine-tune: a fraction of the float training's.
QAT_LEARNING_RATE = 1e-4


#: qat variant -> function making the quantization-aware model from a float model.
QAT_BUILDERS: dict[str, Callable[[Any], Any]] = {
    "qat_int8": quantize_whole_model,
    "qat_partial": quantize_partial,
    "qat_4bit": quantize_4bit_weights,
}


#: The scheme of qat_4bit, in its cache key: a fine-tune cached before qat_4bit used it
#: (LowBitWeightsQuantizeConfig on the conv/dense layers only) is never loaded for it.
QAT_4BIT_SCHEME = "default_n_bit(4, 8)"


#: Fine-tuning budget per size: (epochs, train samples or None for all).
QAT_BUDGETS = {"full": (1, 30000), "smoke": (1, 256)}


#: The whole-model variants start fine-tuning from the data's activation ranges (min/max of
#: the float activations on this many training images), not from TFMOT's [-6, 6]: a budget of
#: a few hundred steps leaves most of that start in place (06_quantization_aware_training).
CALIBRATED_START = {"qat_int8": 1000, "qat_4bit": 1000}


def fine_tune(qat_model: Any, x: Any, y: Any, epochs: int = 1, batch_size: int = 128,
              learning_rate: float = QAT_LEARNING_RATE, seed: int = 0,
              verbose: int | str = "auto", callbacks: Sequence[Any] = (),
              description: str = "QAT fine-tuning", strategy: Any = None) -> dict[str, Any]:
    """Fine-tune a quantization-aware model in place with a small, cosine-decayed learning rate.

    The float weights are already trained; QAT only has to adapt them to the
    rounding, so a fraction of the original learning rate and an epoch suffice.
    ``callbacks`` are Keras callbacks for ``fit`` (e.g.
    :class:`qlab.qat.ranges.RangeTrajectory`); a learning rate of 0 keeps the
    weights, so only the activation ranges move. ``description`` names the progress bar
    (:mod:`qlab.zoo.progress`; ``QLAB_PROGRESS=0`` hides it). ``strategy``: a
    ``tf.distribute`` strategy the model was quantized under
    (:func:`quantize_under`); ``batch_size`` is then the global batch.
    Taught in ``06_quantization_aware_training``; used again in ``07_custom_quantization``.
    """
    import time

    from qlab.zoo.models import compile_for_training
    from qlab.zoo.progress import fit_progress
    from qlab.zoo.seed import set_seed

    steps = epochs * math.ceil(len(x) / batch_size)
    compile_for_training(qat_model, learning_rate, decay_steps=steps, strategy=strategy)
    set_seed(seed)
    start = time.perf_counter()
    qat_model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=verbose,
                  callbacks=[*callbacks, *fit_progress(description)])
    return {"fine_tune_seconds": round(time.perf_counter() - start, 1), "steps": steps}


def qat_config(name: str, variant: str, size: str = "full", seed: int = 0) -> dict[str, Any]:
    """Everything that determines a zoo QAT fine-tune's weights (its cache key)."""
    from qlab.zoo.models import training_config

    if variant not in QAT_BUILDERS:
        raise ValueError(f"unknown QAT variant {variant!r}; valid: {', '.join(QAT_BUILDERS)}")
    epochs, samples = QAT_BUDGETS[size]
    config = {**training_config(name, size, seed), "qat": variant, "qat_epochs": epochs,
              "qat_samples": samples, "qat_learning_rate": QAT_LEARNING_RATE}
    if variant == "qat_4bit":  # only here: the other variants' cached fine-tunes stay valid
        config["qat_scheme"] = QAT_4BIT_SCHEME
    if variant in CALIBRATED_START:
        config["qat_start"] = f"minmax ranges of {CALIBRATED_START[variant]} training images"
    return config


def load_or_fine_tune(name: str, variant: str, size: str = "full", seed: int = 0,
                      verbose: int | str = "auto") -> Any:
    """The fine-tuned quantization-aware model ``variant`` of zoo model ``name``, cached.

    The float model comes from :func:`qlab.zoo.models.load_or_train`; the QAT model is
    cached under ``artifacts/models/`` like it (weights + verified manifest). The
    whole-model variants (:data:`CALIBRATED_START`) start from the data's activation
    ranges (:func:`qlab.qat.ranges.start_from_data`), ``qat_partial`` from TFMOT's.
    Taught in ``06_quantization_aware_training``; used again in ``07_custom_quantization``.
    """
    from qlab.zoo.cache import load_or_build
    from qlab.zoo.models import compile_for_training, load_or_train, mnist_for

    config = qat_config(name, variant, size, seed)
    epochs, samples = QAT_BUDGETS[size]
    made_from = []  # the float model build() quantized: its layer names are the QAT model's

    def build() -> Any:
        made_from.append(load_or_train(name, size, seed, verbose))
        return QAT_BUILDERS[variant](made_from[-1])

    def train(qat_model: Any) -> dict[str, Any]:
        (x, y), _ = mnist_for(name, size)
        if variant in CALIBRATED_START:
            start_from_data(qat_model, made_from[-1], x[:CALIBRATED_START[variant]])
        return fine_tune(qat_model, x[:samples], y[:samples], epochs, seed=seed, verbose=verbose,
                         description=f"QAT fine-tuning {name} {variant} ({size})")

    model, _ = load_or_build(f"{name}-{size}-s{seed}-{variant}", config, build, train)
    compile_for_training(model, QAT_LEARNING_RATE)
    return model


@dataclass
class QATRun:
    """One QAT fine-tune of :func:`qat_run`: where it ran, how long it took, what the file scores."""

    replicas: int
    tflite_accuracy: float
    fine_tune_seconds: float
    weights: list[np.ndarray] = field(repr=False)
    tflite: bytes = field(repr=False)

    def __repr__(self) -> str:
        return (f"QATRun({self.replicas} replica{'s' if self.replicas != 1 else ''}, int8 file "
                f"accuracy {self.tflite_accuracy:.4f}, fine-tune {self.fine_tune_seconds:.1f} s)")


def qat_run(float_model: Any, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
            strategy: Any = None, variant: str = "qat_int8", batch_size: int = 128,
            calibration_samples: int = 1000, seed: int = 0) -> QATRun:
    """Quantize ``float_model`` under ``strategy``, fine-tune it one epoch, convert it, score the file.

    The steps of :func:`qlab.qat.training.load_or_fine_tune` (the data's activation ranges as
    the start, then :func:`qlab.qat.training.fine_tune`) with ``batch_size`` as the global
    batch, so a run with a strategy and one without see the same batches.
    """
    from qlab.conversion.converter import convert_qat
    from qlab.conversion.tflite import evaluate_tflite

    if variant not in QAT_BUILDERS:
        raise ValueError(f"unknown QAT variant {variant!r}; valid: {', '.join(QAT_BUILDERS)}")
    qat_model = quantize_under(strategy, QAT_BUILDERS[variant], float_model)
    start_from_data(qat_model, float_model, x[:calibration_samples])
    info = fine_tune(qat_model, x, y, 1, batch_size=batch_size, seed=seed, verbose=0,
                     description=f"QAT fine-tuning on {replicas(strategy)} replica(s)", strategy=strategy)
    tflite = convert_qat(qat_model)
    return QATRun(replicas(strategy), evaluate_tflite(tflite, x_test, y_test),
                  info["fine_tune_seconds"], [np.asarray(w) for w in qat_model.get_weights()], tflite)


def max_weight_difference(a: QATRun, b: QATRun) -> float:
    """The largest absolute difference between two runs' weights (ranges included); 0.0 if identical."""
    if len(a.weights) != len(b.weights):
        raise ValueError(f"the runs have {len(a.weights)} and {len(b.weights)} weights: not the same model")
    return max(float(np.max(np.abs(u.astype(np.float64) - v.astype(np.float64)), initial=0.0))
               for u, v in zip(a.weights, b.weights))


def _weight_quantizers(qat_model: Any) -> list[tuple[str, str, Any, int, int | None]]:
    """(float layer name, weight name, QAT kernel variable, num_bits, channels or None)."""
    found = []
    for layer in qat_model.layers:
        # QuantizeWrapperV2 keeps (weight, quantizer, variables); no public accessor
        for weight, quantizer, variables in getattr(layer, "_weight_vars", []):
            config = quantizer.get_config()
            size = int(np.prod(variables["min_var"].shape)) if "min_var" in variables else 0
            channels = size if config.get("per_axis") and size > 1 else None
            found.append((layer.layer.name, weight.name.split("/")[-1][:-2], weight,
                          int(config["num_bits"]), channels))
    return found


def changed_codes(qat_model: Any, before: Any, after: Any | None = None) -> tuple[int, int]:
    """How many kernel weights changed their integer code, and of how many.

    The codes come from each of ``qat_model``'s weight quantizers (its bit width and its
    per-tensor or per-channel scale, recomputed from each kernel as TFMOT does), applied
    to the kernel in ``before`` (a float model with the same layer names) and in
    ``after`` (a float model, or None for ``qat_model``'s own trained kernels).
    Taught in ``06_quantization_aware_training``.
    """
    changed = total = 0
    for layer_name, weight_name, variable, num_bits, channels in _weight_quantizers(qat_model):
        old = _kernel(before, layer_name, weight_name)
        new = variable.numpy() if after is None else _kernel(after, layer_name, weight_name)
        a, b = kernel_codes(old, num_bits, channels), kernel_codes(new, num_bits, channels)
        changed += int(np.sum(a != b))
        total += int(a.size)
    return changed, total


def _kernel(model: Any, layer_name: str, weight_name: str) -> np.ndarray:
    layer = model.get_layer(layer_name)
    for variable in layer.weights:
        if variable.name.split("/")[-1][:-2] == weight_name:
            return variable.numpy()
    raise ValueError(f"layer {layer_name!r} of {model.name!r} has no weight {weight_name!r}")


def n_bit_qat_from_data(model: Any, x_calib: np.ndarray, weight_bits: int, activation_bits: int,
                        method: str, seed: int = 0) -> Any:
    """TFMOT's n-bit QAT model of ``model`` with every range set from data, ready to fine-tune.

    :func:`qlab.qat.quantize.quantize_whole_model_n_bit`, then
    :func:`qlab.qat.ranges.start_from_data` (``method`` = ``minmax`` / ``mse`` activation
    ranges on ``x_calib`` instead of TFMOT's [-6, 6] start). Taught in ``06_quantization_aware_training``.
    """
    from qlab.qat.quantize import quantize_whole_model_n_bit
    from qlab.qat.ranges import start_from_data

    qat_model = quantize_whole_model_n_bit(model, weight_bits, activation_bits)
    return start_from_data(qat_model, model, x_calib, method, activation_bits, seed)


def quantize_under(strategy: Any, builder: Callable[[Any], Any], float_model: Any) -> Any:
    """``builder(float_model)`` (e.g. ``QAT_BUILDERS["qat_int8"]``) with its variables in ``strategy``.

    ``quantize_model`` clones the model and adds the quantizers' range variables, so
    it must run in the scope. The float model is first copied into the scope (same
    weights), because a builder may keep some of its layers as they are. ``float_model``
    itself is left unchanged. With ``strategy=None`` this is just ``builder(float_model)``.
    """
    if check_strategy(strategy) is None:
        return builder(float_model)
    from qlab.zoo.models import copy_model

    with strategy.scope():
        return check_built_under(strategy, builder(copy_model(float_model)))
