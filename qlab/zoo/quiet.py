"""Hiding the C++ lines of TensorFlow and LiteRT that Python's logging cannot reach, and only those."""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

#: C++ lines that TensorFlow and LiteRT print to stderr although nothing is wrong.
#: ``NodeDef mentions attribute use_unbounded_threadpool``: TensorFlow 2.21's tf.data
#: graph carries an attribute its own MapDataset op does not declare; it is logged at
#: error level when ``fit`` builds its input pipeline, and discarded. The other two come with every LiteRT
#: interpreter and every full-integer conversion.
HARMLESS_NATIVE_LINES = (
    re.compile(r"NodeDef mentions attribute use_unbounded_threadpool which is not in the op "
               r"definition"),
    re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"),
    re.compile(r"^fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, "
               r"output_inference_type: \w+$"),
)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration of the block.

    TensorFlow's start-up lines (oneDNN notices, "Could not find cuda drivers",
    "failed call to cuInit" on a CPU-only machine) and LiteRT's "Created TensorFlow
    Lite XNNPACK delegate" are written by C++ before any logging is configured, so
    TF_CPP_MIN_LOG_LEVEL does not hide them; in a notebook they look like errors.
    Python exceptions are unaffected. ``QLAB_TF_VERBOSE=1`` shows the lines again.
    """
    if os.environ.get("QLAB_TF_VERBOSE") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextmanager
def tflite_chatter_silenced() -> Iterator[None]:
    """Hide the TFLite converter's and quantization debugger's routine noise.

    Every full-integer conversion prints "fully_quantize: 0, inference_type: 6 ..." from
    C++ and warns "Statistics for quantized inputs were expected"; the debugger warns that
    it uses the deprecated ``tf.lite.Interpreter`` internally. None of it is actionable
    for a learner. Errors still raise as Python exceptions with their messages.
    """
    with warnings.catch_warnings(), native_stderr_silenced():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        yield


def is_harmless_native_line(line: str) -> bool:
    """Whether ``line`` (without its newline) is one of :data:`HARMLESS_NATIVE_LINES`."""
    return any(pattern.search(line) for pattern in HARMLESS_NATIVE_LINES)


def _forward_lines(source: BinaryIO, write: Callable[[str], None], keep_all: bool) -> None:
    with source:
        for raw in source:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if keep_all or not is_harmless_native_line(line):
                write(line)


@contextmanager
def harmless_lines_filtered(write: Callable[[str], None]) -> Iterator[int]:
    """A pipe for a child process's stderr that drops only :data:`HARMLESS_NATIVE_LINES`.

    Yields the pipe's write end (a file descriptor to give the child as its stderr);
    every other line, errors included, is passed to ``write`` (without its newline) by
    a background thread as soon as the line is complete. On leaving the block the
    write end is closed and the rest is forwarded once the child has exited.
    ``QLAB_TF_VERBOSE=1`` forwards every line. ``qlab run`` uses it for its kernels.
    """
    read_end, write_end = os.pipe()
    forwarder = threading.Thread(
        target=_forward_lines, name="qlab-stderr-filter", daemon=True,
        args=(os.fdopen(read_end, "rb"), write, os.environ.get("QLAB_TF_VERBOSE") == "1"))
    forwarder.start()
    try:
        yield write_end
    finally:
        os.close(write_end)
        forwarder.join(timeout=10)  # a child that outlives the block must not hang the caller
