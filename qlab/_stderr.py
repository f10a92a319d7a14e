"""Hiding the C++ start-up lines of TensorFlow and LiteRT, which Python's logging cannot reach."""

from __future__ import annotations

import os
import sys
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
