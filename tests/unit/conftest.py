"""Fixtures shared by the unit tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny():
    """Files of a tiny tf_keras CNN for the microcontroller runtime: ``int8``, ``float32``, ``int16x8`` (float
    islands), ``gelu`` (integer-only, with an op TFLM has no kernel for), and ``x``, the images they calibrate on.

    Made once per test process (about 6 s): five test modules use it, none changes it."""
    from qlab.conversion.converter import convert
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers

    def model(*extra):
        return keras.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                                 layers.Flatten(), *extra, layers.Dense(10)])

    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype(np.float32)
    plain, gelu = model(), model(layers.Dense(8, activation="gelu"))
    return {"int8": convert(plain, "int8_per_channel", x, 32), "float32": convert(plain, "float32"),
            "int16x8": convert(plain, "int16x8", x, 32), "gelu": convert(gelu, "int8_per_channel", x, 32),
            "x": x}
