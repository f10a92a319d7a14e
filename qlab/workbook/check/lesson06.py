"""Checks for ``06_quantization_aware_training``: graded by TFMOT's own model, a LiteRT run and TensorFlow's op."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from qlab.workbook.check import CORRECT, NotDone, exercise_check

#: Test images the learner's QAT file and the float model are scored on.
COMPARE_IMAGES = 500
#: Accuracy the int8 file may lose against the float model before the fine-tune is called harmful.
LARGEST_LOSS = 0.05
#: Where TFMOT's activation ranges start (MovingAverageQuantizer; the input's AllValuesQuantizer starts at [0, 0]).
TFMOT_START = (-6.0, 6.0)


def _expects_probabilities(loss: Any) -> bool:
    """Whether a compiled cross-entropy loss reads the outputs as probabilities (``from_logits`` off)."""
    if isinstance(loss, str):
        return "crossentropy" in loss
    if hasattr(loss, "get_config"):
        return "crossentropy" in type(loss).__name__.lower() and not loss.get_config().get("from_logits", False)
    return "crossentropy" in getattr(loss, "__name__", "")


def _never_trained(qat_model: Any) -> bool:
    """Every activation range after a layer still at TFMOT's start: ``fit`` never ran a step."""
    from qlab.ptq.ranges import activation_quantizers

    ranges = [(float(np.min(q.min_var.numpy())), float(np.max(q.max_var.numpy())))
              for q in activation_quantizers(qat_model) if q.kind != "input"]
    return bool(ranges) and all(np.allclose(r, TFMOT_START) for r in ranges)


def _model_problem(qat_model: Any, float_model: Any) -> str | None:
    """What is wrong with the model object itself, before it is trained or converted, or None."""
    if type(qat_model).__name__ == "History":
        return "fit returns a History (the losses), not the model: keep the model quantize_model returned in my_qat."
    if not hasattr(qat_model, "layers"):
        return f"my_qat should be the Keras model quantize_model returned; yours is a {type(qat_model).__name__}."
    if qat_model is float_model or not any(type(layer).__name__.startswith("Quantize") for layer in qat_model.layers):
        return ("your model has no fake quantization: pass the float model through TFMOT's quantize_model first "
                "(fine-tuning the float model is not QAT).")
    if getattr(qat_model, "optimizer", None) is None:
        return "your model was never compiled: compile it with an optimizer and a loss before fit."
    if _expects_probabilities(qat_model.loss):
        return ("your loss reads the outputs as probabilities, but the zoo models output logits: tell the "
                "cross-entropy so (from_logits).")
    if int(qat_model.optimizer.iterations.numpy()) == 0 or _never_trained(qat_model):
        return "your model was compiled but never trained: call fit on my_x, my_y."
    return None


@exercise_check("06.qat", "quantize_model, compile and fit written out: a quantization-aware fine-tune")
def check_qat(qat_model: Any, *, float_model: Any, x_test: np.ndarray, y_test: np.ndarray) -> str | None:
    """TFMOT's quantize-wrapped model, trained, converted to an integer-only file scored by LiteRT against float."""
    from qlab.conversion.converter import convert_qat
    from qlab.conversion.tflite import evaluate_tflite
    from qlab.conversion.tflite_file import count_non_integer_ops

    problem = _model_problem(qat_model, float_model)
    if problem:
        return problem
    x, y = x_test[:COMPARE_IMAGES], np.asarray(y_test[:COMPARE_IMAGES])
    scores = np.asarray(qat_model(x, training=False))
    if not np.all(np.isfinite(scores)):
        return "your model's outputs are not finite: the fine-tune diverged (is the learning rate small, about 1e-4?)."
    model_bytes = convert_qat(qat_model)
    if count_non_integer_ops(model_bytes):
        return (f"{count_non_integer_ops(model_bytes)} op(s) of your converted file are not integer-only: "
                "quantize the whole model, not some of its layers.")
    float_accuracy = float(np.mean(np.argmax(float_model.predict(x, verbose=0), axis=1) == y))
    file_accuracy = evaluate_tflite(model_bytes, x, y)
    if file_accuracy < float_accuracy - LARGEST_LOSS:
        return (f"your int8 file scores {file_accuracy:.1%} where the float model scores {float_accuracy:.1%}: the "
                "fine-tune hurt the model. A small learning rate (about 1e-4) only adapts the weights to the rounding.")
    return CORRECT


def _reference(x: Any, low: float, high: float, num_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow's fake-quant op and its gradient (the straight-through estimator) at ``x``."""
    from qlab.zoo.keras2 import tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=num_bits)
    return y.numpy(), tape.gradient(y, x).numpy()


def _test_values(low: float, high: float) -> np.ndarray:
    """Values across the range and half its width beyond each end (never exactly on a rounding tie)."""
    width = high - low
    return np.random.default_rng(0).uniform(low - width / 2, high + width / 2, 400).astype(np.float32)


def _gradient_hint(mine: np.ndarray, reference: np.ndarray) -> str:
    inside = reference == 1
    if np.allclose(mine, 0):
        return ("your gradient is 0 everywhere: that is rounding's own derivative, and nothing would learn. "
                "The straight-through estimator lets the gradient go around the rounding (tf.stop_gradient).")
    if np.allclose(mine[inside], 1) and np.allclose(mine[~inside], 1):
        return ("values outside the range get gradient 1 from yours; TensorFlow gives 0 where it clips, since "
                "moving a clipped value does not change the output.")
    return ("inside the range the straight-through estimator passes the gradient unchanged (1), outside it "
            "gives 0; yours gives other values.")


@exercise_check("06.ste", "fake quantization with the straight-through estimator's gradient, in TensorFlow ops")
def check_ste(fake_quant: Callable, *, low: float, high: float, num_bits: int) -> str | None:
    """The learner's forward values and ``tf.GradientTape`` gradient against ``fake_quant_with_min_max_vars``."""
    from qlab.zoo.keras2 import tf

    x = tf.constant(_test_values(low, high))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fake_quant(x)
    if y is None:
        raise NotDone
    expected, expected_gradient = _reference(x, low, high, num_bits)
    values = np.asarray(y, dtype=np.float64)
    step = (high - low) / (2 ** num_bits - 1)
    if values.shape != expected.shape:
        return f"return one value per input, shape {expected.shape}; yours has shape {values.shape}."
    wrong = ~np.isclose(values, expected, rtol=0, atol=step * 1e-3)
    if wrong.any():
        i = int(np.argmax(wrong))
        return (f"forward: x = {float(x[i]):.4g} should come back as {expected[i]:.4g} (TensorFlow's op), yours "
                f"gives {values[i]:.4g}. Clip to [{low:g}, {high:g}], then round to the grid of step {step:g}.")
    gradient = tape.gradient(y, x) if isinstance(y, tf.Tensor) else None
    if gradient is None:
        return ("no gradient reaches x: rounding passes none back (its derivative is 0 almost everywhere), and "
                "neither does numpy. The straight-through estimator lets the gradient go around the rounding "
                "(tf.stop_gradient).")
    gradient = gradient.numpy()
    if np.allclose(gradient, expected_gradient):
        return CORRECT
    return _gradient_hint(gradient, expected_gradient)
