"""Batch-norm folding, cross-layer equalization, bias correction and N-bit weights on tiny seeded models."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.zoo.keras2 import keras, tf
from qlab.ptq import batch_norm_folding, bias_correction, equalize
from qlab.zoo.seed import set_seed
from qlab.ptq.weight_bits import fake_quantize_kernel, fake_quantize_weights

layers = keras.layers


def _randomize_batch_norms(model: keras.Model, rng: np.random.Generator) -> None:
    """Give every BatchNormalization unequal, non-trivial statistics (fresh ones are identities)."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.2, 3.0, n), rng.normal(0, 0.5, n),
                               rng.normal(0, 0.5, n), rng.uniform(0.05, 4.0, n)])


def mobilenet_like(relu6: bool = False) -> keras.Model:
    """conv -> BN -> ReLU(6) -> pad -> depthwise (x2) -> BN -> ReLU(6) -> 1x1 conv -> BN -> pool -> dense."""
    set_seed(0)
    act = (lambda name: layers.ReLU(6.0, name=name)) if relu6 else (lambda name: layers.ReLU(name=name))
    inputs = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, use_bias=False, name="conv")(inputs)
    x = act("relu_a")(layers.BatchNormalization(name="bn_a")(x))
    x = layers.ZeroPadding2D(1, name="pad")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="dw")(x)
    x = act("relu_b")(layers.BatchNormalization(name="bn_b")(x))
    x = layers.Conv2D(6, 1, use_bias=False, name="pw")(x)
    x = layers.BatchNormalization(name="bn_c")(x)
    x = layers.ReLU(name="relu_c")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(7, activation="relu", name="dense")(x)
    outputs = layers.Dense(4, name="logits")(x)
    model = keras.Model(inputs, outputs, name="tiny_mobilenet")
    _randomize_batch_norms(model, np.random.default_rng(0))
    return model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 1, (32, 12, 12, 3)).astype(np.float32)


def _kernel_bias(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def test_fold_batch_norm_removes_batch_norms_and_keeps_outputs(images):
    model = mobilenet_like()
    folded = batch_norm_folding.fold_batch_norm(model)
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in folded.layers)
    assert all(folded.get_layer(n).use_bias for n in ("conv", "dw", "pw"))
    reference = model.predict(images, verbose=0)
    assert np.abs(reference).max() > 0.1  # a model of zeros would pass anything
    assert equalize.max_output_difference(model, folded, images) < 1e-5 * np.abs(reference).max()


def test_fold_batch_norm_by_hand_for_one_dense_layer():
    set_seed(0)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="d"),
                              layers.BatchNormalization(epsilon=1e-3, name="bn")])
    model.get_layer("d").set_weights([np.array([[1., 2.], [3., 4.], [5., 6.]]), np.array([1., -1.])])
    model.get_layer("bn").set_weights([np.array([2., 1.]), np.array([0.5, 0.]), np.array([1., -1.]),
                                       np.array([3.999, 0.249])])
    kernel, bias = batch_norm_folding.fold_batch_norm(model).get_layer("d").get_weights()
    # scale = gamma / sqrt(var + eps) = [2 / 2, 1 / 0.5] = [1, 2]; bias = (b - mean) * scale + beta
    np.testing.assert_allclose(kernel, [[1., 4.], [3., 8.], [5., 12.]], rtol=1e-6)
    np.testing.assert_allclose(bias, [0.5, 0.], atol=1e-6)


def test_cross_layer_equalization_keeps_outputs_and_equalizes_each_pair(images):
    model = mobilenet_like()
    equalized, report = equalize.cross_layer_equalization(model, relu6_to_relu=False, sweeps=200,
                                                          tolerance=1e-7)
    assert list(zip(report["first"], report["second"])) == [("conv", "dw"), ("dw", "pw"),
                                                            ("pw", "dense"), ("dense", "logits")]
    reference = model.predict(images, verbose=0)
    assert equalize.max_output_difference(model, equalized, images) < 1e-4 * np.abs(reference).max()
    # after convergence every shared channel has the same range on both sides (Nagel eq. 10)
    w = _kernel_bias(equalized)
    r1 = np.abs(w["conv"][0]).max(axis=(0, 1, 2))
    r2 = np.abs(w["dw"][0]).max(axis=(0, 1, 3))
    np.testing.assert_allclose(r1, r2, rtol=1e-3)
    assert (report["spread after"] <= report["spread before"] + 1e-6).sum() >= 2


