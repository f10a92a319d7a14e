"""Quantization-aware training: clear errors, partial annotation, 4-bit weights."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.qat import quantize as qat, quantize_configs, training
from qlab.zoo.keras2 import keras


def _tiny_model(extra=None):
    layers = [keras.Input(shape=(8,)), keras.layers.Dense(16, activation="relu", name="hidden")]
    if extra is not None:
        layers.append(extra)
    layers.append(keras.layers.Dense(4, name="out"))
    keras.utils.set_random_seed(0)  # a fixed model: the same test every run
    model = keras.Sequential(layers, name="tiny")
    model.set_weights([np.random.default_rng(i).normal(size=w.shape).astype(np.float32)
                       for i, w in enumerate(model.get_weights())])
    return model


def test_unsupported_layer_error_names_the_layer_and_the_fix():
    model = _tiny_model(keras.layers.LayerNormalization(name="norm"))
    with pytest.raises(qat.UnsupportedLayerError) as error:
        qat.quantize_whole_model(model)
    message = str(error.value)
    assert "'norm' (LayerNormalization)" in message and "quantize_partial" in message


def test_keras3_model_is_rejected_with_the_fix():
    keras3 = pytest.importorskip("keras")
    if not keras3.__version__.startswith("3"):
        pytest.skip("Keras 3 is not installed")
    model = keras3.Sequential([keras3.Input(shape=(4,)), keras3.layers.Dense(2)])
    with pytest.raises(TypeError, match="Keras 3 model.*tf_keras"):
        qat.quantize_whole_model(model)


def test_partial_quantization_wraps_only_the_picked_layers():
    model = _tiny_model(keras.layers.Dense(16, name="middle"))
    quantized = qat.quantize_partial(model, predicate=lambda layer: layer.name == "middle")
    configs = {getattr(layer, "layer", layer).name: type(getattr(layer, "quantize_config", None))
               .__name__ for layer in quantized.layers}
    assert configs["middle"] == "Default8BitQuantizeConfig"
    assert configs["out"] == "NoneType"  # after the picked layer: left in float
    # TFMOT quantizes the input of a picked layer by giving its producer an output quantizer
    assert configs["hidden"] == "OutputOnlyConfig"
    # the trained weights survive annotation
    middle = next(layer for layer in quantized.layers if layer.name == "quant_middle")
    kernel = next(w for w in middle.weights if w.name.endswith("kernel:0"))
    np.testing.assert_array_equal(kernel.numpy(), model.get_layer("middle").kernel.numpy())


def _distinct_per_column(quantized_model, name):
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    quantized_model(x, training=False)
    wrapper = next(layer for layer in quantized_model.layers
                   if getattr(layer, "layer", None) is not None and layer.layer.name == name)
    kernel = np.asarray(wrapper.layer.kernel)  # the fake-quantized kernel used by the last call
    return max(len(np.unique(kernel[:, j])) for j in range(kernel.shape[1]))


def test_four_bit_config_leaves_at_most_15_levels_per_channel():
    model = _tiny_model()
    assert _distinct_per_column(qat.quantize_low_bit_weights(model, num_bits=4), "hidden") <= 15
    # the same check on the default 8-bit scheme sees more levels: the test can fail
    assert _distinct_per_column(qat.quantize_whole_model(model), "out") > 15


def test_qat_4bit_is_tfmots_n_bit_scheme_on_the_whole_model():
    model = _tiny_model()
    four_bit = training.QAT_BUILDERS["qat_4bit"](model)
    table = qat.quantizer_table(four_bit).set_index("layer")
    for name in ("quant_hidden", "quant_out"):  # every layer, not only the picked ones
        assert table.loc[name, "config"] == "DefaultNBitQuantizeConfig"
        assert table.loc[name, "weights"] == "kernel: LastValueQuantizer(4-bit, symmetric, narrow)"
    assert table.loc["quant_hidden", "activations"] == "MovingAverageQuantizer(8-bit)"
    assert _distinct_per_column(four_bit, "out") <= 15  # a 16 x 4 kernel: 16 values a column
    eight_bit = qat.quantize_whole_model_n_bit(model, num_bits_weight=8)  # the same check can fail
    assert _distinct_per_column(eight_bit, "out") > 15
    with pytest.raises(ValueError, match="num_bits_weight must be an integer in"):
        qat.quantize_whole_model_n_bit(model, num_bits_weight=16)


def test_qat_4bit_cache_key_names_its_scheme(monkeypatch):
    """A qat_4bit fine-tune cached before the n-bit scheme must not load into the new model."""
    configs = {}

    class Stop(Exception):
        pass

    def capture(label, config, build, train):
        configs[config["qat"]] = config
        raise Stop  # before anything is built or trained

    monkeypatch.setattr("qlab.zoo.cache.load_or_build", capture)
    for variant in ("qat_4bit", "qat_int8"):
        with pytest.raises(Stop):
            training.load_or_fine_tune("mnist_cnn", variant, "smoke")
    assert configs["qat_4bit"]["qat_scheme"] == "default_n_bit(4, 8)"
    assert "qat_scheme" not in configs["qat_int8"]
    # both start from the data's ranges, so fine-tunes cached from TFMOT's [-6, 6] start are not reused
    assert all(configs[v]["qat_start"] == "minmax ranges of 1000 training images" for v in configs)


@pytest.mark.slow
def test_zoo_qat_fine_tunes_start_from_the_data_not_from_minus_6_to_6():
    from qlab.qat.ranges import qat_range_table
    from qlab.zoo.models import load_or_train, mnist_for
    from qlab.ptq.ranges import initial_ranges_left

    (x, _), _ = mnist_for("mnist_cnn", "smoke")
    model = training.load_or_fine_tune("mnist_cnn", "qat_int8", "smoke", verbose=0)
    assert initial_ranges_left(model) == []
    table = qat_range_table(model, load_or_train("mnist_cnn", "smoke", verbose=0), x)
    # two smoke steps from [-6, 6] would leave conv1's minimum near -6; from the data it stays near 0
    assert table["qat min"].iloc[1] > -0.1 and table["matches"].all(), table
    # a model with auto-named layers (numbered anew by every load) is calibrated too
    load_or_train("mobilenet_v1", "smoke", verbose=0)
    assert initial_ranges_left(training.load_or_fine_tune("mobilenet_v1", "qat_4bit", "smoke", verbose=0)) == []


@pytest.mark.slow
def test_smoke_qat_4bit_converts_to_int4_weights_that_tflite_runs_like_keras():
    from qlab.conversion import tflite, tflite_file
    from qlab.conversion.converter import convert, convert_qat, weight_storage, weight_types_by_op
    from qlab.zoo.models import load_or_train, mnist_for
    from qlab.numerics.metrics import output_sqnr_db

    (x_train, _), (x_test, _) = mnist_for("mnist_cnn", "smoke")
    four_bit = training.load_or_fine_tune("mnist_cnn", "qat_4bit", "smoke", verbose=0)
    model_bytes = convert_qat(four_bit, int8_io=True)
    assert weight_types_by_op(model_bytes) == {"CONV_2D": {"INT4": 2}, "FULLY_CONNECTED": {"INT4": 2}}
    storage = weight_storage(model_bytes)
    assert list(storage["file bytes"]) == list(storage["values"] // 2)  # two weights a byte
    stored = tflite_file.weight_tensors(model_bytes)  # the interpreter unpacks them to int8
    assert stored["levels"].max() <= 15 and stored["min"].min() >= -7 and stored["max"].max() <= 7
    int8_file = convert(load_or_train("mnist_cnn", "smoke", verbose=0), "int8_per_channel", x_train, 100)
    assert len(model_bytes) < 0.6 * len(int8_file)
    keras_scores = four_bit.predict(x_test, batch_size=500, verbose=0)
    tflite_scores = tflite.predict_tflite(model_bytes, x_test)
    agreement = np.mean(keras_scores.argmax(axis=1) == tflite_scores.argmax(axis=1))
    # the smoke model is about 42% accurate and its logits are near ties (full size: 0.9988-0.9997)
    assert agreement >= 0.93, agreement
    assert output_sqnr_db(keras_scores, tflite_scores) > 15


def test_low_bit_config_validates():
    with pytest.raises(ValueError, match="num_bits must be an integer in"):
        quantize_configs.LowBitWeightsQuantizeConfig(num_bits=1)
    with pytest.raises(ValueError, match="supports"):
        quantize_configs.LowBitWeightsQuantizeConfig.for_layer(keras.layers.Flatten(name="f"))
    with pytest.raises(ValueError, match="unknown QAT variant"):
        training.load_or_fine_tune("mnist_cnn", "qat_2bit", "smoke")


def test_quantizer_table_shows_where_the_fake_quants_are():
    table = qat.quantizer_table(qat.quantize_whole_model(_tiny_model())).set_index("layer")
    # the input quantizer's name depends on how many QAT models the session built before
    input_quantizer = table[table["class"] == "QuantizeLayer"]
    assert len(input_quantizer) == 1
    assert input_quantizer["outputs"].iloc[0].startswith("AllValuesQuantizer(8-bit")
    hidden = table.loc["quant_hidden"]
    assert hidden["wraps"] == "Dense" and hidden["class"] == "QuantizeWrapperV2"
    assert hidden["weights"] == "kernel: LastValueQuantizer(8-bit, symmetric, narrow)"
    assert hidden["activations"] == "MovingAverageQuantizer(8-bit)"
    assert "kernel_min" in hidden["range variables"]
    low = qat.quantizer_table(qat.quantize_low_bit_weights(_tiny_model(), 4)).set_index("layer")
    assert low.loc["quant_hidden", "weights"] == \
        "kernel: LastValueQuantizer(4-bit, per-axis, symmetric, narrow)"
    assert low.loc["quant_hidden", "config"] == "LowBitWeightsQuantizeConfig"


def test_range_variables_are_the_quantizers_state():
    quantized = qat.quantize_whole_model(_tiny_model())
    quantized(np.ones((2, 8), np.float32), training=True)  # LastValueQuantizer stores the range
    ranges = qat.range_variables(quantized.get_layer("quant_hidden"))
    kernel = ranges["kernel"]
    assert ranges["kernel_max"] == pytest.approx(np.abs(kernel).max())
    assert ranges["kernel_min"] == pytest.approx(-np.abs(kernel).max())


def test_range_variables_of_the_input_quantizer_are_min_and_max():
    quantized = qat.quantize_whole_model(_tiny_model())
    ranges = qat.range_variables(quantized.layers[0])
    assert {"min", "max"} <= set(ranges)
