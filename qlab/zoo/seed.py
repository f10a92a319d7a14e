"""Explicit seeding. Importing qlab seeds nothing; notebooks call ``qlab.set_seed(SEED)``."""

from __future__ import annotations

import random

import numpy as np


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python's ``random``, NumPy and TensorFlow with ``seed``.

    With ``deterministic=True`` TensorFlow is also asked for deterministic ops,
    so two CPU runs with the same seed and config give identical results.
    Taught in ``00_start_here``; every later lesson calls it in its setup.

    Args:
        seed: a non-negative integer below 2**32.
        deterministic: enable ``tf.config.experimental.enable_op_determinism``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    from qlab.zoo.keras2 import keras, tf  # TensorFlow is imported only when needed

    keras.utils.set_random_seed(seed)  # Python, NumPy and tf.random in one call
    if deterministic:
        tf.config.experimental.enable_op_determinism()
