"""Running an integer ``.tflite`` on the microcontroller runtime, on the desktop: agreement, arena, flash.

TensorFlow Lite for Microcontrollers (TFLM) runs a model from flash with one fixed block of RAM, the
*tensor arena* (activations, bookkeeping, scratch buffers; there is no heap). The ``tflite-micro``
package wraps TFLM's C++ runtime and reference kernels for Python, so a desktop runs the code a
Cortex-M would: :func:`micro_interpreter` builds one, :func:`measured_arena` reads the arena it
allocated (printed from C++, so read at the file-descriptor level), :func:`smallest_arena` finds the
smallest that works, :func:`micro_agreement` compares TFLM's int8 outputs with LiteRT's. A float file,
float islands, weights kept after the FlatBuffer, an op TFLM lacks, a too-small arena and a wrong input
are refused before anything runs; a too-small arena can crash TFLM rather than fail, so a forked
child tries every arena first.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, NoReturn

import numpy as np

from qlab.conversion.tflite import make_interpreter, predict_tflite, quantize_input
from qlab.conversion.tflite_file import FLOAT_TYPES, WEIGHT_OPS, file_ops, integer_only_ops, read_flatbuffer

#: The package that brings TFLM to Python (pinned in pyproject.toml).
MICRO_PACKAGE = "tflite-micro"

#: What ``print_allocations()`` and a failed allocation print (TFLM's MicroPrintf, to stderr).
ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(\w+)'")


def micro_runtime() -> Any:
    """``tflite_micro.runtime``, or an ImportError that names the package and how to install it."""
    try:
        from tflite_micro import runtime
    except ImportError as error:
        raise ImportError(
            f"running a model on the microcontroller runtime needs the package {MICRO_PACKAGE!r}, which is "
            f"not installed here ({error}). Install it with `pip install {MICRO_PACKAGE}` (`make setup` "
            "does); it has wheels for Linux x86_64 only. The rest of qlab works without it.") from error
    return runtime


@contextmanager
def native_output_captured() -> Iterator[list[str]]:
    """Collect what C/C++ code writes to file descriptors 1 and 2 in the block; the list fills on leaving it.

    Python's ``sys.stdout`` never sees those writes (a notebook shows them in the server's log, or
    nowhere), so the two descriptors are pointed at a temporary file and back, as
    :func:`qlab.zoo.quiet.native_stderr_silenced` does with descriptor 2.
    """
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            try:  # printf's buffer would otherwise reach the real stdout later
                ctypes.CDLL(None).fflush(None)
            except (OSError, AttributeError, TypeError):  # pragma: no cover - no C library to ask
                pass
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", errors="replace").splitlines())


def arena_bytes_from(lines: list[str]) -> int:
    """The total arena bytes in the lines ``print_allocations()`` printed; a ValueError when there is none."""
    for line in lines:
        match = ARENA_TOTAL.search(line)
        if match:
            return int(match.group(1))
    raise ValueError("no 'Arena allocation total ... bytes' line in the output of print_allocations(): "
                     f"got {lines[:3]!r}")


def missing_ops_from(lines: list[str]) -> list[str]:
    """The ops TFLM reported it has no kernel for (``Didn't find op for builtin opcode 'GELU'``)."""
    return sorted({match.group(1) for line in lines for match in [MISSING_OP.search(line)] if match})


def check_integer_only(model_bytes: bytes) -> None:
    """A ValueError unless every op of the file reads and writes integer tensors only.

    A float file (its conv and dense layers compute in float) and a file with float islands (some
    ops in float, or float input and output behind QUANTIZE/DEQUANTIZE) are told apart, the ops named.
    """
    table = integer_only_ops(model_bytes)
    if not len(table):
        return
    ops = file_ops(model_bytes)
    layers = [op for op in ops if op["op"] in WEIGHT_OPS] or ops
    if all(set(op["types"]) & set(FLOAT_TYPES) for op in layers):
        raise ValueError("model_bytes is a float file: its layers compute in float "
                         f"({', '.join(table['op'])}). A microcontroller run needs an integer-only file: "
                         "convert with qlab.convert(model, 'int8_per_channel', x)")
    islands = ", ".join(f"{op} x{count} ({types})"
                        for op, count, types in zip(table["op"], table["count"], table["float tensors"]))
    raise ValueError(f"model_bytes has float islands: {islands} read or write float tensors. A microcontroller "
                     "run needs an integer-only file (int8 input and output too): convert with "
                     "qlab.convert(model, 'int8_per_channel', x)")


def outside_buffers(model_bytes: bytes) -> tuple[int, int]:
    """``(count, bytes)`` of the buffers a file keeps after its FlatBuffer, which TFLM does not read.

    The schema lets a buffer live past the FlatBuffer (``offset > 1``, meant for files over 2 GB);
    the LiteRT Quantizer writes a MobileNet's weights so. LiteRT reads them; this TFLM build takes each
    such weight for an activation, plans it in the arena and computes with what is there (MobileNet v2's
    ``aeq_int8_per_channel``: a 2.4 MB arena instead of 183 KB, top-1 agreement with LiteRT 15 %).
    """
    outside = [buffer for buffer in read_flatbuffer(model_bytes).buffers or [] if (buffer.offset or 0) > 1]
    return len(outside), sum(int(buffer.size) for buffer in outside)


def check_buffers_inside(model_bytes: bytes) -> None:
    """A ValueError when the file keeps weights after its FlatBuffer (:func:`outside_buffers`)."""
    count, size = outside_buffers(model_bytes)
    if count:
        raise ValueError(f"model_bytes keeps {count} weight buffers ({size:,} bytes) after its FlatBuffer (buffer "
                         "offsets, as the LiteRT Quantizer writes a large model): TFLM does not read them and would "
                         "compute with whatever its arena holds in their place. Convert with "
                         "qlab.convert(model, 'int8_per_channel', x)")


def allocates(model_bytes: bytes, arena_size: int) -> tuple[bool, list[str]]:
    """Whether TFLM allocates the model in ``arena_size`` bytes, and what it printed, tried in a forked child.

    An arena too small can crash TFLM (a segmentation fault, seen on MobileNet v1 at 20,000 to 50,000
    bytes and on any model below 464) instead of failing, so only a copy of this process (``os.fork``,
    milliseconds; tflite-micro exists for Linux only) ever tries an arena that may not work.
    """
    runtime = micro_runtime()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: try, answer with the exit code, never return into the caller's code
        code = 1
        try:
            faulthandler.disable()  # a crash here is an answer, not a bug to report (pytest enables it)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))
            code = 0
            ctypes.CDLL(None).fflush(None)
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        printed = pipe.read().decode("utf-8", errors="replace").splitlines()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, printed


def default_arena_size(model_bytes: bytes) -> int:
    """A generous arena for a desktop run: 10x the file (tflite-micro's own default) and at least 4 MiB."""
    return max(10 * len(model_bytes), 4 << 20)


def micro_interpreter(model_bytes: bytes, arena_size: int | None = None) -> Any:
    """A TFLM interpreter (``tflite_micro.runtime.Interpreter``) for an integer-only file, its arena allocated.

    Args:
        model_bytes: an integer-only ``.tflite`` (``int8_per_channel``, say).
        arena_size: the tensor arena in bytes, as a microcontroller would reserve it; default
            :func:`default_arena_size`. A forked child tries it first (:func:`allocates`).

    Raises a ValueError for a float file or float islands (:func:`check_integer_only`), for weights kept
    after the FlatBuffer (:func:`check_buffers_inside`), for an op TFLM has no kernel for (naming it),
    and for a too-small arena (naming the smallest that works).
    """
    check_integer_only(model_bytes)
    check_buffers_inside(model_bytes)
    arena_size = default_arena_size(model_bytes) if arena_size is None else arena_size
    if not isinstance(arena_size, (int, np.integer)) or arena_size <= 0:
        raise ValueError(f"arena_size must be a positive whole number of bytes, got {arena_size!r}")
    works, lines = allocates(model_bytes, arena_size)
    if not works:
        _refuse(model_bytes, int(arena_size), lines)
    runtime = micro_runtime()
    with native_output_captured():
        return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))


