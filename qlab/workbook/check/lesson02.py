"""Checks for ``02_error_accumulation``: an int8 dense layer's integer arithmetic, graded by LiteRT.

The learner writes the two integer steps of an int8 layer: the accumulator of one output
(``02.accumulate``) and its requantization back to int8 (``02.requantize``). Each check tries the
answer on the lesson's own numbers first, where a wrong answer gets the hint that names its
mistake, then on a Dense layer that TensorFlow's converter turned into an int8 FULLY_CONNECTED op:
applied to the file's int8 inputs, weights and quantization parameters, the answer must give the
LiteRT interpreter's int8 outputs (its reference kernels), value for value.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from qlab.numerics.fixedpoint import multiply_by_quantized_multiplier
from qlab.numerics.intkernels import multiply_by_quantized_multiplier_single_round
from qlab.workbook.check import CORRECT, Hint, NotDone, exercise_check, is_blank_function

INT8_MIN, INT8_MAX = -128, 127
#: The Dense layer converted for the checks: inputs, output units, and int8 rows run through LiteRT.
LAYER_INPUTS, LAYER_UNITS, LAYER_ROWS = 64, 16, 32


def _returned(function: Callable, result: Any) -> Any:
    """``result`` of the learner's ``function``; a blank body is not done yet, a missing return is a hint."""
    if result is None:
        if is_blank_function(function):
            raise NotDone
        raise Hint(f"{function.__name__} returns None: end it with a return statement.")
    return result


# --- the reference layer: TensorFlow's converter and LiteRT's interpreter ---------------------------


@dataclass(frozen=True)
class LiteRTDense:
    """An int8 FULLY_CONNECTED op converted by TensorFlow, and the outputs LiteRT computed with it."""

    x: np.ndarray  #: int8 input rows, (rows, inputs)
    input_zero_point: int
    weights: np.ndarray  #: int8, (inputs, units): one column per output unit, as in the lesson
    bias: np.ndarray  #: int32 (units,), zeros when the op has none
    M0: np.int32  #: the fixed-point multiplier of the layer (one for all units: per-tensor weights)
    shift: int
    output_zero_point: int
    outputs: np.ndarray  #: int8, (rows, units), from LiteRT's reference kernels

    def accumulators(self) -> np.ndarray:
        """The exact int32 accumulators, bias included, (rows, units)."""
        centred = self.x.astype(np.int64) - self.input_zero_point
        return centred @ self.weights.astype(np.int64) + self.bias.astype(np.int64)


@functools.lru_cache(maxsize=1)
def litert_dense() -> LiteRTDense:
    """A seeded Dense layer converted to int8 (per-tensor) by TensorFlow, run on random int8 rows by LiteRT."""
    from qlab.conversion import intsim
    from qlab.conversion.converter import convert
    from qlab.zoo.keras2 import keras

    rng = np.random.default_rng(2)
    inputs = keras.Input((LAYER_INPUTS,))
    model = keras.Model(inputs, keras.layers.Dense(LAYER_UNITS, use_bias=False)(inputs))
    model.layers[-1].set_weights([rng.normal(0.0, 0.2, (LAYER_INPUTS, LAYER_UNITS)).astype(np.float32)])
    # calibrated on inputs in [-1, 3]: a range off centre, so the input zero point is far from 0
    layer = intsim.load(convert(model, "int8_per_tensor", rng.uniform(-1, 3, (256, LAYER_INPUTS)).astype(np.float32)))
    ops = [op for op in layer.operators if op.name == "FULLY_CONNECTED"]
    if len(ops) != 1 or (ops[0].inputs[0], ops[0].outputs[0]) != (layer.inputs[0], layer.outputs[0]):
        raise RuntimeError(f"expected one FULLY_CONNECTED op from input to output, the file has "
                           f"{[op.name for op in layer.operators]}")
    (op,) = ops
    weights = layer.tensors[op.inputs[1]]
    if np.any(weights.zero_point != 0):
        raise RuntimeError("TFLite's int8 weights are symmetric; this file's weight zero point is not 0")
    multipliers, shifts = intsim.output_multipliers(layer, op)
    if len(set(multipliers.tolist())) != 1 or len(set(shifts.tolist())) != 1:
        raise RuntimeError("the reference layer should have one multiplier for all units (per-tensor)")
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
    x = rng.integers(INT8_MIN, INT8_MAX + 1, (LAYER_ROWS, LAYER_INPUTS)).astype(np.int8)
    return LiteRTDense(
        x=x, input_zero_point=layer.tensor(op.inputs[0]).scalar_quantization()[1],
        weights=weights.data.T.copy(),
        bias=layer.tensors[op.inputs[2]].data.astype(np.int32) if has_bias else np.zeros(LAYER_UNITS, np.int32),
        M0=np.int32(multipliers[0]), shift=int(shifts[0]),
        output_zero_point=layer.tensor(op.outputs[0]).scalar_quantization()[1],
        outputs=intsim.reference_tensors(layer, x)[op.outputs[0]])


