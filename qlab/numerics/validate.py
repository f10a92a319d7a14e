"""Argument checks shared by the pure-numpy quantization modules.

Each check raises a ValueError (a TypeError where the kind of object is wrong) that names the argument, shows the value
and says what would be valid, so a learner sees the problem in their own terms.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

MIN_BITS, MAX_BITS = 2, 16


def check_int(value: Any, argument: str, low: int, high: int) -> int:
    """Return ``value`` as an int, or raise a ValueError unless it is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{argument} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def check_num_bits(num_bits: Any, low: int = MIN_BITS, high: int = MAX_BITS) -> int:
    """Return ``num_bits`` as an int, or raise a ValueError unless it is an integer in [low, high].

    qlab's numpy math takes 2 to 16 bits; a caller with a narrower limit (TFMOT's
    weight quantizers take at most 8) passes its own ``high``.
    """
    return check_int(num_bits, "num_bits", low, high)


def check_bool(value: Any, argument: str) -> bool:
    """Return ``value`` if it is a bool, else raise a TypeError naming ``argument``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argument} must be True or False, got {value!r}")
    return bool(value)


def finite_array(value: Any, argument: str, dtype: Any = np.float32) -> np.ndarray:
    """Return ``value`` as a non-empty, finite float array, or raise naming ``argument``."""
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{argument} must be numeric array-like, got {type(value).__name__}") from error
    if array.size == 0:
        raise ValueError(f"{argument} is empty (shape {array.shape}); it needs at least one value")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"{argument} contains {int(bad.sum())} NaN/inf value(s) "
            f"(first: {array[bad].flat[0]}); only finite values can be quantized"
        )
    return array


def check_axis(axis: Any, ndim: int, argument: str = "axis") -> int | None:
    """Return ``axis`` normalised to [0, ndim), None stays None; raise if out of range."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{argument} must be None or an int, got {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"{argument}={axis} is out of range for an array with {ndim} dimension(s)")
    return int(axis) % ndim


def check_names(names: str | Sequence[str], valid: Iterable[str], what: str) -> list[str]:
    """Normalise ``"all"``, a comma list or a sequence of names; raise a ValueError on unknown ones.

    ``what`` is the plural noun for messages, e.g. "models" -> "unknown model(s) ...".
    """
    valid = list(valid)
    if isinstance(names, str):
        names = valid if names == "all" else [n.strip() for n in names.split(",")]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        singular = what[:-1]
        raise ValueError(f"unknown {singular}(s) {unknown or names!r}; valid {what}: "
                         f"{', '.join(valid)} (or 'all')")
    return names
