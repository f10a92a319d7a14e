"""Keras 3 models rebuilt in tf_keras: layers, weights, the output check and the clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.zoo import keras3 as k3
from qlab.zoo.keras2 import keras as tf_keras

keras = pytest.importorskip("keras")
if not keras.__version__.startswith("3"):
    pytest.skip("Keras 3 is not installed", allow_module_level=True)
L = keras.layers


def _trained_like(model):
    """Give every weight (batch-norm statistics too) non-default values, so a lost weight shows."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if "variance" in w.name
                           else rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.weights])
    return model


def sequential_model():
    keras.utils.set_random_seed(0)
    return _trained_like(keras.Sequential([
        L.Input((12, 12, 1)), L.Rescaling(1 / 255, offset=-0.5), L.Conv2D(4, 3, use_bias=False),
        L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(), L.AveragePooling2D(1),
        L.Dropout(0.3), L.Flatten(), L.Dense(3)], name="k3_sequential"))


def functional_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 10, 3), name="image")
    x = L.Normalization(mean=0.5, variance=0.25)(inputs)
    x = L.ZeroPadding2D(1)(x)
    a = L.Conv2D(6, 3, activation="relu")(x)
    b = L.DepthwiseConv2D(3, padding="same")(a)
    b = L.BatchNormalization()(b)
    b = L.Activation("relu")(b)
    s = L.Add()([a, b])
    c = L.Concatenate()([s, L.SeparableConv2D(6, 3, padding="same")(a)])
    g = L.Reshape((3, 4))(L.GlobalAveragePooling2D()(c))
    outputs = L.Dense(4)(L.Flatten()(g))
    return _trained_like(keras.Model(inputs, outputs, name="k3_functional"))


def pixels(shape, n=8):
    return np.random.default_rng(0).uniform(0, 255, (n, *shape)).astype(np.float32)


