"""Lesson 06's checks: a QAT fine-tune graded by TFMOT's model and a LiteRT run, the STE by TensorFlow's op."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook.check import grade
from qlab.zoo.keras2 import keras, tf, tfmot
from qlab.zoo.seed import set_seed

layers = keras.layers
GRID = {"low": -1.0, "high": 0.75, "num_bits": 3}  # the lesson's grid: step 0.25, 0.0 on it
STEP = 0.25


def ste(x):
    """The answer: clip (gradient 0 outside), round around a stop_gradient (gradient 1 inside)."""
    clipped = tf.clip_by_value(x, GRID["low"], GRID["high"])
    rounded = GRID["low"] + tf.round((clipped - GRID["low"]) / STEP) * STEP
    return clipped + tf.stop_gradient(rounded - clipped)


def identity_ste(x):
    rounded = GRID["low"] + tf.round((tf.clip_by_value(x, GRID["low"], GRID["high"]) - GRID["low"]) / STEP) * STEP
    return x + tf.stop_gradient(rounded - x)


def test_ste_blank_is_not_done():
    assert grade("06.ste", ..., **GRID).status == "not done"
    assert grade("06.ste", lambda x: None, **GRID).status == "not done"  # the function's body is still ...


def test_ste_matches_tensorflows_values_and_gradient():
    outcome = grade("06.ste", ste, **GRID)
    assert outcome.status == "correct", outcome.message


@pytest.mark.parametrize("mistake, hint", [
    (identity_ste, "outside the range get gradient 1"),
    (lambda x: GRID["low"] + tf.round((tf.clip_by_value(x, GRID["low"], GRID["high"]) - GRID["low"]) / STEP) * STEP,
     "no gradient reaches x"),  # rounding without the estimator
    (lambda x: tf.constant(ste(x).numpy()), "no gradient reaches x"),  # through numpy
    (lambda x: x + tf.stop_gradient(tf.round(x / STEP) * STEP - x), "Clip to"),  # no clipping
    (lambda x: 0.0 * x + tf.stop_gradient(ste(x)), "0 everywhere"),
])
def test_each_ste_mistake_gets_a_hint_without_the_answer(mistake, hint):
    outcome = grade("06.ste", mistake, **GRID)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "clip_by_value" not in outcome.message


@pytest.fixture(scope="module")
def task() -> dict:
    """A trained tiny CNN on three bright bands (one per class), and its data."""
    set_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.uniform(0, 0.3, (600, 8, 8, 1)).astype(np.float32)
    for k in range(3):
        x[y == k, 2 * k + 1:2 * k + 3] += 0.7
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu", name="conv"),
                              layers.MaxPooling2D(2, name="pool"), layers.Flatten(name="flatten"),
                              layers.Dense(3, name="logits")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x[:400], y[:400], epochs=5, batch_size=32, verbose=0)
    return {"float_model": model, "x": x[:400], "y": y[:400], "x_test": x[400:], "y_test": y[400:]}


def qat_answer(task, compile_it=True, fit_it=True, loss=None) -> keras.Model:
    qat = tfmot.quantization.keras.quantize_model(task["float_model"])
    if compile_it:
        qat.compile(optimizer=keras.optimizers.Adam(1e-4),
                    loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if fit_it:
        qat.fit(task["x"], task["y"], batch_size=128, epochs=1, verbose=0)
    return qat


def qat_outcome(answer, task):
    return grade("06.qat", answer, float_model=task["float_model"], x_test=task["x_test"], y_test=task["y_test"])


def test_qat_blank_is_not_done():
    assert grade("06.qat", ..., float_model=None, x_test=None, y_test=None).status == "not done"


@pytest.mark.slow
def test_a_trained_qat_model_that_converts_to_integers_is_correct(task):
    outcome = qat_outcome(qat_answer(task), task)
    assert outcome.status == "correct", outcome.message


@pytest.mark.slow
@pytest.mark.parametrize("answer, hint", [
    (lambda t: t["float_model"], "no fake quantization"),
    (lambda t: qat_answer(t, compile_it=False, fit_it=False), "never compiled"),
    (lambda t: qat_answer(t, fit_it=False), "never trained"),
    (lambda t: qat_answer(t, fit_it=False).fit(t["x"], t["y"], verbose=0), "History"),
    (lambda t: qat_answer(t, fit_it=False, loss="sparse_categorical_crossentropy"), "logits"),
])
def test_each_qat_mistake_gets_a_hint_without_the_answer(answer, hint, task):
    outcome = qat_outcome(answer(task), task)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "quantize_model(" not in outcome.message


@pytest.mark.slow
def test_quantizing_some_layers_only_is_not_integer_only(task):
    qkeras = tfmot.quantization.keras
    annotated = keras.models.clone_model(
        task["float_model"],
        clone_function=lambda layer: qkeras.quantize_annotate_layer(layer) if isinstance(layer, layers.Dense) else layer)
    annotated.set_weights(task["float_model"].get_weights())
    partial = qkeras.quantize_apply(annotated)
    partial.compile(optimizer=keras.optimizers.Adam(1e-4),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    partial.fit(task["x"], task["y"], batch_size=128, epochs=1, verbose=0)
    outcome = qat_outcome(partial, task)
    assert outcome.status == "wrong" and "not integer-only" in outcome.message, outcome.message
