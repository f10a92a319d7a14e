"""Hiding the C++ start-up lines of TensorFlow and LiteRT, which Python's logging cannot reach."""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator


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