def test_sequential_model_is_rebuilt_with_the_same_layers_weights_and_outputs():
    model = sequential_model()
    rebuild = k3.rebuild_in_tf_keras(model, pixels((12, 12, 1)))
    assert isinstance(rebuild.model, tf_keras.Sequential)
    assert [type(layer).__name__ for layer in rebuild.model.layers] == \
        [type(layer).__name__ for layer in model.layers]
    assert [layer.name for layer in rebuild.model.layers] == [layer.name for layer in model.layers]
    for old, new in zip(model.layers, rebuild.model.layers):
        for a, b in zip(old.get_weights(), new.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert rebuild.model.layers[0].get_config()["offset"] == -0.5
    # independent of the check inside: predictions of the two models agree
    x = pixels((12, 12, 1), 4)
    np.testing.assert_allclose(rebuild.model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert 0 <= rebuild.max_abs_diff <= 1e-4 and rebuild.samples == 8
    assert "differ by at most" in repr(rebuild)


def test_functional_graph_with_branches_is_rebuilt():
    model = functional_model()
    rebuild = k3.rebuild_in_tf_keras(model)  # default inputs: uniform [0, 1) images
    kinds = {type(layer).__name__ for layer in rebuild.model.layers}
    assert {"Add", "Concatenate", "DepthwiseConv2D", "SeparableConv2D", "Normalization", "ZeroPadding2D",
            "Reshape", "GlobalAveragePooling2D"} <= kinds
    x = np.random.default_rng(2).random((5, 10, 10, 3), dtype=np.float32)
    np.testing.assert_allclose(rebuild.model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_nested_model_is_rebuilt_whole():
    inner = keras.Sequential([L.Input((6,)), L.Dense(5, activation="relu"), L.Dense(4)], name="inner")
    inputs = keras.Input((6,))
    model = _trained_like(keras.Model(inputs, L.Dense(3)(inner(inputs)), name="outer"))
    _trained_like(inner)
    rebuild = k3.rebuild_in_tf_keras(model)
    x = np.random.default_rng(3).random((4, 6), dtype=np.float32)
    np.testing.assert_allclose(rebuild.model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_an_output_mismatch_names_the_largest_difference():
    model = sequential_model()
    rebuild = k3.rebuild_in_tf_keras(model, pixels((12, 12, 1)))
    dense = rebuild.model.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias + np.array([0, 0.5, 0], np.float32)])  # output 1 moves by 0.5
    with pytest.raises(k3.Keras3RebuildError, match=r"differ by up to 0\.5 \(sample \d+, output \(1,\)\)"):
        k3.check_rebuild(model, rebuild.model, pixels((12, 12, 1)))
    assert k3.check_rebuild(model, rebuild.model, pixels((12, 12, 1)), tolerance=1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="tolerance must be a number >= 0"):
        k3.check_rebuild(model, rebuild.model, pixels((12, 12, 1)), tolerance=-1)


def test_custom_layer_is_named_with_what_still_works():
    class Doubler(L.Layer):
        def call(self, x):
            return 2 * x

    model = keras.Sequential([L.Input((4,)), L.Dense(4), Doubler(name="doubler"), L.Dense(2)], name="mine")
    with pytest.raises(k3.Keras3RebuildError) as caught:
        k3.rebuild_in_tf_keras(model)
    message = str(caught.value)
    assert "layer 'doubler'" in message and "Doubler" in message and "'mine'" in message
    assert "post-training variant" in message and "QAT variants" in message
    assert "\n" not in message


def test_lambda_layer_is_refused_with_its_reason():
    model = keras.Sequential([L.Input((4,)), L.Lambda(lambda t: t + 1, name="plus_one"), L.Dense(2)])
    with pytest.raises(k3.Keras3RebuildError, match=r"layer 'plus_one' \(keras\.\S*Lambda\).*Python code"):
        k3.rebuild_in_tf_keras(model)


def test_only_keras3_models_are_rebuilt():
    model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    assert not k3.is_keras3_model(model) and k3.as_tf_keras(model) is model
    assert k3.is_keras3_model(keras.Sequential([L.Input((4,)), L.Dense(2)]))
    with pytest.raises(TypeError, match="must be a Keras 3 model"):
        k3.rebuild_in_tf_keras(model)


def test_keras3_files_are_told_from_keras2_files(tmp_path):
    model = keras.Sequential([L.Input((4,)), L.Dense(2)])
    model.save(tmp_path / "k3.keras")
    assert k3.saved_keras_version(tmp_path / "k3.keras").startswith("3.")
    assert k3.is_keras3_file(tmp_path / "k3.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    assert not k3.is_keras3_file(tmp_path / "junk.keras")
    loaded = k3.load_keras3_model(tmp_path / "k3.keras")
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_regularizers_carry_over_and_initializers_are_dropped():
    layer = L.Dense(3, kernel_regularizer="l2", kernel_initializer="zeros", name="d")
    layer.build((None, 4))
    config = k3.tf_keras_config(layer)
    assert config["name"] == "d" and config["dtype"] == "float32"
    assert "kernel_initializer" not in config
    assert type(config["kernel_regularizer"]).__name__ == "L2"


def test_keras3_fit_progress_counts_every_training_step(monkeypatch):
    from qlab.zoo import progress

    monkeypatch.setenv(progress.PROGRESS_ENV, "1")
    (callback,) = progress.keras3_fit_progress("training a Keras 3 model")
    assert isinstance(callback, keras.callbacks.Callback)  # Keras 3 refuses tf_keras callbacks
    counted = []
    monkeypatch.setattr(progress.ProgressBar, "update", lambda self, steps=1: counted.append(steps))
    model = keras.Sequential([L.Input((3,)), L.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((10, 3), np.float32), np.zeros((10, 2), np.float32), batch_size=4, epochs=2,
              verbose=0, callbacks=[callback])
    assert sum(counted) == 6  # 2 epochs x 3 batches
    monkeypatch.setenv(progress.PROGRESS_ENV, "0")
    assert progress.keras3_fit_progress("off") == []
    with pytest.raises(TypeError, match="description must be a string"):
        progress.keras3_fit_progress(3)


def test_attention_is_named_with_why_and_the_reason_leaves_out_the_advice():
    tokens = L.Input((4, 8))
    attended = L.MultiHeadAttention(2, 4, name="attention")(tokens, tokens)
    model = keras.Model(tokens, L.Dense(2)(L.Add()([tokens, attended])), name="tiny_encoder")
    with pytest.raises(k3.Keras3RebuildError) as caught:
        k3.rebuild_in_tf_keras(model)
    reason = caught.value.reason
    assert reason.startswith("layer 'attention' (keras.") and "MultiHeadAttention" in reason
    assert "TFMOT cannot quantize attention" in reason and "model-optimization#718" in reason
    assert str(caught.value).startswith(reason + ". Every post-training variant") and "QAT" not in reason
