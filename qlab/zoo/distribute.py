"""Several GPUs or a TPU: the same training and QAT code under a ``tf.distribute`` strategy.

:func:`qlab.zoo.models.train_model`, :func:`qlab.zoo.models.compile_for_training` and
:func:`qlab.qat.training.fine_tune` take ``strategy=None``; give them a strategy
(``tf.distribute.MirroredStrategy()`` for the GPUs of one machine,
``tf.distribute.TPUStrategy(resolver)`` for a TPU) and they compile and train under
it. Everything that creates variables must run inside ``strategy.scope()``: the
model's weights, the optimizer's slots and TFMOT's quantizer variables (``*_min``,
``*_max``, ``optimizer_step``). :func:`qlab.zoo.models.build_under` and
:func:`qlab.qat.training.quantize_under` do the
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
from typing import Any, ContextManager


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
    from qlab.zoo.keras2 import tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as exc:
        have = len(tf.config.list_logical_devices("CPU"))
        raise RuntimeError(
            f"logical_cpus({n}) came too late: TensorFlow has already initialised its devices "
            f"({have} logical CPU{'s' if have != 1 else ''}). Restart the kernel or process and "
            f"call qlab.zoo.distribute.logical_cpus({n}) before building any model or tensor."
        ) from exc
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def cpu_mirrored_strategy(n: int = 2) -> Any:
    """A ``tf.distribute.MirroredStrategy`` over ``n`` logical CPU devices (see :func:`logical_cpus`).

    For trying distributed training on a laptop: the replicas share the same cores,
    so it is not faster, but it runs exactly the code a machine with ``n`` GPUs runs.
    """
    from qlab.zoo.keras2 import tf

    return tf.distribute.MirroredStrategy(logical_cpus(n))


def check_strategy(strategy: Any, argument: str = "strategy") -> Any:
    """Return ``strategy`` if it is None or a ``tf.distribute.Strategy``, else raise a TypeError."""
    if strategy is None:
        return None
    from qlab.zoo.keras2 import tf

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
            "qlab.zoo.models.build_under(strategy, ...) or quantize it with "
            "qlab.qat.training.quantize_under(strategy, ...).")
    return model