def _refuse(model_bytes: bytes, arena_size: int, lines: list[str]) -> NoReturn:
    """The ValueError for a file TFLM did not allocate in ``arena_size`` bytes: a missing op, a kernel, or the arena."""
    large = max(default_arena_size(model_bytes), 4 * arena_size)
    works, more_lines = allocates(model_bytes, large)
    missing = missing_ops_from(lines + more_lines)
    if missing:
        raise ValueError(f"the microcontroller runtime (TFLM) has no kernel for {', '.join(missing)}: it "
                         "cannot run this file whatever the arena. Replace the op in the model (GELU by "
                         "ReLU, say) or run the file on LiteRT")
    if not works:
        raise ValueError(f"TFLM cannot prepare this model, whatever the arena: {' '.join(more_lines[:3])}")
    needed = _search_smallest(model_bytes, measured_arena(micro_interpreter(model_bytes, large)))
    raise ValueError(f"arena_size={arena_size} bytes is too small for this model: the smallest tensor arena "
                     f"that works is {needed} bytes (measured). TFLM said: {' '.join(lines[:2])}")


def measured_arena(interpreter: Any) -> int:
    """The tensor arena bytes a TFLM interpreter allocated, read from its ``print_allocations()``.

    TFLM plans every tensor and scratch buffer while it allocates, so the figure is final before
    the first ``invoke``. It leaves out the temporary buffers kernels use while TFLM prepares them,
    so the arena a board must reserve can be a little larger: :func:`smallest_arena` finds it.
    """
    with native_output_captured() as lines:
        interpreter.print_allocations()
    return arena_bytes_from(lines)


