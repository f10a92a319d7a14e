"""Lesson 09's checks: a schedule asked step by step through TFMOT's object, PQAT by the zeros in its int8 file."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook.check import grade
from qlab.zoo.keras2 import keras, tfmot
from qlab.zoo.seed import set_seed

sparsity_keras = tfmot.sparsity.keras
PLAN = {"steps_per_epoch": 469, "epochs": 3, "target": 0.8, "frequency": 100}


def polynomial(begin_step=469, end_step=869, final_sparsity=0.8, frequency=100, initial_sparsity=0.0):
    return sparsity_keras.PolynomialDecay(initial_sparsity=initial_sparsity, final_sparsity=final_sparsity,
                                          begin_step=begin_step, end_step=end_step, frequency=frequency)


def test_a_schedule_that_reaches_its_target_in_time_is_correct():
    assert grade("09.schedule", polynomial(), **PLAN).status == "correct"
    assert grade("09.schedule", polynomial(begin_step=500, end_step=800), **PLAN).status == "correct"
    assert grade("09.schedule", ..., **PLAN).status == "not done"


@pytest.mark.parametrize("schedule, hint", [
    (polynomial(end_step=938), "step 869, prunes 79.7"),  # end_step not an update step: stops short
    (polynomial(begin_step=0, end_step=800), "must stay dense"),
    (polynomial(end_step=1369), "only at step 1369, in the last epoch"),
    (polynomial(final_sparsity=0.2), "share of weights set to zero"),
    (polynomial(final_sparsity=0.9), "beyond the target"),
    (polynomial(frequency=50), "every 50 steps"),
    (polynomial(begin_step=1500, end_step=1600), "never updates the masks"),
    (sparsity_keras.ConstantSparsity(0.8, begin_step=569, end_step=869), "jumps from 0 to 80%"),
    (sparsity_keras.ConstantSparsity(0.8, begin_step=469, end_step=-1), "must stay dense"),
    (sparsity_keras.ConstantSparsity(0.8, begin_step=569, end_step=-1), "still re-ranked at step 1369"),
    (polynomial(initial_sparsity=0.3), "must stay dense"),
    ({"final_sparsity": 0.8}, "pruning schedule such as PolynomialDecay"),
])
def test_each_schedule_mistake_gets_a_hint_that_names_it(schedule, hint):
    outcome = grade("09.schedule", schedule, **PLAN)
    assert outcome.status == "wrong" and hint in outcome.message
    assert "end_step=869" not in outcome.message


def pruned_cnn():
    """A tiny CNN with 75% of each kernel set to zero by magnitude, as strip_pruning leaves it."""
    set_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="dense")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            kernel = layer.kernel.numpy()
            kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.75)] = 0
            layer.kernel.assign(kernel)
    return model


@pytest.fixture(scope="module")
def context():
    rng = np.random.default_rng(0)
    return {"pruned_model": pruned_cnn(), "x": rng.uniform(size=(256, 8, 8, 1)).astype(np.float32),
            "y": rng.integers(0, 10, 256)}


def pqat(model):
    return tfmot.quantization.keras.quantize_apply(tfmot.quantization.keras.quantize_annotate_model(model),
                                                   tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())


def test_pruning_preserving_qat_keeps_the_zeros_in_the_file(context):
    assert grade("09.keep_zeros", pqat(context["pruned_model"]), **context).status == "correct"
    assert grade("09.keep_zeros", ..., **context).status == "not done"


@pytest.mark.parametrize("make, hint", [
    (lambda m: tfmot.quantization.keras.quantize_model(m), "trains the pruned weights back"),
    (lambda m: m, "no quantizers"),
    (lambda m: pqat(keras.models.clone_model(m)), "do not have pruned_model's zeros"),  # fresh, unpruned weights
])
def test_each_qat_mistake_gets_a_hint_that_names_it(context, make, hint):
    outcome = grade("09.keep_zeros", make(context["pruned_model"]), **context)
    assert outcome.status == "wrong" and hint in outcome.message
    assert "Default8BitPrunePreserveQuantizeScheme" not in outcome.message
