"""Conversion variants, representative-data checks and the LiteRT evaluation helpers."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.conversion import converter as qconvert
from qlab.conversion import tflite, tflite_file


def test_check_variants_accepts_all_and_comma_lists():
    assert qconvert.check_variants("all") == list(qconvert.VARIANTS)
    assert qconvert.check_variants("float32, int8_per_channel") == ["float32", "int8_per_channel"]
    with pytest.raises(ValueError, match="unknown variant.*'int4'.*valid variants: float32"):
        qconvert.check_variants("float32,int4")


def test_representative_dataset_checks_dtype_shape_and_count():
    x = np.zeros((20, 28, 28, 1), np.float32)
    batches = list(qconvert.representative_dataset(x, 5, (None, 28, 28, 1))())
    assert len(batches) == 5 and batches[0][0].shape == (1, 28, 28, 1)
    with pytest.raises(ValueError, match="float32.*uint8"):
        qconvert.representative_dataset(x.astype(np.uint8), 5, (None, 28, 28, 1))
    with pytest.raises(ValueError, match=r"shape \(20, 28, 28, 1\).*\(None, 32, 32, 1\)"):
        qconvert.representative_dataset(x, 5, (None, 32, 32, 1))
    with pytest.raises(ValueError, match=r"num_samples must be an integer in \[1, 20\]"):
        qconvert.representative_dataset(x, 21)
    with pytest.raises(TypeError, match="numpy array"):
        qconvert.representative_dataset([[0.0]], 1)


def test_int8_input_quantization_hand_computed():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = tflite.quantize_input(np.array([0.0, 1.0, 1.3, 100.0, -100.0], np.float32), detail)
    np.testing.assert_array_equal(q, [-3, -1, -0, 127, -128])  # round(x/0.5) - 3, clipped
    np.testing.assert_allclose(tflite.dequantize_output(q, detail), [0.0, 1.0, 1.5, 65.0, -62.5])


@pytest.fixture(scope="module")
def smoke_cnn():
    """The smoke-size mnist_cnn, from the session's shared cache (conftest)."""
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), (x_test, y_test) = mnist_for("mnist_cnn", "smoke")
    return model, x_train, x_test, y_test


def _weight_scales(model_bytes):
    interpreter = tflite.make_interpreter(model_bytes)
    return {d["name"]: len(d["quantization_parameters"]["scales"])
            for d in interpreter.get_tensor_details() if d["dtype"] == np.int8
            and len(d["shape"]) == 4 and d["shape"][0] == 64}  # conv2's kernel: 64 filters


@pytest.mark.slow
def test_ptq_variants_convert_and_int8_is_smaller(smoke_cnn):
    model, x_train, x_test, y_test = smoke_cnn
    files = {v: qconvert.convert(model, v, x_train, 50) for v in qconvert.PTQ_VARIANTS}
    for variant in ("dynamic_int8", "int8_per_channel", "int8_per_tensor"):
        assert len(files[variant]) < len(files["float32"]) / 3, variant
    assert tflite.tensor_summary(files["int8_per_channel"])["input_dtype"] == "int8"
    assert list(_weight_scales(files["int8_per_channel"]).values()) == [64]
    assert list(_weight_scales(files["int8_per_tensor"]).values()) == [1]
    keras_pred = model.predict(x_test, verbose=0).argmax(axis=1)
    float_pred = tflite.predict_tflite(files["float32"], x_test).argmax(axis=1)
    assert np.mean(keras_pred == float_pred) > 0.99
    with pytest.raises(ValueError, match="needs representative_data"):
        qconvert.convert(model, "int8_per_channel")
    with pytest.raises(ValueError, match="quantization-aware model"):
        qconvert.convert(model, "qat_int8")


@pytest.mark.slow
def test_batched_evaluation_matches_batch_one_for_int8(smoke_cnn):
    model, x_train, x_test, y_test = smoke_cnn
    model_bytes = qconvert.convert(model, "int8_per_channel", x_train, 50)
    one = tflite.predict_tflite(model_bytes, x_test[:60], batch_size=1)
    batched = tflite.predict_tflite(model_bytes, x_test[:60], batch_size=25)  # 25, 25, then 10
    np.testing.assert_array_equal(one, batched)
    for workers in (2, 3):  # 3 batches over 2 threads, one batch per thread
        np.testing.assert_array_equal(
            one, tflite.predict_tflite(model_bytes, x_test[:60], batch_size=25, workers=workers))
    with pytest.raises(ValueError, match="x is empty"):
        tflite.predict_tflite(model_bytes, x_test[:0])
    accuracy = tflite.evaluate_tflite(model_bytes, x_test[:60], y_test[:60])
    assert accuracy == np.mean(one.argmax(axis=1) == y_test[:60])
    stats = tflite.measure_latency(model_bytes, runs=10, warmup=2)
    assert stats.runs == 10 and 0 < stats.min_ms <= stats.median_ms <= stats.max_ms


def _from_keras_model(model, variant, representative_data):
    """The reference: TensorFlow's own Keras route, configured like qlab's variant."""
    from qlab.zoo.keras2 import tf

    return qconvert.configure(tf.lite.TFLiteConverter.from_keras_model(model), variant,
                              representative_data).convert()


def _tensor_summary(model_bytes):
    interpreter = tflite.make_interpreter(model_bytes)
    io = interpreter.get_input_details() + interpreter.get_output_details()
    return (sorted(d["name"] for d in interpreter.get_tensor_details()),
            [(d["name"], list(d["shape_signature"]), d["dtype"], d["quantization"]) for d in io])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["float32", "int8_per_channel", "int16x8"])
