"""AdaRound on small seeded models: grid, reconstruction, accuracy, the study table, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq.adaround import _LayerProblem, _layer_inputs, _soft_kernel, adaround_weights
from qlab.conversion.converter import convert
from qlab.ptq.batch_norm_folding import fold_batch_norm
from qlab.zoo.keras2 import keras
from qlab.zoo.models import build_model, compile_for_training, mnist_for, predict_keras
from qlab.zoo.seed import set_seed
from qlab.conversion.tflite_file import weight_tensors
from qlab.ptq.weight_bits import fake_quantize_weights
from qlab.numerics.adaround import adaround_scales, initial_rounding_logits, soft_weights


def _small_model(seed: int = 0):
    """Conv -> BN -> ReLU -> depthwise -> BN -> ReLU -> dense: every AdaRound path, random weights."""
    set_seed(seed)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((10, 10, 2)),
        layers.Conv2D(6, 3, use_bias=False, name="conv"), layers.BatchNormalization(name="bn1"),
        layers.ReLU(name="relu1"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw"),
        layers.BatchNormalization(name="bn2"), layers.ReLU(name="relu2"),
        layers.Flatten(name="flatten"), layers.Dense(5, name="logits")])
    rng = np.random.default_rng(seed)
    for bn in ("bn1", "bn2"):  # non-trivial statistics so the fold matters
        gamma, beta, mean, var = model.get_layer(bn).get_weights()
        model.get_layer(bn).set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.1, beta.shape),
                                         rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, var.shape)])
    return model, rng.uniform(0, 1, (96, 10, 10, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def small():
    model, x = _small_model()
    rounded, table = adaround_weights(model, x, 3, per_channel=False, iterations=150, seed=0, verbose=False)
    return model, x, rounded, table


def test_tensorflow_soft_kernel_matches_the_numpy_math():
    model, x = _small_model()
    folded = fold_batch_norm(model)
    inputs = _layer_inputs(folded, "dw", x)
    problem = _LayerProblem(folded, "dw", inputs, inputs, 3, per_channel=True)
    v = np.random.default_rng(3).normal(scale=2.0, size=problem.flat.shape).astype(np.float32)
    kernel, _ = _soft_kernel(problem, v)
    expected = soft_weights(problem.flat, v, problem.scale, 3).reshape(problem.kernel.shape)
    np.testing.assert_allclose(kernel.numpy(), expected, atol=1e-6)
    start, _ = _soft_kernel(problem, initial_rounding_logits(problem.flat, problem.scale))
    np.testing.assert_allclose(start.numpy(), problem.kernel, atol=1e-5)  # starts at the float kernel


def test_every_weight_is_on_the_grid_within_one_step(small):
    model, _, rounded, table = small
    folded = fold_batch_norm(model)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in rounded.layers)
    for name in ("conv", "dw", "logits"):
        w = folded.get_layer(name).get_weights()[0]
        flat = w.reshape(*w.shape[:2], -1) if name == "dw" else w
        scale = adaround_scales(flat, 3, per_channel=False)
        codes = rounded.get_layer(name).get_weights()[0].reshape(flat.shape) / scale
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-4)  # exactly on the grid
        assert np.abs(codes).max() <= 3 + 1e-4  # 3 bits: levels -3..3
        assert np.all(np.abs(codes - flat / scale) < 1 + 1e-4)  # floor or ceil of W / s
        # biases stay the folded float ones
        np.testing.assert_array_equal(rounded.get_layer(name).get_weights()[1],
                                      folded.get_layer(name).get_weights()[1])
    assert list(table.index) == ["conv", "dw", "logits"]
    assert (table["flipped share"] > 0).any() and (table["flipped share"] < 0.5).all()


def test_adarounded_weights_survive_conversion_as_3_bit_levels(small):
    _, x, rounded, _ = small
    tensors = weight_tensors(convert(rounded, "int8_per_tensor", x[:32]))
    assert len(tensors) == 3 and (tensors["dtype"] == "int8").all()
    assert (tensors["levels"] <= 7).all() and (tensors["levels"] >= 3).all()


def test_adaround_reconstructs_every_layer_better_than_nearest(small):
    _, _, _, table = small
    assert (table["AdaRound MSE"] <= table["nearest MSE"]).all(), table
    assert (table["AdaRound MSE"] < 0.9 * table["nearest MSE"]).any(), table


def test_nearest_mse_column_is_what_nearest_rounding_gives(small):
    model, x, _, table = small
    nearest = fake_quantize_weights(model, 3, per_channel=False)
    folded = fold_batch_norm(model)
    first_nearest = keras.Model(nearest.inputs, nearest.get_layer("relu1").output)(x)
    first_float = keras.Model(folded.inputs, folded.get_layer("relu1").output)(x)
    mse = float(np.mean((np.asarray(first_nearest) - np.asarray(first_float)) ** 2))
    assert table.loc["conv", "nearest MSE"] == pytest.approx(mse, rel=1e-3)


def test_later_layers_see_the_rounded_earlier_layers(small):
    """Asymmetric reconstruction: dw's target is the float model, its input the rounded conv's output."""
    model, x, rounded, table = small
    folded = fold_batch_norm(model)
    mixed = fold_batch_norm(rounded)  # a copy: conv AdaRounded, dw set to nearest below
    nearest_dw = fake_quantize_weights(model, 3, per_channel=False).get_layer("dw").get_weights()
    mixed.get_layer("dw").set_weights(nearest_dw)
    outputs = [np.asarray(keras.Model(m.inputs, m.get_layer("relu2").output)(x)) for m in (mixed, folded)]
    assert table.loc["dw", "nearest MSE"] == pytest.approx(np.mean((outputs[0] - outputs[1]) ** 2), rel=1e-3)


@pytest.fixture(scope="module")
def trained_cnn():
    """mnist_cnn trained on 4,000 images for one epoch: good enough for rounding to matter."""
    (x_train, y_train), (x_test, y_test) = mnist_for("mnist_cnn", "full")
    model = compile_for_training(build_model("mnist_cnn", seed=0), 2e-3)
    model.fit(x_train[:4000], y_train[:4000], batch_size=64, epochs=1, verbose=0)
    return model, x_train[4000:4256], x_test[:1000], y_test[:1000]


@pytest.mark.parametrize("num_bits", [2, 3])
def test_adaround_does_not_lose_accuracy_against_nearest(trained_cnn, num_bits):
    model, x_calib, x_test, y_test = trained_cnn
    rounded, _ = adaround_weights(model, x_calib, num_bits, per_channel=False, iterations=200, verbose=False)
    accuracy = {name: float(np.mean(predict_keras(m, x_test).argmax(1) == y_test)) for name, m in
                (("nearest", fake_quantize_weights(model, num_bits, False)), ("adaround", rounded))}
    assert accuracy["adaround"] > accuracy["nearest"], accuracy  # measured: +1.1 and +0.8 points


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_bits": 1}, ValueError, "num_bits"),
    ({"num_bits": 9}, ValueError, "num_bits"),
    ({"x_calib": np.zeros((0, 10, 10, 2), np.float32)}, ValueError, "x_calib is empty"),
    ({"x_calib": np.full((4, 10, 10, 2), np.nan, np.float32)}, ValueError, "x_calib contains"),
    ({"x_calib": np.zeros((4, 28, 28, 1), np.float32)}, ValueError,
     r"x_calib must have shape \(n, 10, 10, 2\)"),
    ({"x_calib": "images"}, TypeError, "x_calib"),
    ({"per_channel": "yes"}, TypeError, "per_channel"),
    ({"iterations": 0}, ValueError, "iterations"),
])
def test_bad_input_names_the_argument(kwargs, error, message):
    model, x = _small_model()
    arguments = {"model": model, "x_calib": x[:4], "num_bits": 3, "iterations": 2, "verbose": False, **kwargs}
    with pytest.raises(error, match=message):
        adaround_weights(**arguments)


def test_unsupported_layer_type_is_named():
    set_seed(0)
    model = keras.Sequential([keras.Input((12, 3)), keras.layers.Conv1D(4, 3, name="conv1d"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="'conv1d' is a Conv1D"):
        adaround_weights(model, np.zeros((4, 12, 3), np.float32), 4, verbose=False)


def test_nested_model_is_refused():
    inner, x = _small_model()
    outer = keras.Sequential([keras.Input((10, 10, 2)), inner])
    with pytest.raises(TypeError, match="nested model"):
        adaround_weights(outer, x[:4], 4, verbose=False)
