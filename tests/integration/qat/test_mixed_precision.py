"""Partial QAT chosen by measurement: sensitivity, mixed-precision QAT, float islands, the study (smoke size)."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.conversion.converter import convert_qat, weight_storage
from qlab.zoo.keras2 import keras, tf, tfmot
from qlab.zoo.models import load_or_train, mnist_for, predict_keras
from qlab.qat.mixed_precision import (float_island_counts, layer_sensitivity, mixed_precision_ptq_model, mixed_precision_qat_model, most_sensitive_layers, weight_bits_by_layer, weight_layer_names)
from qlab.workbook.studies.partial_qat import partial_qat_study
from qlab.qat.quantize import UnsupportedLayerError, quantize_partial, quantize_whole_model_n_bit
from qlab.qat.training import fine_tune
from qlab.conversion.tflite import predict_tflite
from qlab.conversion.tflite_file import weight_tensors
from qlab.numerics.metrics import output_sqnr_db

LAYERS = ["conv1", "conv2", "dense", "logits"]


@pytest.fixture(scope="module")
def cnn():
    return load_or_train("mnist_cnn", "smoke", 0, verbose=0)


@pytest.fixture(scope="module")
def data():
    return mnist_for("mnist_cnn", "smoke")


def _conv_bn_model():
    """Conv2D -> BatchNorm -> ReLU twice, then Dense: the pattern TFMOT's transforms fold."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i in (1, 2):
        x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x), name="conv_bn")
    rng = np.random.default_rng(0)
    for layer in model.layers:  # batch norm statistics that are not the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4),
                               rng.uniform(0.5, 2, 4)])
    return model