def test_relu6_ends_pairs_unless_replaced(images):
    model = mobilenet_like(relu6=True)
    exact = equalize.equalization_pairs(batch_norm_folding.fold_batch_norm(model))
    assert [(p.first, p.second) for p in exact] == [("pw", "dense"), ("dense", "logits")]
    relu = batch_norm_folding.relu6_to_relu(model)
    assert all(layer.get_config().get("max_value") is None
               for layer in relu.layers if isinstance(layer, layers.ReLU))
    equalized, report = equalize.cross_layer_equalization(model, relu6_to_relu=True)
    assert len(report) == 4
    assert equalize.max_output_difference(relu, equalized, images) < 1e-4


def test_equalization_is_invariant_to_a_function_preserving_rescaling(images):
    model = mobilenet_like()
    rescaled = equalize.rescale_channels(model, spread=100.0, seed=3)
    reference = model.predict(images, verbose=0)
    assert equalize.max_output_difference(model, rescaled, images) < 1e-4 * np.abs(reference).max()
    factors = (np.abs(rescaled.get_layer("conv").get_weights()[0]).max(axis=(0, 1, 2))
               / np.abs(batch_norm_folding.fold_batch_norm(model).get_layer("conv").get_weights()[0]).max(axis=(0, 1, 2)))
    assert 10 < factors.max() / factors.min() <= 100 * 1.0001  # the rescaling really spread the channels
    a, _ = equalize.cross_layer_equalization(model, relu6_to_relu=False, sweeps=500, tolerance=1e-8)
    b, _ = equalize.cross_layer_equalization(rescaled, relu6_to_relu=False, sweeps=500, tolerance=1e-8)
    for name, weights in _kernel_bias(a).items():
        for x, y in zip(weights, b.get_layer(name).get_weights()):
            np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5 * np.abs(x).max())


def test_rescale_channels_pairs_argument(images):
    model = mobilenet_like()
    only = equalize.rescale_channels(model, pairs=[("pw", "dense")])
    folded = batch_norm_folding.fold_batch_norm(model)
    np.testing.assert_array_equal(only.get_layer("conv").get_weights()[0],
                                  folded.get_layer("conv").get_weights()[0])
    assert not np.allclose(only.get_layer("pw").get_weights()[0], folded.get_layer("pw").get_weights()[0])
    with pytest.raises(ValueError, match="pairs entry"):
        equalize.rescale_channels(model, pairs=[("conv", "logits")])


@pytest.mark.parametrize("spread", [1.0, 0.5, float("nan"), "100", True])
def test_rescale_channels_rejects_bad_spread(spread):
    with pytest.raises(ValueError, match="spread"):
        equalize.rescale_channels(mobilenet_like(), spread=spread)


@pytest.mark.parametrize("sweeps", [0, -1, 2.0, True, "20"])
def test_cross_layer_equalization_rejects_bad_sweeps(sweeps):
    with pytest.raises(ValueError, match="sweeps must be an integer >= 1"):
        equalize.cross_layer_equalization(mobilenet_like(), sweeps=sweeps)


@pytest.mark.parametrize("tolerance", [0.0, -1e-4, float("nan"), float("inf"), True, "1e-4"])
def test_cross_layer_equalization_rejects_bad_tolerance(tolerance):
    with pytest.raises(ValueError, match="tolerance must be a finite number > 0"):
        equalize.cross_layer_equalization(mobilenet_like(), tolerance=tolerance)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", None])
def test_rescale_channels_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        equalize.rescale_channels(mobilenet_like(), seed=seed)


def test_rescale_channels_accepts_a_numpy_integer_seed():
    model = mobilenet_like()
    a = equalize.rescale_channels(model, seed=np.int64(3))
    b = equalize.rescale_channels(model, seed=3)
    np.testing.assert_array_equal(a.get_layer("conv").get_weights()[0], b.get_layer("conv").get_weights()[0])


