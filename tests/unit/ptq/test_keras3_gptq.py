"""Keras 3's GPTQ and AWQ, measured: argument checks and the round-to-nearest reference (tiny models, no training)."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq import keras3_gptq as kg


def _tiny(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 64))
    hidden = keras.layers.Dense(32, name="first")(inputs)
    return keras.Model(inputs, keras.layers.Dense(8, name="last")(hidden))


@pytest.mark.parametrize("method, bits, group_size, message", [
    ("int3", 3, 128, "method must be one of"), ("awq", 3, 128, "weight_bits for awq"),
    ("gptq", 5, 128, "weight_bits for gptq"), ("gptq", 1, 128, "weight_bits for gptq"),
    ("int4", 8, 128, "weight_bits for int4"), ("gptq", True, 128, "weight_bits"),
    ("gptq", 4, 0, "group_size must be a positive"), ("gptq", 4, -1, "group_size"),
    ("awq", 4, 32.0, "group_size"), ("int4", 4, True, "group_size"),
])
def test_bad_rows_are_named(method, bits, group_size, message):
    with pytest.raises(ValueError, match=message):
        kg.check_row(method, bits, group_size)


def test_round_to_nearest_by_hand():
    # one group [-3, 3, 6] on 2 bits: scale 3, zero 1 -> -1 + 1, 1 + 1, 2 + 1
    assert kg.round_to_nearest([[-3.0], [3.0], [6.0]], 2, 4).ravel().tolist() == [0, 2, 3]
    # groups of 2: [-3, 3] has scale 2, zero round(1.5) = 2 -> round(0.5) = 0 (half to even) and 3.5 -> clipped 3;
    # [6] is padded with a zero, as Keras pads it, so its range is [0, 6]: scale 2, zero 0 -> 3
    assert kg.round_to_nearest([[-3.0], [3.0], [6.0]], 2, 2).ravel().tolist() == [0, 3, 3]


def test_the_reference_reproduces_keras_int4_and_sees_a_different_kernel():
    model = _tiny()
    quantized = kg.calibrated_copy(model, "int4", 4, 16)
    for layer in kg.quantized_layers(quantized):  # Keras's own rounding, read back from the layer
        float_kernel = model.get_layer(layer.name).kernel.numpy()
        assert np.array_equal(kg.integer_weights(layer), kg.round_to_nearest(float_kernel, 4, 16))
    assert kg.share_differing(quantized, model, 4, 16) == 0.0
    assert kg.share_differing(quantized, _tiny(seed=1), 4, 16) > 0.5  # other weights, other integers


@pytest.mark.parametrize("calibration, message", [
    (None, "calibration data is required"), (np.zeros((0, 4, 64)), "calibration is empty"),
    (np.zeros((3, 4, 63)), r"shape \(n, 4, 64\)"), (np.full((2, 4, 64), np.nan), "finite"),
])
def test_bad_calibration_is_named(calibration, message):
    with pytest.raises(ValueError, match=message):
        kg.calibrated_copy(_tiny(), "gptq", 4, 32, calibration)


def test_blocks_must_name_layers_and_cover_every_quantized_layer():
    model = _tiny()
    calibration = np.random.default_rng(0).random((2, 4, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="not found: .'nowhere'"):
        kg.calibrated_copy(model, "gptq", 4, 32, calibration, block_outputs=["nowhere"])
    with pytest.raises(ValueError, match=r"layers \['last'\] lie in no block"):
        kg.calibrated_copy(model, "awq", 4, 32, calibration, block_outputs=["first"])


def test_a_tf_keras_model_is_refused_by_name():
    from qlab.zoo.keras2 import keras as tf_keras

    model = tf_keras.Sequential([tf_keras.Input((8,)), tf_keras.layers.Dense(4)])
    with pytest.raises(TypeError, match="Keras 3"):
        kg.calibrated_copy(model, "gptq", 4, 32, np.zeros((1, 8)))


def test_the_table_measures_each_row_and_what_the_file_stores():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 64))
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Dense(32, activation="relu", name="first")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="last")(pooled))
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4, 64)).astype(np.float32), rng.integers(0, 3, 40)
    with pytest.raises(ValueError, match="group_size"):
        kg.keras3_calibrated_table(model, None, x, y, rows=[("int4", 4, 0)])
    table = kg.keras3_calibrated_table(model, None, x, y, rows=[("int4", 4, 16)], files=True).set_index("method")
    assert table.loc["float32", "agreement with float"] == 1.0
    assert table.loc["float32", "LiteRT accuracy"] == table.loc["float32", "Keras accuracy"]
    assert table.loc["int4", "differs from round-to-nearest"] == 0.0
    assert table.loc["int4", "weight bytes in memory"] < table.loc["float32", "weight bytes in memory"]
    # this small graph's dequantization folds into float32 kernels; the encoder's keeps uint8/int8 codes
    assert table.loc["int4", "file constants"].startswith("float32") and table.loc["int4", "file bytes"] > 0
    assert 0.0 <= table.loc["int4", "LiteRT accuracy"] <= 1.0