def fully_connected_requantize(acc: Any, M0: Any, shift: int, zero_point: int) -> np.ndarray:
    """LiteRT's FULLY_CONNECTED requantization: ``acc * M0 / 2**(31 - shift)`` rounded once (halves up),
    plus the zero point, clamped to int8 (qlab's port of the kernel, bit-exact with the interpreter)."""
    scaled = multiply_by_quantized_multiplier_single_round(np.asarray(acc, np.int64), M0, shift)
    return np.clip(scaled + zero_point, INT8_MIN, INT8_MAX)


# --- 02.accumulate -------------------------------------------------------------------------------


def _one_integer(value: Any, inputs: int) -> int:
    array = np.asarray(value)
    if array.shape == (inputs,):
        raise Hint(f"your function returns {inputs} numbers, one product per input: the accumulator is their sum.")
    if array.shape != () or array.dtype.kind not in "iuf":
        raise Hint(f"return one number, the accumulator; yours is {type(value).__name__} {array.shape}.")
    if not np.isfinite(array) or array != np.round(array):
        raise Hint(f"the accumulator is a sum of integer products: an integer, not {array.item()!r}.")
    return int(array)


def _accumulator_problem(got: int, q_a: np.ndarray, z_a: int, q_w: np.ndarray,
                         lesson_z_a: int | None = None) -> str | None:
    """What is wrong with the accumulator ``got`` of ``q_a``, ``z_a`` and ``q_w``, or None."""
    a, w = q_a.astype(np.int64), q_w.astype(np.int64)
    exact = int(np.sum((a - z_a) * w))
    if got == exact:
        return None
    if lesson_z_a is not None and lesson_z_a != z_a and got == int(np.sum((a - lesson_z_a) * w)):
        return (f"called with z_a = {z_a}, your function still subtracts the lesson's {lesson_z_a}: use the "
                "function's arguments, not the lesson's variables.")
    if z_a and got == int(np.sum(a * w)):
        return ("the input zero point is missing: subtract z_a from every input before multiplying "
                "(the real input is s_a * (q_a - z_a)).")
    if z_a and got == int(np.sum((a + z_a) * w)):
        return "check the sign of the zero point: the real input is s_a * (q_a - z_a)."
    if (got - exact) % 2**16 == 0:
        return (f"your accumulator wrapped around in int16: {exact:,} needs more than 16 bits. "
                "Accumulate in int32.")
    if (got - exact) % 2**8 == 0:
        return ("your accumulator wrapped around: numpy computes int8 with int8 in int8, so q_a - z_a (up to 255 "
                "when z_a = -128) and the products overflow. Convert the arrays to int32 before subtracting "
                "and multiplying.")
    return f"with z_a = {z_a} the accumulator of these inputs is {exact:,}; yours is {got:,}."


def _accumulate_cases(q_a: np.ndarray, z_a: int, q_w: np.ndarray) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """The lesson's vectors, then aligned ones (a sum far beyond int16) and a positive zero point."""
    rng = np.random.default_rng(3)
    k = len(q_a)
    aligned = (rng.integers(100, 128, k).astype(np.int8), -128, rng.integers(60, 128, k).astype(np.int8))
    other = (rng.integers(-128, 128, k).astype(np.int8), 17, rng.integers(-127, 128, k).astype(np.int8))
    return [(np.asarray(q_a, np.int8), int(z_a), np.asarray(q_w, np.int8)), aligned, other]