def test_models_without_pairs_or_not_keras2_are_rejected():
    set_seed(0)
    single = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    with pytest.raises(ValueError, match="no pair"):
        equalize.cross_layer_equalization(single)
    with pytest.raises(ValueError, match="no pair"):
        equalize.rescale_channels(single)
    with pytest.raises(ValueError, match="relu6_to_relu=True"):
        equalize.cross_layer_equalization(
            keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="relu6"), layers.Dense(2)]),
            relu6_to_relu=False)
    with pytest.raises(TypeError, match="tf_keras Model"):
        batch_norm_folding.fold_batch_norm("model.h5")


def test_keras3_model_is_rejected():
    keras3 = pytest.importorskip("keras")
    if not keras3.__version__.startswith("3."):
        pytest.skip("keras 3 is not installed")
    model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(3), keras3.layers.Dense(2)])
    with pytest.raises(TypeError, match="Keras 3"):
        equalize.cross_layer_equalization(model)


@pytest.mark.parametrize("num_bits", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("per_channel", [False, True])
def test_fake_quantize_kernel_matches_tensorflow(num_bits, per_channel):
    rng = np.random.default_rng(num_bits)
    kernel = (rng.normal(0, 1, (3, 3, 4, 5)) * rng.uniform(0.01, 2, 5)).astype(np.float32)
    ours = fake_quantize_kernel(kernel, num_bits, per_channel)
    if per_channel:
        bound = np.abs(kernel).reshape(-1, 5).max(axis=0)
        theirs = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            kernel, -bound, bound, num_bits=num_bits, narrow_range=True)
    else:
        bound = float(np.abs(kernel).max())
        theirs = tf.quantization.fake_quant_with_min_max_vars(
            kernel, -bound, bound, num_bits=num_bits, narrow_range=True)
    # the grids are identical, so every weight lands on the same point
    np.testing.assert_array_equal(ours, theirs.numpy())
    levels = [len(np.unique(ours[..., c])) for c in range(5)] if per_channel else [len(np.unique(ours))]
    assert max(levels) <= 2 ** num_bits - 1


def test_fake_quantize_kernel_by_hand():
    # 2 bits, narrow range: levels {-1, 0, 1} x max|w|
    out = fake_quantize_kernel(np.array([[-2.0], [-0.9], [0.4], [1.1], [2.0]], np.float32), 2, False)
    np.testing.assert_array_equal(out.ravel(), [-2.0, 0.0, 0.0, 2.0, 2.0])  # -0.45 and 0.2 steps round to 0


@pytest.mark.parametrize("num_bits", [1, 9, 2.5, "4"])
def test_fake_quantize_rejects_bad_bits(num_bits):
    with pytest.raises((ValueError, TypeError), match="num_bits"):
        fake_quantize_weights(mobilenet_like(), num_bits, per_channel=True)


def test_fake_quantize_weights_quantizes_every_kernel(images):
    quantized = fake_quantize_weights(mobilenet_like(), 3, per_channel=True)
    dw = quantized.get_layer("dw").get_weights()[0]
    flat = dw.reshape(3, 3, -1)
    assert max(len(np.unique(flat[..., c])) for c in range(flat.shape[-1])) <= 7
    assert len(np.unique(quantized.get_layer("logits").get_weights()[0])) <= 7 * 4
    with pytest.raises(TypeError, match="per_channel"):
        fake_quantize_weights(mobilenet_like(), 4, per_channel="yes")


def test_bias_correction_removes_the_mean_error_of_a_dense_layer():
    set_seed(0)
    model = keras.Sequential([keras.Input((16,)), layers.Dense(8, name="first"), layers.Dense(3, name="out")])
    x = np.random.default_rng(2).uniform(0, 1, (200, 16)).astype(np.float32)  # mean far from 0
    quantized = fake_quantize_weights(model, 2, per_channel=False)
    corrected = bias_correction.bias_correction(model, quantized, x)
    probe = lambda m: keras.Model(m.inputs, m.get_layer("first").output).predict(x, verbose=0).mean(axis=0)
    before = np.abs(probe(quantized) - probe(model)).max()
    after = np.abs(probe(corrected) - probe(model)).max()
    assert before > 0.01 and after < 1e-4
    with pytest.raises(ValueError, match="weight layers"):
        bias_correction.bias_correction(model, keras.Sequential([keras.Input((16,)), layers.Dense(3, name="x")]), x)
