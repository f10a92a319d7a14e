"""Looking inside Keras models as the converter does: weight layers, folded batch norm, activations."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.zoo.introspect import (channel_ranges_table, following_batch_norm, fused_output_layer,
                                  layer_activations, layer_weights, model_activations, weight_layers)
from qlab.numerics.per_channel import channel_ranges_view


@pytest.fixture(scope="module")
def mobilenet():
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)  # a fixed model: every run checks the same weights
    return keras.applications.MobileNet(input_shape=(32, 32, 1), alpha=0.25, weights=None,
                                        classes=10)


def test_weight_layers_and_their_channel_axes(mobilenet):
    names = weight_layers(mobilenet)
    kinds = {type(mobilenet.get_layer(n)).__name__ for n in names}
    assert kinds == {"Conv2D", "DepthwiseConv2D"}  # MobileNet's classifier is a 1x1 conv
    depthwise = next(n for n in names if type(mobilenet.get_layer(n)).__name__ == "DepthwiseConv2D")
    lw = layer_weights(mobilenet, depthwise)
    channels = mobilenet.get_layer(depthwise).input_shape[-1]
    assert lw.kind == "DepthwiseConv2D" and lw.kernel.shape == (3, 3, channels)
    assert lw.channel_axis == 2
    conv = layer_weights(mobilenet, names[0])
    assert conv.kernel.shape[-1] == mobilenet.get_layer(names[0]).filters
    view = channel_ranges_view(lw.kernel, lw.channel_axis)
    assert view.channels == channels
    with pytest.raises(ValueError, match="layer_name"):
        layer_weights(mobilenet, "conv_pw_1_bn")


def test_layer_activations_shape(mobilenet):
    x = np.zeros((2, 32, 32, 1), np.float32)
    act = layer_activations(mobilenet, "conv_pw_1_relu", x)
    assert act.shape[0] == 2 and act.ndim == 4



def test_layer_weights_folds_the_following_batch_norm_like_the_converter(mobilenet):
    bn = mobilenet.get_layer("conv_dw_1_bn")
    saved = bn.get_weights()
    try:
        channels = saved[0].size
        gamma = np.linspace(0.5, 4.0, channels).astype(np.float32)
        variance = np.linspace(0.1, 9.0, channels).astype(np.float32)
        bn.set_weights([gamma, saved[1], saved[2], variance])  # gamma, beta, mean, variance
        raw = layer_weights(mobilenet, "conv_dw_1", fold_batch_norm=False)
        folded = layer_weights(mobilenet, "conv_dw_1")
        assert raw.folded_batch_norm == "" and folded.folded_batch_norm == "conv_dw_1_bn"
        assert folded.kind == "DepthwiseConv2D"
        expected = raw.kernel * gamma / np.sqrt(variance + bn.epsilon)
        np.testing.assert_allclose(folded.kernel, expected, rtol=1e-6)
    finally:
        bn.set_weights(saved)
    assert following_batch_norm(mobilenet, "conv_preds") is None


def test_model_activations_are_the_fused_chain_outputs(mobilenet):
    assert fused_output_layer(mobilenet, "conv_dw_1") == "conv_dw_1_relu"
    assert fused_output_layer(mobilenet, "conv_preds") == "conv_preds"
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    acts = model_activations(mobilenet, x, ["conv1", "conv_dw_1"])
    assert list(acts) == ["conv1 activations", "conv_dw_1 activations"]
    expected = layer_activations(mobilenet, "conv_dw_1_relu", x)
    np.testing.assert_allclose(acts["conv_dw_1 activations"], expected, rtol=1e-5, atol=1e-6)
    assert acts["conv1 activations"].min() >= 0.0  # after ReLU6


def test_channel_ranges_table_has_one_row_per_weight_layer(mobilenet):
    table = channel_ranges_table(mobilenet)
    assert list(table.index) == weight_layers(mobilenet)
    assert set(table["kind"]) == {"Conv2D", "DepthwiseConv2D"}  # keras MobileNet ends in a 1x1 conv
    assert (table["range spread"] >= 1.0).all()  # the widest channel over the median one
    first = table.index[0]
    view = channel_ranges_view(layer_weights(mobilenet, first).kernel,
                               layer_weights(mobilenet, first).channel_axis)
    assert table.loc[first, "per-channel SQNR dB"] == pytest.approx(view.per_channel_sqnr_db)
    # Per-channel is not always better for a given set of values (a finer step can round
    # worse by chance), so nothing here claims it: the gain is just the difference.
    gain = table["per-channel SQNR dB"] - table["per-tensor SQNR dB"]
    np.testing.assert_allclose(table["gain dB"], gain)