def smallest_arena(model_bytes: bytes) -> int:
    """The smallest ``arena_size`` (bytes) with which TFLM allocates the model: the RAM a board reserves.

    A search around the :func:`measured_arena`, most often the answer itself: about 8 tries, each in
    a forked child (milliseconds). The runtime's code and stack come on top.
    """
    return _search_smallest(model_bytes, measured_arena(micro_interpreter(model_bytes)))


def _search_smallest(model_bytes: bytes, guess: int) -> int:
    """Bracket the smallest working arena by steps doubling away from ``guess``, then bisect."""
    def works(arena: int) -> bool:
        return arena > 0 and allocates(model_bytes, arena)[0]

    direction, step = (-1 if works(guess) else 1), 64
    near, far = guess, guess + direction * step
    while works(far) == (direction < 0):  # down while it still works, up while it still fails
        near, step = far, 2 * step
        far = guess + direction * step
    low, high = (far, near) if direction < 0 else (near, far)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if works(middle) else (middle, high)
    return high


def micro_predict(interpreter: Any, x_int: np.ndarray) -> np.ndarray:
    """The raw (integer) outputs of a TFLM interpreter for every image of ``x_int``, one invoke each.

    ``x_int`` is already quantized to the input tensor's dtype, one row per image; its dtype and
    the shape of each row must be the input tensor's (a microcontroller gets exactly that).
    """
    detail = interpreter.get_input_details(0)
    dtype, shape = np.dtype(detail["dtype"]), tuple(int(d) for d in detail["shape"])
    if x_int.dtype != dtype:
        raise ValueError(f"x_int has dtype {x_int.dtype}, the model input is {dtype.name}: quantize it with "
                         "the input tensor's scale and zero point first (qlab.conversion.tflite.quantize_input)")
    if x_int.shape[1:] != shape[1:] or len(x_int) == 0:
        raise ValueError(f"x_int has shape {x_int.shape}, the model takes images of shape {shape[1:]} "
                         "(one or more, batch first)")
    outputs = []
    for row in x_int:
        interpreter.set_input(row[np.newaxis], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0))[0])
    return np.stack(outputs)


@dataclass(frozen=True)
class MicroAgreement:
    """The same images through TFLM (the microcontroller runtime) and LiteRT, compared on their int8 outputs.

    Against LiteRT as ``Interpreter()`` runs it (its XNNPACK delegate on this CPU): ``identical`` is
    the share of images whose whole output vector is the same integers, ``top1_agreement`` the share
    with the same top class, ``max_step_difference`` the largest difference of one output in integer
    steps (one step is the output scale), ``step_counts`` how many output values differ by 0, 1, 2,
    ... steps. Against LiteRT's reference kernels: ``reference_identical`` and
    ``reference_max_step_difference``, None when LiteRT's reference kernels cannot run the file
    (they have no 4-bit depthwise convolution). TFLM's convolutions round exactly as those kernels do
    (a fixed-point multiplier, then a rounding shift: two roundings); LiteRT's reference
    FULLY_CONNECTED and XNNPACK round once, in floating point, so a value just below a half can land
    a step apart. ``arena_bytes`` is the tensor arena
    TFLM allocated (RAM), ``flash_bytes`` the file (what a board keeps in flash); ``accuracy`` TFLM's
    top-1 accuracy when labels were given, else None.
    """

    images: int
    identical: float
    top1_agreement: float
    max_step_difference: int
    step_counts: tuple[int, ...]
    reference_identical: float | None
    reference_max_step_difference: int | None
    arena_bytes: int
    flash_bytes: int
    accuracy: float | None = None

    def __repr__(self) -> str:
        accuracy = "" if self.accuracy is None else f"TFLM's accuracy {self.accuracy:.2%}; "
        reference = ("LiteRT's reference kernels cannot run the file" if self.reference_identical is None else
                     f"against LiteRT's reference kernels: {self.reference_identical:.1%} identical, at most "
                     f"{self.reference_max_step_difference} step(s) apart")
        return (f"MicroAgreement({self.images} images; {accuracy}against LiteRT: {self.identical:.1%} identical int8 "
                f"outputs, top-1 agreement {self.top1_agreement:.1%}, at most {self.max_step_difference} "
                f"step(s) apart; {reference}; arena {self.arena_bytes:,} bytes, flash {self.flash_bytes:,} bytes)")


