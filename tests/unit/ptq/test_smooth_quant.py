"""SmoothQuant on small hand-made Keras 3 models: the scales, where they go, the same function, the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq import smooth_quant as sq
from qlab.ptq.norm_output_bits import fake_quant_norm_outputs, round_kernel_per_channel

EPS = 1e-6


def _norm_dense(outlier: float = 30.0, shape: tuple[int, ...] = (5, 4)):
    """tokens (5, 4) -> LayerNorm (channel 0's gamma an outlier) -> Dense(3), weights set by hand."""
    import keras

    inputs = keras.Input(shape, name="tokens")
    h = keras.layers.LayerNormalization(epsilon=EPS, name="norm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(h))
    model.get_layer("norm").set_weights([np.array([outlier, 1.0, 0.5, 2.0], np.float32),
                                         np.array([0.5, -0.25, 0.0, 1.0], np.float32)])
    kernel = np.array([[0.1, -0.2, 0.05], [1.0, 0.5, -2.0], [0.3, 0.3, 0.3], [-0.5, 4.0, 1.0]], np.float32)
    model.get_layer("dense").set_weights([kernel, np.array([0.1, 0.0, -0.1], np.float32)])
    return model


def _x(n: int = 20, shape: tuple[int, ...] = (5, 4), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + EPS) * gamma + beta


def test_the_scales_by_hand():
    # a = [4, 1], w = [1, 4]: alpha 0.5 gives s = [2, 0.5], and both channels end with range 2 in x and in w
    np.testing.assert_allclose(sq.smoothing_scales([4, 1], [1, 4], 0.5), [2, 0.5])
    np.testing.assert_allclose(sq.smoothing_scales([4, 1], [1, 4], 1.0), [4, 1])  # every x range becomes 1
    np.testing.assert_allclose(sq.smoothing_scales([4, 1], [1, 4], 0.0), [1, 0.25])  # every w range becomes 1
    np.testing.assert_allclose(sq.smoothing_scales([0, 9], [3, 0], 0.5), [1, 1])  # a dead channel is left alone


def test_smoothing_moves_the_scales_into_gamma_beta_and_the_kernel_rows_as_numpy_says():
    model, x = _norm_dense(), _x()
    gamma, beta = model.get_layer("norm").get_weights()
    kernel, bias = model.get_layer("dense").get_weights()
    a = np.abs(_layer_norm(x.astype(np.float64), gamma, beta)).reshape(-1, 4).max(0)
    s = np.sqrt(a) / np.sqrt(np.abs(kernel).max(1))  # alpha 0.5
    smoothed = sq.smooth_quant(model, x, alpha=0.5)
    new_gamma, new_beta = smoothed.get_layer("norm").get_weights()
    new_kernel, new_bias = smoothed.get_layer("dense").get_weights()
    np.testing.assert_allclose(new_gamma, gamma / s, rtol=1e-5)
    np.testing.assert_allclose(new_beta, beta / s, rtol=1e-5)
    np.testing.assert_allclose(new_kernel, kernel * s[:, None], rtol=1e-5)
    np.testing.assert_array_equal(new_bias, bias)
    np.testing.assert_array_equal(model.get_layer("norm").get_weights()[0], gamma)  # the original is untouched
    assert np.abs(smoothed.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-4
    # the outlier channel (gamma 30) no longer dominates the per-tensor range
    before = sq.channel_outliers(model, x).loc[0, "max / median"]
    after = sq.channel_outliers(smoothed, x).loc[0, "max / median"]
    assert before > 10 and after < before / 3


def _attention_model(query_only: bool = False):
    """LayerNorm -> MultiHeadAttention(h, h) (or (h, other)); a second LayerNorm feeds a Dense and a residual."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 8), name="tokens")
    h = keras.layers.LayerNormalization(name="norm1")(inputs)
    other = keras.layers.Dense(8, name="other")(inputs)
    h = keras.layers.MultiHeadAttention(2, 4, name="attention")(h, other if query_only else h)
    x = keras.layers.Add(name="residual1")([inputs, h])
    h = keras.layers.LayerNormalization(name="norm2")(x)
    h = keras.layers.Add(name="residual2")([keras.layers.Dense(8, name="ff")(h), h])  # norm2 read by a residual too
    h = keras.layers.LayerNormalization(name="norm3")(h)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D(name="pool")(
        keras.layers.Dense(8, activation="gelu", name="ff3")(h)))
    model = keras.Model(inputs, outputs)
    for name in ("norm1", "norm3"):  # make the gammas uneven so smoothing has something to move
        layer = model.get_layer(name)
        layer.set_weights([np.linspace(0.2, 5.0, 8).astype(np.float32), np.full(8, 0.1, np.float32)])
    return model


def test_every_projection_reading_the_norm_gets_the_same_scale_and_the_function_stays():
    model, x = _attention_model(), _x(16, (6, 8))
    pairs = sq.smoothing_pairs(model)
    assert pairs == [sq.SmoothingPair("norm1", ("attention/query", "attention/key", "attention/value")),
                     sq.SmoothingPair("norm3", ("ff3",))]  # norm2 also feeds a residual: not smoothable
    smoothed = sq.smooth_quant(model, x, alpha=0.75)
    s = model.get_layer("norm1").gamma.numpy() / smoothed.get_layer("norm1").gamma.numpy()
    for part in ("query", "key", "value"):
        before = getattr(model.get_layer("attention"), f"{part}_dense").kernel.numpy()
        after = getattr(smoothed.get_layer("attention"), f"{part}_dense").kernel.numpy()
        np.testing.assert_allclose(after, before * s[:, None, None], rtol=1e-5)
    np.testing.assert_array_equal(smoothed.get_layer("norm2").get_weights()[0],
                                  model.get_layer("norm2").get_weights()[0])
    assert np.abs(smoothed.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-4


def test_a_norm_passed_only_as_the_query_scales_only_the_query_projection():
    pairs = sq.smoothing_pairs(_attention_model(query_only=True))
    assert pairs[0] == sq.SmoothingPair("norm1", ("attention/query",))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), True, "0.5"])
def test_an_alpha_outside_0_1_is_named(alpha):
    with pytest.raises(ValueError, match="alpha must be a number in \\[0, 1\\]"):
        sq.smooth_quant(_norm_dense(), _x(), alpha=alpha)


def test_bad_calibration_data_and_a_model_without_pairs_are_named():
    import keras

    model = _norm_dense()
    with pytest.raises(ValueError, match="calibration data x is empty"):
        sq.smooth_quant(model, np.zeros((0, 5, 4), np.float32))
    bad = _x()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="calibration data x contains 1 NaN"):
        sq.smooth_quant(model, bad)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization()])
    with pytest.raises(ValueError, match="no LayerNormalization whose output only Dense or EinsumDense"):
        sq.smooth_quant(plain, np.ones((2, 4), np.float32))
    from qlab.zoo.keras2 import keras as tf_keras

    with pytest.raises(TypeError, match="Keras 3 model"):
        sq.smoothing_pairs(tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(3)]))
    with pytest.raises(ValueError, match="the same length"):
        sq.smoothing_scales([1, 2], [1, 2, 3])


def test_round_kernel_per_channel_matches_tensorflow_fake_quant_per_channel():
    import tensorflow as tf

    kernel = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    bound = np.abs(kernel).max(0)
    for num_bits in (3, 8):
        expected = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            kernel, -bound, bound, num_bits=num_bits, narrow_range=True).numpy()
        np.testing.assert_allclose(round_kernel_per_channel(kernel, num_bits), expected, atol=1e-6)
    # by hand: column max 2 at 2 bits -> levels -1, 0, 1 of step 2
    np.testing.assert_array_equal(round_kernel_per_channel([[2.0], [0.9], [-1.1]], 2), [[2.0], [0.0], [-2.0]])


def test_the_simulation_fake_quantizes_the_norm_output_per_tensor_as_tensorflow_does():
    import tensorflow as tf

    model, x = _norm_dense(outlier=3.0), _x()
    gamma, beta = model.get_layer("norm").get_weights()
    kernel, bias = model.get_layer("dense").get_weights()
    normed = _layer_norm(x.astype(np.float64), gamma, beta).astype(np.float32)
    low, high = min(normed.min(), 0.0), max(normed.max(), 0.0)
    quantized = tf.quantization.fake_quant_with_min_max_vars(normed, low, high, num_bits=4).numpy()
    expected = quantized @ round_kernel_per_channel(kernel, 8) + bias
    simulated = fake_quant_norm_outputs(model, x, num_bits=4, weight_bits=8).predict(x, verbose=0)
    assert np.abs(simulated - expected).max() < 1e-4
    float_weights = fake_quant_norm_outputs(model, x, num_bits=4, weight_bits=None).predict(x, verbose=0)
    assert np.abs(float_weights - (quantized @ kernel + bias)).max() < 1e-4
    assert np.abs(model.predict(x, verbose=0) - expected).max() > 1e-2  # the simulation did change something


def test_the_alpha_sweep_scores_the_unsmoothed_model_first_and_names_the_best_alpha():
    from qlab.ptq.norm_output_bits import alpha_sweep

    model, x = _norm_dense(shape=(4,)), _x(40, (4,))
    labels = model.predict(x, verbose=0).argmax(1)  # the float model's own answers: float accuracy is 1
    sweep = alpha_sweep(model, x, x, labels, num_bits=2, alphas=(0.0, 0.5, 1.0))
    assert list(sweep["alpha"])[1:] == [0.0, 0.5, 1.0] and np.isnan(sweep.loc[0, "alpha"])
    plain = fake_quant_norm_outputs(model, x, num_bits=2).predict(x, verbose=0).argmax(1)
    assert sweep.loc[0, "accuracy"] == np.mean(plain == labels)
    assert sweep.attrs["best alpha"] == sweep.loc[sweep.index[1:], "alpha"][sweep["accuracy"][1:].idxmax()]
    with pytest.raises(ValueError, match="alphas must name at least one"):
        alpha_sweep(model, x, x, labels, alphas=())
    with pytest.raises(ValueError, match="alpha must be a number in"):
        alpha_sweep(model, x, x, labels, alphas=(2.0,))
