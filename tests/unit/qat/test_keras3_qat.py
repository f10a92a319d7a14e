"""Keras 3 QAT by fake-quantized kernels: the grid is TensorFlow's per-channel fake quant, gradients go straight through."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.qat import keras3_qat


def _model():
    import keras

    keras.utils.set_random_seed(0)
    tokens = keras.Input((4, 6))
    x = keras.layers.MultiHeadAttention(2, 3, name="attention")(tokens, tokens)
    x = keras.layers.Dense(5, name="ff")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(tokens, x)


def test_the_reduced_axes_are_the_ones_the_einsum_sums_over():
    model = _model()
    query = model.get_layer("attention")._query_dense
    output = model.get_layer("attention")._output_dense
    assert keras3_qat.reduced_axes(model.get_layer("ff")) == [0]
    assert query.equation.split("->")[1].endswith("de") and keras3_qat.reduced_axes(query) == [0]
    assert keras3_qat.reduced_axes(output) == [0, 1]  # (heads, head size, model width): sums heads and size


def test_kernels_are_tensorflows_per_channel_fake_quant_and_train_straight_through():
    import keras
    import tensorflow as tf

    model = _model()
    qat, chosen = keras3_qat.fake_quant_kernels(model, r".*(attention/query|ff)", 2)
    assert chosen == ["attention/query", "ff"]
    dense = qat.get_layer("ff")
    kernel = np.asarray(dense._kernel)
    bound = np.abs(kernel).max(axis=0)
    expected = tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -bound, bound, num_bits=2,
                                                                        narrow_range=True).numpy()
    np.testing.assert_allclose(np.asarray(dense.kernel), expected, rtol=0, atol=1e-6)
    assert all(len(np.unique(np.round(expected[:, j], 6))) <= 3 for j in range(expected.shape[1]))
    query = qat.get_layer("attention")._query_dense
    assert len(np.unique(np.round(np.asarray(query.kernel)[:, 0, 0], 6))) <= 3
    # the original keeps float kernels; the gradient of the loss reaches the float kernel (straight through)
    assert len(np.unique(np.asarray(model.get_layer("ff").kernel))) == kernel.size
    x = np.random.default_rng(0).random((3, 4, 6)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(qat(x) ** 2)
    gradient = tape.gradient(loss, dense._kernel.value if hasattr(dense._kernel, "value") else dense._kernel)
    assert gradient is not None and np.any(np.asarray(gradient) != 0)


def test_bad_input_is_named():
    from qlab.zoo.keras2 import keras as tf_keras

    with pytest.raises(ValueError, match="no Dense or EinsumDense layer's path matches"):
        keras3_qat.fake_quant_kernels(_model(), r"nothing", 2)
    with pytest.raises(ValueError, match="num_bits"):
        keras3_qat.fake_quant_kernels(_model(), r".*", 1)
    with pytest.raises(TypeError, match="Keras 3"):
        keras3_qat.fake_quant_kernels(tf_keras.Sequential([tf_keras.Input((2,)), tf_keras.layers.Dense(2)]), ".*", 2)
