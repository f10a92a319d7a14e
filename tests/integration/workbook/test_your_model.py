"""Bring-your-own-model: loading a saved model and running the variants on it."""

from __future__ import annotations

import numpy as np
import pytest

import qlab


@pytest.fixture(scope="module")
def tiny():
    from qlab.zoo.keras2 import keras

    qlab.set_seed(0)
    model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)], name="tiny")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    (x, y), (xt, yt) = qlab.mnist_for("mnist_cnn", "smoke")
    model.fit(x, y, epochs=1, verbose=0)
    return model, ((x, y), (xt[:200], yt[:200]))


def test_saved_model_round_trip_and_variants_measured(tiny, tmp_path, artifacts):
    model, data = tiny
    model.save(tmp_path / "tiny.h5")
    loaded = qlab.load_keras_model(tmp_path / "tiny.h5")
    result = qlab.compare_keras_model(loaded, data, variants="float32,int8_per_channel,qat_int8",
                                      fine_tune_samples=256, latency=False)
    table = result.table.set_index("variant")
    float_pred = model.predict(data[1][0], verbose=0).argmax(axis=1)
    assert table.loc["float32", "accuracy"] == pytest.approx(np.mean(float_pred == data[1][1]))
    assert table.loc["int8_per_channel", "size_ratio"] > 3
    assert 0.9 <= table.loc["qat_int8", "keras_tflite_agreement"] <= 1
    assert result.path.exists() and result.path.parent == artifacts / "results"


def test_keras3_files_load_as_keras3_models_and_custom_layers_get_a_clear_error(tiny, tmp_path):
    import keras as keras3  # Keras 3 is installed beside tf_keras

    k3 = keras3.Sequential([keras3.layers.Input((28, 28, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)])
    k3.save(tmp_path / "k3.keras")
    loaded = qlab.load_keras_model(tmp_path / "k3.keras")
    assert type(loaded).__module__.startswith("keras.") and loaded.input_shape == (None, 28, 28, 1)

    class Doubler(keras3.layers.Layer):
        def call(self, x):
            return 2 * x

    custom = keras3.Sequential([keras3.layers.Input((28, 28, 1)), Doubler(name="doubler"),
                                keras3.layers.Flatten(), keras3.layers.Dense(10)])
    with pytest.raises(ValueError, match="layer 'doubler' .*Doubler.*post-training variant"):
        qlab.compare_keras_model(custom, tiny[1], variants="float32,qat_int8", latency=False, save=False)


def test_missing_file_and_bad_data_are_named(tiny, tmp_path):
    model, ((x, y), test) = tiny
    with pytest.raises(FileNotFoundError, match="no model at"):
        qlab.load_keras_model(tmp_path / "nope.h5")
    with pytest.raises(ValueError, match=r"x_train examples have shape \(20, 28, 1\)"):
        qlab.compare_keras_model(model, ((x[:, :20], y), test))
    with pytest.raises(ValueError, match="x_train must be float32"):
        qlab.compare_keras_model(model, ((x.astype(np.float64), y), test))
    with pytest.raises(ValueError, match="y_train must be integer class labels"):
        qlab.compare_keras_model(model, ((x, y[:5]), test))
    with pytest.raises(ValueError, match="x_test is empty"):
        qlab.compare_keras_model(model, ((x, y), (x[:0], y[:0])))


def test_layer_support_table_flags_what_tfmot_cannot_quantize():
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)  # a fixed model: the same test every run
    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3, name="a"),
                              keras.layers.BatchNormalization(name="bn_after_dense"),
                              keras.layers.LayerNormalization(name="norm"), keras.layers.Dense(2, name="b")])
    table = qlab.layer_support_table(model).set_index("layer")
    assert table["supported"].to_dict() == {"a": True, "bn_after_dense": True, "norm": False, "b": True}
    error = qlab.expect_error(qlab.quantize_whole_model, model)
    assert error.type == "UnsupportedLayerError" and "'norm'" in error.message


def test_expect_error_fails_when_nothing_fails():
    with pytest.raises(AssertionError, match="expected to fail"):
        qlab.expect_error(lambda: 1)