def test_lean_export_converts_like_from_keras_model(smoke_cnn, variant):
    """qlab skips Keras's slow SavedModel serialization; the flatbuffer must not change."""
    model, x_train, x_test, _ = smoke_cnn
    rep = qconvert.representative_dataset(x_train, 32, model.input_shape)
    ours = qconvert.convert(model, variant, rep)
    reference = _from_keras_model(model, variant, rep)
    assert len(ours) == len(reference)
    assert _tensor_summary(ours) == _tensor_summary(reference)
    np.testing.assert_array_equal(tflite.predict_tflite(ours, x_test[:200]),
                                  tflite.predict_tflite(reference, x_test[:200]))


@pytest.mark.slow
def test_one_export_serves_every_post_training_variant_with_the_same_bytes(smoke_cnn, tmp_path):
    """A comparison exports a float model once for all its variants: the files must not change."""
    model, x_train, _, _ = smoke_cnn
    exported = qconvert.export_once(model, str(tmp_path))
    assert exported() == str(tmp_path) and (tmp_path / "saved_model.pb").exists()
    stamp = (tmp_path / "saved_model.pb").stat().st_mtime_ns
    for variant in qconvert.PTQ_VARIANTS:
        shared = qconvert.convert(model, variant, x_train, 32, exported=exported())
        assert shared == qconvert.convert(model, variant, x_train, 32), variant
    assert (tmp_path / "saved_model.pb").stat().st_mtime_ns == stamp  # exported once, not per variant


def test_keras_converter_removes_its_export_and_rejects_keras3_models(tmp_path, monkeypatch):
    import tempfile

    from qlab.zoo.keras2 import keras

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    keras.utils.set_random_seed(0)  # a fixed model: the same test every run
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
    with qconvert.keras_converter(model) as converter:
        assert [p.name.startswith("qlab-convert-") for p in tmp_path.iterdir()] == [True]
        assert converter.convert()
    assert list(tmp_path.iterdir()) == []

    class Keras3Model:  # what a `keras` 3 model looks like to qlab: its module is keras.*
        __module__ = "keras.src.models.functional"

    with pytest.raises(TypeError, match="Keras 3 model"):
        qconvert.convert(Keras3Model(), "float32")


@pytest.fixture(scope="module")
def four_bit_tflite():
    from qlab.qat import quantize as qat, training
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)  # a fixed model: the same test every run
    model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4)])
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    y = np.arange(64) % 4
    four = qat.quantize_low_bit_weights(model, 4, per_axis=False)
    eight = qat.quantize_whole_model(model)
    for m in (four, eight):
        training.fine_tune(m, x, y, verbose=0)
    return qconvert.convert_qat(four, int8_io=False), qconvert.convert_qat(eight, int8_io=False)


def test_weight_tensors_read_the_stored_grid(four_bit_tflite):
    four, eight = (tflite_file.weight_tensors(b) for b in four_bit_tflite)
    assert list(four["op"]) == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert set(four["dtype"]) == {"int8"}  # the interpreter unpacks INT4 weights to int8
    assert four["levels"].max() <= 15 and four["min"].min() >= -7 and four["max"].max() <= 7
    assert eight["levels"].max() > 15  # the same reading on 8-bit weights sees more: can fail
    assert list(four["bytes"]) == [16 * 8, 4 * 16]


def test_weight_storage_reads_the_type_the_file_stores(four_bit_tflite):
    from qlab.conversion.converter import weight_storage, weight_types_by_op

    four, eight = four_bit_tflite
    storage = weight_storage(four)
    assert list(storage["stored type"]) == ["INT4", "INT4"]
    assert list(storage["shape"]) == [(16, 8), (4, 16)]
    assert list(storage["file bytes"]) == [16 * 8 // 2, 4 * 16 // 2]  # two weights a byte
    assert weight_types_by_op(eight) == {"FULLY_CONNECTED": {"INT8": 2}}
    assert list(weight_storage(eight)["file bytes"]) == [16 * 8, 4 * 16]
    with pytest.raises(TypeError, match="bytes"):
        weight_storage("model.tflite")
    with pytest.raises(ValueError, match="not a readable .tflite"):
        weight_storage(b"not a flatbuffer")


def test_op_table_lists_ops_and_dtypes(four_bit_tflite):
    ops = tflite_file.op_table(four_bit_tflite[0])
    assert ops["op"].iloc[0] == "QUANTIZE" and ops["op"].iloc[-1] == "DEQUANTIZE"
    assert "DELEGATE" not in set(ops["op"])
    assert ops.set_index("op").loc["QUANTIZE", "output dtype"] == "int8"


def test_try_convert_qat_returns_the_converter_refusal():
    from qlab.qat import quantize as qat, training
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)  # a fixed model: the same test every run
    model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4)])
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    per_channel = qat.quantize_low_bit_weights(model, 4, per_axis=True)
    training.fine_tune(per_channel, x, np.arange(64) % 4, verbose=0)
    flatbuffer, reason = qconvert.try_convert_qat(per_channel)
    # per-axis fake-quant on a Dense kernel: TFLite's FULLY_CONNECTED wants the other axis
    assert flatbuffer is None and "quantized axes" in reason
    flatbuffer, reason = qconvert.try_convert_qat(qat.quantize_whole_model(model))
    assert isinstance(flatbuffer, bytes) and reason == ""