def micro_agreement(model_bytes: bytes, x: np.ndarray, arena_size: int | None = None,
                    y: np.ndarray | None = None) -> MicroAgreement:
    """Run float images ``x`` through TFLM and LiteRT (default and reference kernels); compare the integers.

    ``x`` is quantized once with the input tensor's scale and zero point (as
    :func:`qlab.conversion.tflite.predict_tflite` does), so every runtime gets the same integers.
    Everything is checked before any image runs (:func:`micro_interpreter`). ``y``: integer labels
    of ``x``, for TFLM's accuracy. Used by ``13_microcontrollers``.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be float images (the model's float input range, [0, 1] for MNIST), got dtype "
                         f"{x.dtype}: qlab quantizes them with the input tensor's scale and zero point")
    interpreter = micro_interpreter(model_bytes, arena_size)
    litert = make_interpreter(model_bytes)
    litert_input, litert_output = litert.get_input_details()[0], litert.get_output_details()[0]
    shape = tuple(int(d) for d in litert_input["shape"])[1:]
    if x.shape[1:] != shape or len(x) == 0:
        raise ValueError(f"x has shape {x.shape}, the model takes images of shape {shape} (batch first)")
    if y is not None and np.shape(y) != (len(x),):
        raise ValueError(f"y must hold one integer label per image of x ({len(x)}), got shape {np.shape(y)}")
    micro = micro_predict(interpreter, quantize_input(x, litert_input)).astype(np.int64)
    litert = litert_integer_outputs(model_bytes, x, litert_output)
    reference = _reference_outputs(model_bytes, x, litert_output)
    steps = np.abs(micro - litert).ravel()
    to_reference = None if reference is None else np.abs(micro - reference)
    return MicroAgreement(
        images=len(x), identical=float(np.mean(np.all(micro == litert, axis=1))),
        top1_agreement=float(np.mean(micro.argmax(axis=1) == litert.argmax(axis=1))),
        max_step_difference=int(steps.max()), step_counts=tuple(int(n) for n in np.bincount(steps)),
        reference_identical=None if to_reference is None else float(np.mean(np.all(to_reference == 0, axis=1))),
        reference_max_step_difference=None if to_reference is None else int(to_reference.max()),
        arena_bytes=measured_arena(interpreter), flash_bytes=len(model_bytes),
        accuracy=None if y is None else float(np.mean(micro.argmax(axis=1) == np.asarray(y))))


def _reference_outputs(model_bytes: bytes, x: np.ndarray, output_detail: dict[str, Any]) -> np.ndarray | None:
    """LiteRT's reference kernels' integer outputs, or None when they lack a kernel the file needs.

    The reference op resolver has no INT4 DEPTHWISE_CONV_2D ("Didn't find op for builtin opcode ...
    version '7'"): a MobileNet's QAT 4-bit file runs on TFLM and LiteRT's default kernels only.
    """
    try:
        return litert_integer_outputs(model_bytes, x, output_detail, kernels="reference")
    except ValueError as error:
        if "Didn't find op" not in str(error):
            raise
        return None


def litert_integer_outputs(model_bytes: bytes, x: np.ndarray, output_detail: dict[str, Any],
                           kernels: str = "default") -> np.ndarray:
    """LiteRT's integer outputs for float images ``x``, via :func:`qlab.conversion.tflite.predict_tflite`.

    ``predict_tflite`` hands back ``(q - zero_point) * scale`` in float32; dividing by the scale
    and rounding recovers ``q`` exactly, since ``|q - zero_point| <= 255`` is far within float32's
    precision (the tests check it against LiteRT's int8 tensor). ``kernels``: LiteRT's kernel set
    (:data:`qlab.conversion.tflite.KERNELS`).
    """
    scale, zero_point = output_detail["quantization"]
    scores = predict_tflite(model_bytes, x, kernels=kernels)
    return np.rint(scores.astype(np.float64) / scale).astype(np.int64) + zero_point
