"""Keras 3's model.quantize, measured: argument checks and the bytes in memory (no training needed)."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq import keras3_quantize as kq


def _tiny():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(4)])


@pytest.mark.parametrize("mode, block_size, message", [
    ("int2", None, "mode must be one of"), ("float8", None, "mode must be one of"),
    ("int8", 32, "int8 has no block size"), ("int4", 0, "block_size"), ("int4", True, "block_size"),
])
def test_bad_modes_are_named(mode, block_size, message):
    with pytest.raises(ValueError, match=message):
        kq.check_mode(mode, block_size)


def test_a_quantized_copy_leaves_the_model_float_and_holds_int8_weights():
    model = _tiny()
    before = [w.copy() for w in model.get_weights()]
    copy = kq.quantized_copy(model, "int8")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert kq.weight_bytes(model) == {"float32": 4 * (8 * 16 + 16 + 16 * 4 + 4)}
    in_memory = kq.weight_bytes(copy)
    assert in_memory["int8"] == 8 * 16 + 16 * 4  # the kernels, one byte a weight
    x = np.random.default_rng(0).random((5, 8)).astype(np.float32)
    assert np.abs(copy.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 0.1


def test_a_tf_keras_model_is_refused_by_name():
    from qlab.zoo.keras2 import keras as tf_keras

    model = tf_keras.Sequential([tf_keras.Input((8,)), tf_keras.layers.Dense(4)])
    with pytest.raises(TypeError, match="Keras 3"):
        kq.quantized_copy(model, "int8")
