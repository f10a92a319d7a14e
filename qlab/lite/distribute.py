"""Several GPUs or a TPU: the same training and QAT code under a ``tf.distribute`` strategy.

:func:`qlab.lite.models.train_model`, :func:`qlab.lite.models.compile_for_training` and
:func:`qlab.lite.qat.fine_tune` take ``strategy=None``; give them a strategy
(``tf.distribute.MirroredStrategy()`` for the GPUs of one machine,
``tf.distribute.TPUStrategy(resolver)`` for a TPU) and they compile and train under
it. Everything that creates variables must run inside ``strategy.scope()``: the
model's weights, the optimizer's slots and TFMOT's quantizer variables (``*_min``,
``*_max``, ``optimizer_step``). :func:`build_under` and :func:`quantize_under` do the
first and the last; the training helpers create the optimizer in the scope.

Batch size: under a strategy Keras' ``batch_size`` is the *global* batch, split
evenly across the replicas (128 over 2 replicas is 64 per replica). qlab keeps the
global batch of the single-device run, so the learning rate, the number of steps
and the images per step stay the same and only where the work runs changes.

Without a GPU you can still try it: :func:`logical_cpus` splits the CPU into
logical devices (before TensorFlow starts using its devices), and
:func:`cpu_mirrored_strategy` mirrors over them.

Replicas and QAT: results depend on the number of replicas, reported as
tensorflow/model-optimization#1068 ("Quantization introduces inconsistencies during
distributed training", https://github.com/tensorflow/model-optimization/issues/1068;
closed there, still so with TFMOT 0.8 here). The reason, read in TFMOT's and
TensorFlow's source: TFMOT's activation quantizers (``MovingAverageQuantizer``) take
each replica's batch minimum and maximum, and ``assign_moving_average`` moves the range
towards the *mean* over replicas. The mean of two half-batch maxima is at most the
maximum of the whole batch, so the ranges learned over two replicas come out a little
narrower, and the weights, trained through those ranges, follow. With a learning rate
of 0 (weights fixed) the weights stay identical and only the ranges differ; plain float
training differs from one device only by the order of floating-point sums. Each
setting is repeatable: the same number of replicas gives the same weights. The
measured figures are in ``README.md``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

import numpy as np

from qlab.numerics.validate import check_int

#: Most logical CPU devices :func:`logical_cpus` makes; more only splits the same cores thinner.
MAX_LOGICAL_CPUS = 64


def logical_cpus(n: int) -> list[str]:
    """Split the first physical CPU into ``n`` logical devices; return their names.

    Must run before TensorFlow initialises its devices (before the first model,
    tensor or ``list_logical_devices``): in a notebook, in the first cell after
    ``import qlab``; in a script, before anything else touches TensorFlow. Calling it
    again with the same ``n`` is harmless.

    Raises:
        ValueError: ``n`` is not an integer in [1, 64].
        RuntimeError: TensorFlow already initialised its devices with another split;
            restart the kernel (or process) and call this first.
    """
    n = check_int(n, "n", 1, MAX_LOGICAL_CPUS)
    from qlab.lite.keras2 import tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as exc:
        have = len(tf.config.list_logical_devices("CPU"))
        raise RuntimeError(
            f"logical_cpus({n}) came too late: TensorFlow has already initialised its devices "
            f"({have} logical CPU{'s' if have != 1 else ''}). Restart the kernel or process and "
            f"call qlab.lite.distribute.logical_cpus({n}) before building any model or tensor."
        ) from exc
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def cpu_mirrored_strategy(n: int = 2) -> Any:
    """A ``tf.distribute.MirroredStrategy`` over ``n`` logical CPU devices (see :func:`logical_cpus`).

    For trying distributed training on a laptop: the replicas share the same cores,
    so it is not faster, but it runs exactly the code a machine with ``n`` GPUs runs.
    """
    from qlab.lite.keras2 import tf

    return tf.distribute.MirroredStrategy(logical_cpus(n))


def check_strategy(strategy: Any, argument: str = "strategy") -> Any:
    """Return ``strategy`` if it is None or a ``tf.distribute.Strategy``, else raise a TypeError."""
    if strategy is None:
        return None
    from qlab.lite.keras2 import tf

    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"{argument} must be None or a tf.distribute.Strategy (e.g. "
                        f"tf.distribute.MirroredStrategy()), got {type(strategy).__name__} {strategy!r}")
    return strategy


def strategy_scope(strategy: Any) -> ContextManager[Any]:
    """``strategy.scope()``, or a context that does nothing when ``strategy`` is None."""
    if check_strategy(strategy) is None:
        return contextlib.nullcontext()
    return strategy.scope()


def replicas(strategy: Any) -> int:
    """How many replicas a global batch is split over: 1 without a strategy."""
    return 1 if check_strategy(strategy) is None else int(strategy.num_replicas_in_sync)


def variables_outside(strategy: Any, model: Any) -> list[str]:
    """Names of ``model``'s variables that were not created in ``strategy.scope()``.

    Empty when the model can train under ``strategy`` (and always without one).
    """
    if check_strategy(strategy) is None:
        return []
    return [v.name for v in model.variables if not strategy.extended.variable_created_in_scope(v)]


def check_built_under(strategy: Any, model: Any) -> Any:
    """Return ``model``, or raise a ValueError if some of its variables live outside ``strategy``."""
    outside = variables_outside(strategy, model)
    if outside:
        raise ValueError(
            f"model {model.name!r} was not built in strategy.scope(): {len(outside)} variables "
            f"(e.g. {outside[0]!r}) live outside it. Build it with "
            "qlab.lite.distribute.build_under(strategy, ...) or quantize it with "
            "qlab.lite.distribute.quantize_under(strategy, ...).")
    return model


def build_under(strategy: Any, name: str, seed: int = 0) -> Any:
    """:func:`qlab.lite.models.build_model` inside ``strategy.scope()`` (plain when None)."""
    from qlab.lite.models import build_model

    with strategy_scope(strategy):
        return build_model(name, seed)


def quantize_under(strategy: Any, builder: Callable[[Any], Any], float_model: Any) -> Any:
    """``builder(float_model)`` (e.g. ``QAT_BUILDERS["qat_int8"]``) with its variables in ``strategy``.

    ``quantize_model`` clones the model and adds the quantizers' range variables, so
    it must run in the scope. The float model is first copied into the scope (same
    weights), because a builder may keep some of its layers as they are. ``float_model``
    itself is left unchanged. With ``strategy=None`` this is just ``builder(float_model)``.
    """
    if check_strategy(strategy) is None:
        return builder(float_model)
    from qlab.lite.models import copy_model

    with strategy.scope():
        return check_built_under(strategy, builder(copy_model(float_model)))


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

    The steps of :func:`qlab.lite.qat.load_or_fine_tune` (the data's activation ranges as
    the start, then :func:`qlab.lite.qat.fine_tune`) with ``batch_size`` as the global
    batch, so a run with a strategy and one without see the same batches.
    """
    from qlab.lite.conversion import convert_qat
    from qlab.lite.qat import QAT_BUILDERS, fine_tune
    from qlab.lite.qat_ranges import start_from_data
    from qlab.lite.tflite import evaluate_tflite

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
