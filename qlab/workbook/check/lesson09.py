"""Checks for ``09_deep_compression``: graded by TFMOT's own pruning schedule and by the converter's int8 file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qlab.workbook.check import CORRECT, exercise_check

#: Pruned zeros still zero in the int8 file, least layer: what "keeps the zeros" means (PQAT keeps all).
ZEROS_KEPT = 0.99
#: The short fine-tune the check gives the learner's QAT model: enough for ordinary QAT to regrow the zeros.
CHECK_IMAGES, CHECK_BATCH = 256, 32


@dataclass(frozen=True)
class ScheduleRun:
    """What a pruning schedule does over a fine-tune: the steps it updates the masks at, and to what sparsity."""

    steps: np.ndarray
    sparsity: np.ndarray

    def __repr__(self) -> str:
        return ", ".join(f"step {s}: {p:.1%}" for s, p in zip(self.steps, self.sparsity))


def schedule_run(schedule: Any, total_steps: int) -> ScheduleRun:
    """Ask TFMOT's schedule at every training step, 1 to ``total_steps`` as ``UpdatePruningStep`` counts them."""
    from qlab.zoo.keras2 import tf

    steps = tf.range(1, total_steps + 1, dtype=tf.int64)
    update, sparsity = schedule(steps)
    update = np.broadcast_to(update.numpy(), steps.shape)
    sparsity = np.broadcast_to(sparsity.numpy(), steps.shape)  # ConstantSparsity answers with one number
    return ScheduleRun(steps.numpy()[update], sparsity[update].astype(np.float64))


def _sparsity_problem(run: ScheduleRun, *, dense_until: int, target: float) -> str | None:
    """What is wrong with the sparsities ``run`` prunes to: none, too many, or too early; or None."""
    if not len(run.steps):
        return "the schedule never updates the masks during the fine-tune: nothing is pruned."
    if np.any(run.sparsity > target + 1e-6):
        return f"it prunes up to {run.sparsity.max():.0%}, beyond the target of {target:.0%}."
    if abs(run.sparsity.max() - (1 - target)) < 1e-6:
        return "final_sparsity is the share of weights set to zero, not the share kept."
    early = (run.steps <= dense_until) & (run.sparsity > 0)
    if np.any(early):
        return (f"step {run.steps[early][0]} already prunes {run.sparsity[early][0]:.1%}: the first epoch "
                f"(steps 1 to {dense_until}) must stay dense (begin_step, initial_sparsity).")
    return None


def _timing_problem(run: ScheduleRun, *, fixed_from: int, target: float, frequency: int) -> str | None:
    """What is wrong with when ``run`` reaches its target and when it stops updating the masks; or None."""
    reached = run.steps[np.isclose(run.sparsity, target, rtol=0, atol=1e-6)]
    if not len(reached):
        return (f"the last mask update, at step {run.steps[-1]}, prunes {run.sparsity[-1]:.2%}, short of "
                f"{target:.0%}: TFMOT updates the masks only every frequency steps counted from begin_step, and "
                "only up to end_step, so the target is reached only if end_step is one of those updates.")
    if reached[0] >= fixed_from:
        return (f"the target is reached only at step {reached[0]}, in the last epoch (from step {fixed_from}): "
                "reach it earlier, so that the last epoch recovers with the mask fixed.")
    if np.any(run.steps >= fixed_from):
        return f"the masks are still re-ranked at step {run.steps[-1]}, in the last epoch: end pruning before it."
    if not np.any((run.sparsity > 0) & (run.sparsity < target)):
        return (f"the sparsity jumps from 0 to {target:.0%} in one update: ramp it up over several updates "
                "(PolynomialDecay from initial_sparsity to final_sparsity).")
    if np.any(np.diff(run.steps) != frequency):
        return f"the masks are re-ranked every {int(np.diff(run.steps)[0])} steps; the plan says every {frequency}."
    return None


@exercise_check("09.schedule", "a PolynomialDecay pruning schedule that reaches its target within a fine-tune")
def check_schedule(schedule: Any, *, steps_per_epoch: int, epochs: int, target: float, frequency: int) -> str | None:
    """The masks TFMOT's schedule object would update, step by step, against the plan the exercise states."""
    from qlab.zoo.keras2 import tfmot

    if not isinstance(schedule, tfmot.sparsity.keras.PruningSchedule):
        return (f"expected a tfmot.sparsity.keras pruning schedule such as PolynomialDecay(...), got "
                f"{type(schedule).__name__}.")
    run = schedule_run(schedule, epochs * steps_per_epoch)
    return (_sparsity_problem(run, dense_until=steps_per_epoch, target=target)
            or _timing_problem(run, fixed_from=(epochs - 1) * steps_per_epoch + 1, target=target, frequency=frequency)
            or CORRECT)


def _is_quantization_aware(model: Any) -> bool:
    return any(hasattr(layer, "quantize_config") for layer in model.layers)


def _kernel_zeros(model: Any) -> int:
    """The zeros in a model's Conv2D and Dense kernels (a QAT model keeps the float kernels as variables)."""
    return sum(int(np.count_nonzero(w.numpy() == 0)) for w in model.weights
               if w.name.split("/")[-1].split(":")[0] == "kernel")


def _short_fine_tune(qat_model: Any, x: np.ndarray, y: np.ndarray) -> None:
    """A few steps of the lesson's QAT fine-tune (Adam, 1e-3): ordinary QAT regrows pruned weights in fewer."""
    from qlab.zoo.keras2 import keras

    qat_model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat_model.fit(x[:CHECK_IMAGES], y[:CHECK_IMAGES], batch_size=CHECK_BATCH, epochs=1, verbose=0)


@exercise_check("09.keep_zeros", "a quantization-aware copy of the pruned model that keeps its zeros")
def check_keep_zeros(qat_model: Any, *, pruned_model: Any, x: np.ndarray, y: np.ndarray) -> str | None:
    """Fine-tune the learner's QAT model a few steps, convert it, and count the pruned zeros left in the int8 file."""
    from qlab.compression import prune
    from qlab.conversion.converter import convert_qat
    from qlab.zoo.keras2 import keras

    if not isinstance(qat_model, keras.Model):
        return f"expected the quantization-aware Keras model, got {type(qat_model).__name__}."
    if not _is_quantization_aware(qat_model):
        return ("your model has no quantizers: annotate the pruned model (quantize_annotate_model) and apply a "
                "quantization scheme (quantize_apply).")
    if _kernel_zeros(qat_model) < _kernel_zeros(pruned_model):
        return "your model's kernels do not have pruned_model's zeros: start from pruned_model."
    _short_fine_tune(qat_model, x, y)
    kept = prune.zeros_kept_in_file(pruned_model, convert_qat(qat_model))["kept"].min()
    if kept >= ZEROS_KEPT:
        return CORRECT
    return (f"after {CHECK_IMAGES // CHECK_BATCH} training steps only {kept:.0%} of one layer's pruned zeros are "
            "still zero in the int8 file: this QAT trains the pruned weights back. Use a scheme that masks them.")