@exercise_check("02.accumulate", "the int32 accumulator of one output of an int8 dense layer")
def check_accumulate(accumulate: Callable, *, q_a: np.ndarray, z_a: int, q_w: np.ndarray) -> str | None:
    """The lesson's vectors and two harder pairs against the exact sum, then a LiteRT FULLY_CONNECTED op."""
    for a, z, w in _accumulate_cases(q_a, z_a, q_w):
        got = _one_integer(_returned(accumulate, accumulate(a.copy(), z, w.copy())), len(a))
        problem = _accumulator_problem(got, a, z, w, lesson_z_a=int(z_a))
        if problem:
            return problem
    layer = litert_dense()
    mine = np.array([[_one_integer(accumulate(row.copy(), layer.input_zero_point, column.copy()), len(row))
                      for column in layer.weights.T] for row in layer.x], dtype=np.int64)
    codes = fully_connected_requantize(mine + layer.bias, layer.M0, layer.shift, layer.output_zero_point)
    if np.array_equal(codes, layer.outputs):
        return CORRECT
    wrong = np.argwhere(mine + layer.bias != layer.accumulators())
    r, u = wrong[0] if len(wrong) else np.argwhere(codes != layer.outputs)[0]
    problem = _accumulator_problem(int(mine[r, u]), layer.x[r], layer.input_zero_point, layer.weights[:, u],
                                   lesson_z_a=int(z_a))
    return " ".join([f"On an int8 dense layer converted by TensorFlow (input zero point {layer.input_zero_point}), "
                     f"requantized as LiteRT does it, {int(np.sum(codes != layer.outputs))} of {codes.size} of your "
                     "accumulators give other outputs than the LiteRT interpreter's.", problem or
                     "Use the function's arguments, not the lesson's variables."])


# --- 02.requantize -------------------------------------------------------------------------------

#: Accumulators added to the lesson's: a negative saturation, zero, a negative value, the int32 limits.
MORE_ACCUMULATORS = (-1_000_000, 0, -3353, 2**31 - 1, -(2**31))
#: A multiplier of exactly 1/4 (M0 = 2**30, shift = -1): accumulators 2, 6, ... land exactly on halves.
HALVES = (np.array([2, 6, 10, -2, -6, -10, 1, -1, 3, -3], np.int32), np.int32(2**30), -1, 0)


def _codes(result: Any, shape: tuple[int, ...]) -> np.ndarray:
    codes = np.asarray(result)
    if codes.dtype.kind not in "iuf":
        raise Hint(f"return a numpy array of int8 codes; yours holds {codes.dtype}.")
    if codes.shape != shape:
        raise Hint(f"return one code per accumulator, shape {shape}; yours has shape {codes.shape}.")
    if not np.all(np.isfinite(codes)) or np.any(codes != np.round(codes)):
        raise Hint("the codes are integers: no fractions may be left after the shift.")
    if codes.min() < INT8_MIN or codes.max() > INT8_MAX:
        raise Hint(f"some codes fall outside int8 [{INT8_MIN}, {INT8_MAX}]: clamp after adding the zero point.")
    return codes.astype(np.int64)


def _halfway(acc: int, M0: int, shift: int) -> bool:
    return (acc * M0) % 2 ** (31 - shift) == 2 ** (30 - shift)