def test_sensitivity_matches_one_layer_rounded_by_tensorflow(cnn, data):
    (x, y), _ = data
    table = layer_sensitivity(cnn, x[:200], y[:200], num_bits=2)
    assert sorted(table["layer"]) == sorted(LAYERS)
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert table["output_sqnr_db"].is_monotonic_increasing
    # the conv2 row, rebuilt with TensorFlow's own per-channel fake quant (2 bits, narrow range)
    copy = keras.models.clone_model(cnn)
    copy.set_weights(cnn.get_weights())
    kernel, bias = copy.get_layer("conv2").get_weights()
    bound = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
    rounded = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        kernel, -bound, bound, num_bits=2, narrow_range=True).numpy()
    copy.get_layer("conv2").set_weights([rounded, bias])
    scores, reference = predict_keras(copy, x[:200]), predict_keras(cnn, x[:200])
    row = table.set_index("layer").loc["conv2"]
    assert row["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == y[:200]))
    assert row["output_sqnr_db"] == pytest.approx(output_sqnr_db(reference, scores), abs=0.05)
    # 7-bit weights cost far less than 2-bit ones, layer by layer
    at7 = layer_sensitivity(cnn, x[:200], y[:200], num_bits=7).set_index("layer")["output_sqnr_db"]
    at2 = table.set_index("layer")["output_sqnr_db"]
    assert (at7.sort_index() > at2.sort_index() + 10).all()


def test_mixed_precision_bits_are_in_the_model_and_the_file(cnn, data):
    (x, y), (x_test, _) = data
    # a Dense kept and a Dense not: TFMOT's registries share the Dense bit width (see below)
    qat_model = mixed_precision_qat_model(cnn, ["conv2", "dense"], num_bits_weight=2)
    assert weight_bits_by_layer(qat_model) == {"conv1": 2, "conv2": 8, "dense": 8, "logits": 2}
    fine_tune(qat_model, x[:128], y[:128], epochs=1, seed=0, verbose=0)
    model_bytes = convert_qat(qat_model)
    stored = dict(zip(LAYERS, weight_storage(model_bytes)["stored type"]))
    assert stored == {"conv1": "INT4", "conv2": "INT8", "dense": "INT8", "logits": "INT4"}
    levels = dict(zip(LAYERS, weight_tensors(model_bytes)["levels"]))
    assert all(levels[name] > 15 for name in ("conv2", "dense"))
    assert all(levels[name] <= 3 for name in ("conv1", "logits"))
    assert float_island_counts(model_bytes)["float_ops"] == 0
    keras_top1 = predict_keras(qat_model, x_test).argmax(1)
    assert np.mean(predict_tflite(model_bytes, x_test).argmax(1) == keras_top1) > 0.95


def test_no_layer_kept_is_whole_model_n_bit_qat(cnn):
    mixed, whole = mixed_precision_qat_model(cnn, [], 3), quantize_whole_model_n_bit(cnn, 3, 8)
    assert weight_bits_by_layer(mixed) == weight_bits_by_layer(whole) == dict.fromkeys(LAYERS, 3)


def test_mixed_precision_keeps_the_batch_norm_handling_of_whole_model_qat():
    model = _conv_bn_model()
    mixed = mixed_precision_qat_model(model, ["conv1"], 4)
    whole = quantize_whole_model_n_bit(model, 4, 8)
    assert weight_bits_by_layer(mixed) == {"conv1": 8, "conv2": 4, "out": 4}
    for name in ("conv1", "conv2"):
        # no FakeQuant between a conv and its batch norm: the conv's activation is a no-op
        for qat_model in (mixed, whole):
            wrapped = qat_model.get_layer(f"quant_{name}").layer.activation  # QuantizeAwareActivation
            assert type(wrapped.activation).__name__ == "NoOpActivation"
    x = np.random.default_rng(1).random((64, 8, 8, 1), dtype=np.float32)
    model_bytes = convert_qat(mixed, int8_io=False)
    agreement = np.mean(predict_tflite(model_bytes, x).argmax(1) == predict_keras(mixed, x).argmax(1))
    assert agreement > 0.9


def test_a_custom_quantize_config_switches_the_batch_norm_transform_off():
    # why mixed_precision_qat_model goes through a registry, not quantize_annotate_layer(config)
    model = _conv_bn_model()
    config = tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeRegistry(
        num_bits_weight=8).get_quantize_config(model.get_layer("conv1"))
    qat_model = quantize_partial(model, predicate=lambda layer: layer.name == "conv1",
                                 quantize_config=config)
    wrapped = qat_model.get_layer("quant_conv1").layer.activation
    assert type(wrapped.activation).__name__ != "NoOpActivation"


def test_tfmot_n_bit_registries_share_their_bit_widths():
    # the TFMOT behaviour _MixedPrecisionRegistry works around: building a registry
    # rewrites the Dense bit width of every registry built before it
    registry = tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeRegistry
    dense = keras.layers.Dense(2)
    two_bit = registry(num_bits_weight=2)
    registry(num_bits_weight=8)
    assert two_bit.get_quantize_config(dense).get_config()["num_bits_weight"] == 8


def test_float_islands_are_counted():
    model = _conv_bn_model()
    partial = quantize_partial(model, predicate=lambda layer: type(layer) is keras.layers.Conv2D)
    islands = float_island_counts(convert_qat(partial, int8_io=False))
    whole = float_island_counts(convert_qat(quantize_whole_model_n_bit(model, 8, 8)))
    assert islands["float_ops"] > 0 and islands["quantize_ops"] > 0 and islands["dequantize_ops"] > 0
    assert whole["float_ops"] == whole["quantize_ops"] == whole["dequantize_ops"] == 0
    assert whole["int8_ops"] > islands["int8_ops"]


def test_ptq_model_rounds_only_the_layers_not_kept(cnn):
    model = mixed_precision_ptq_model(cnn, ["dense"], 2)
    for name in weight_layer_names(model):
        kernel = model.get_layer(name).get_weights()[0]
        channel_levels = max(len(np.unique(kernel[..., c])) for c in range(kernel.shape[-1]))
        assert (channel_levels > 3) == (name == "dense")


def test_bad_input_is_rejected(cnn, data):
    (x, y), _ = data
    with pytest.raises(ValueError, match="keep_8bit_layers.*'nope'.*valid"):
        mixed_precision_qat_model(cnn, ["conv1", "nope"], 4)
    with pytest.raises(ValueError, match="keep_8bit_layers.*'pool1'"):
        mixed_precision_qat_model(cnn, ["pool1"], 4)
    with pytest.raises(TypeError, match="keep_8bit_layers must be a list"):
        mixed_precision_qat_model(cnn, "conv1", 4)
    for bits in (1, 8, 2.0):
        with pytest.raises(ValueError, match="num_bits_weight"):
            mixed_precision_qat_model(cnn, ["conv1"], bits)
    with pytest.raises(ValueError, match="num_bits"):
        layer_sensitivity(cnn, x[:10], y[:10], num_bits=9)
    with pytest.raises(ValueError, match="same, non-zero number"):
        layer_sensitivity(cnn, x[:10], y[:9], num_bits=2)
    table = layer_sensitivity(cnn, x[:10], y[:10], num_bits=2)
    with pytest.raises(ValueError, match="k must be an integer in \\[0, 4\\]"):
        most_sensitive_layers(table, 5)
    with pytest.raises(ValueError, match="k must be"):
        partial_qat_study("mnist_cnn", "smoke", k=3, verbose=False)
    keras.utils.set_random_seed(0)
    unsupported = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="hidden"),
                                    keras.layers.LayerNormalization(name="norm"),
                                    keras.layers.Dense(2, name="out")], name="with_norm")
    with pytest.raises(UnsupportedLayerError, match="'with_norm'.*quantize_partial"):
        mixed_precision_qat_model(unsupported, ["hidden"], 4)


