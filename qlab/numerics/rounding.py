"""Rounding as TFLite's kernels do it.

numpy's ``np.round`` rounds half to even; TFLite's kernels call ``TfLiteRound``,
which is C++ ``std::round``: half away from zero. Every float-to-integer rounding
in qlab that stands for a TFLite kernel goes through :func:`tflite_round`.
(Integer divisions and fixed-point shifts have their own rules, named in
:mod:`qlab.numerics.fixedpoint` and :mod:`qlab.numerics.intkernels`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def tflite_round(value: Any) -> np.ndarray:
    """``TfLiteRound`` / ``std::round``: round half away from zero, keeping the float dtype.

    Computed from the integer part and the exact remainder, not as
    ``floor(|x| + 0.5)``, which wrongly rounds 0.49999997 up to 1 in float32.
    Taught in ``01_buckets`` (rounding) and ``04_post_training_quantization``
    (the integer kernels).
    """
    value = np.asarray(value)
    whole = np.trunc(value)
    fraction = value - whole  # exact for floats
    return whole + np.sign(value) * (np.abs(fraction) >= value.dtype.type(0.5))