def _requantize_problem(mine: np.ndarray, acc: np.ndarray, M0: Any, shift: int, zero_point: int) -> str | None:
    """What is wrong with the codes ``mine`` of ``acc``, or None; the mistakes learners make, by name."""
    expected = fully_connected_requantize(acc, M0, shift, zero_point)
    if np.array_equal(mine, expected):
        return None
    wide, total = acc.astype(np.int64), 31 - shift
    rounded = multiply_by_quantized_multiplier_single_round(wide, M0, shift)
    if zero_point and np.array_equal(mine, fully_connected_requantize(acc, M0, shift, 0)):
        return f"the output zero point ({zero_point}) is missing: add it to the rounded value, then clamp."
    if np.array_equal(mine, np.clip(((wide * int(M0)) >> total) + zero_point, INT8_MIN, INT8_MAX)):
        return ("your codes are rounded down (a right shift alone drops the fraction, towards -infinity): "
                "round to the nearest integer instead.")
    if np.array_equal(mine, np.clip(multiply_by_quantized_multiplier(acc.astype(np.int32), M0, shift) + zero_point,
                                    INT8_MIN, INT8_MAX)):
        return ("you rounded twice, as LiteRT's convolutions do (the doubling high multiply, then the shift); "
                "its FULLY_CONNECTED kernel rounds once: the whole 64-bit product acc * M0, shifted in one step.")
    i = int(np.argmax(mine != expected))
    a, value = int(acc.flat[i]), int(acc.flat[i]) * int(M0) / 2**total
    if _halfway(a, int(M0), shift) and abs(mine.flat[i] - expected.flat[i]) == 1:
        return (f"acc * M = {value:g} lies exactly halfway between two integers: LiteRT rounds every half up, "
                f"towards +infinity ({value:g} -> {int(rounded.flat[i])}); yours gives "
                f"{int(mine.flat[i]) - zero_point}.")
    if np.all(np.abs(mine - expected) <= 1):
        return (f"accumulator {a} (acc * M = {value:.4f}) comes out one step off, {int(mine.flat[i])} instead of "
                f"{int(expected.flat[i])}: round acc * M0 / 2**(31 - shift) to the nearest integer.")
    return (f"accumulator {a} should become code {int(expected.flat[i])} (acc * M = {value:.4g}, rounded, plus the "
            f"zero point {zero_point}, clamped); yours gives {int(mine.flat[i])}. With shift = {shift} the divisor is "
            f"2**{total}, and acc * M0 needs up to 62 bits: compute it in int64.")


def _run_requantize(requantize: Callable, acc: np.ndarray, M0: Any, shift: int, zero_point: int) -> np.ndarray:
    try:
        result = requantize(acc.copy(), M0, shift, zero_point)
    except OverflowError as error:
        raise Hint(f"{error}: acc * M0 needs up to 62 bits, more than an int32 holds; compute it in int64.") from None
    return _codes(_returned(requantize, result), acc.shape)


@exercise_check("02.requantize", "int32 accumulators to int8 codes with a fixed-point multiplier, as LiteRT does")
def check_requantize(requantize: Callable, *, accumulators: np.ndarray, M0: Any, shift: int,
                     zero_point: int) -> str | None:
    """The lesson's accumulators and exact halves against LiteRT's kernel (qlab's port), then a LiteRT run."""
    lesson = (int(shift), int(zero_point))
    acc = np.concatenate([np.asarray(accumulators, np.int32), np.array(MORE_ACCUMULATORS, np.int32)])
    problem = _requantize_problem(_run_requantize(requantize, acc, M0, *lesson), acc, M0, *lesson)
    if problem:
        return problem
    mine = _run_requantize(requantize, *HALVES)
    if np.array_equal(mine, fully_connected_requantize(HALVES[0], M0, *lesson)):
        return (f"with another layer's multiplier (M0 = {int(HALVES[1])}, shift = {HALVES[2]}) your codes do not "
                "change: use the function's arguments, not the lesson's variables.")
    problem = _requantize_problem(mine, *HALVES)
    if problem:
        return problem
    layer = litert_dense()
    acc = layer.accumulators().astype(np.int32)
    mine = _run_requantize(requantize, acc, layer.M0, layer.shift, layer.output_zero_point)
    if np.array_equal(mine, layer.outputs):
        return CORRECT
    problem = _requantize_problem(mine, acc, layer.M0, layer.shift, layer.output_zero_point)
    return " ".join([f"On an int8 dense layer converted by TensorFlow (M0 = {int(layer.M0)}, shift = {layer.shift}, "
                     f"output zero point {layer.output_zero_point}), {int(np.sum(mine != layer.outputs))} of "
                     f"{mine.size} of your codes differ from the LiteRT interpreter's.", problem or
                     "Use the function's arguments, not the lesson's variables."])
