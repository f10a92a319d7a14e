"""A Keras 3 transformer you bring, as a ``.keras`` file: compare_keras_model and ``qlab compare --model FILE``.

The file is the zoo's smoke encoder (from the run's shared cache) saved as a user would save it: its
attention and custom position embedding stop the tf_keras rebuild TFMOT needs, and Keras 3's own
``model.quantize`` modes are variants of its table.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import qlab
from qlab.cli import main
from qlab.zoo import transformer

keras = pytest.importorskip("keras")

#: Test images: enough for an accuracy, few enough to evaluate each file in a moment.
TEST_IMAGES = 200


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    """``(the encoder, its .keras file, its data, the data's .npz file)``."""
    model = transformer.load_or_train_encoder("smoke", 0, verbose=0)
    folder = tmp_path_factory.mktemp("your_transformer")
    model.save(folder / "encoder.keras")
    (x, y), (xt, yt) = transformer.encoder_data("smoke")
    data = ((x, y), (xt[:TEST_IMAGES], yt[:TEST_IMAGES]))
    np.savez(folder / "data.npz", x_train=x, y_train=y, x_test=data[1][0], y_test=data[1][1])
    return model, folder / "encoder.keras", data, folder / "data.npz"


def test_a_saved_transformer_gets_a_keras3_quantize_row_and_not_applicable_qat(encoder_file):
    model, path, data, _ = encoder_file
    result = qlab.compare_keras_model(path, data, variants=["float32", "keras_int8", "qat_int8"], latency=False,
                                      save=False)
    rows = result.table.set_index("variant")
    assert result.config["keras"] == "3"
    float_accuracy = np.mean(model.predict(data[1][0], verbose=0).argmax(axis=1) == data[1][1])
    assert rows.loc["float32", "accuracy"] == pytest.approx(float_accuracy)
    assert rows.loc["float32", "keras_weight_bytes"] == sum(w.nbytes for w in model.get_weights())
    # Keras's int8 is measured in Keras, but the converter cannot take its int8 matmul
    int8 = rows.loc["keras_int8"]
    assert int8["evaluated_with"] == "refused" and "'tfl.fully_connected' op" in int8["note"]
    assert np.isnan(int8["accuracy"]) and 0 <= int8["keras_accuracy"] <= 1
    assert int8["keras_weight_bytes"] < rows.loc["float32", "keras_weight_bytes"] / 3
    qat = rows.loc["qat_int8"]  # TFMOT needs tf_keras; the rebuild stops at the custom layer and attention
    assert qat["evaluated_with"] == "not applicable" and np.isnan(qat["accuracy"])
    assert "layer 'position' (qlab.zoo.transformer.PositionEmbedding)" in qat["note"]
    assert "block0_attention" in qat["note"]
    assert "Keras weights KB" in repr(result) and "not applicable" in repr(result)


def test_qlab_compare_with_a_transformer_file(encoder_file, tmp_path, capsys):
    _, path, _, data_file = encoder_file
    out = tmp_path / "rows.json"
    code = main(["compare", "--model", str(path), "--data", str(data_file), "--variants",
                 "float32,keras_int4_per_channel,pruned_int8", "--json", str(out), "--no-latency", "--quiet"])
    assert code == 0, capsys.readouterr().err
    rows = {row["variant"]: row for row in json.loads(out.read_text())}
    assert list(rows) == ["float32", "keras_int4_per_channel", "pruned_int8"]
    # 4-bit weights per channel convert, and the file computes what the quantized Keras model does
    int4 = rows["keras_int4_per_channel"]
    assert int4["evaluated_with"] == "litert" and int4["keras_tflite_agreement"] >= 0.99
    assert int4["keras_accuracy"] == pytest.approx(int4["accuracy"], abs=0.01)
    assert int4["keras_weight_bytes"] < rows["float32"]["keras_weight_bytes"] / 4  # two weights a byte
    assert rows["pruned_int8"]["evaluated_with"] == "not applicable"


def test_only_variants_the_rebuild_stops_is_an_error_naming_the_layer(encoder_file, capsys):
    from qlab.zoo.keras3 import Keras3RebuildError

    model, path, data, data_file = encoder_file
    with pytest.raises(Keras3RebuildError, match=r"layer 'position' .*cannot be rebuilt in tf_keras.*keras_\*"):
        qlab.compare_keras_model(model, data, variants=["float32", "qat_int8", "pcqat_int8"], save=False)
    assert main(["compare", "--model", str(path), "--data", str(data_file), "--variants", "qat_4bit"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qlab: error: layer 'position'") and err.count("\n") == 1


def test_keras3_variants_with_a_tf_keras_model_are_a_clear_error(monkeypatch):
    import qlab.zoo.models as models
    from qlab.zoo.keras2 import keras as tf_keras

    tiny = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(3)], name="tiny")
    rng = np.random.default_rng(0)
    data = ((rng.random((8, 4), dtype=np.float32), rng.integers(0, 3, 8)),
            (rng.random((4, 4), dtype=np.float32), rng.integers(0, 3, 4)))
    with pytest.raises(ValueError, match=r"\['keras_int4'\] are Keras 3's own model.quantize modes.*'tiny' is a "
                                         r"tf_keras model"):
        qlab.compare_keras_model(tiny, data, variants="float32,keras_int4", save=False)
    monkeypatch.setattr(models, "load_or_train", lambda *a, **k: pytest.fail("nothing may be trained"))
    with pytest.raises(ValueError, match="zoo model 'mnist_cnn' is a tf_keras model"):
        qlab.compare("mnist_cnn", ["float32", "keras_int8"], size="smoke", save=False)


def test_a_layer_the_converter_cannot_take_at_all_is_named():
    import tensorflow as tf

    class SingularValues(keras.layers.Layer):  # tf.Svd: no LiteRT kernel, not even in float
        def call(self, x):
            return tf.reshape(tf.linalg.svd(tf.reshape(x, (-1, 4, 4)), compute_uv=False), (-1, 4))

    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16), SingularValues(name="my_svd"),
                              keras.layers.Dense(3)], name="svd_net")
    rng = np.random.default_rng(0)
    data = ((rng.random((8, 16), dtype=np.float32), rng.integers(0, 3, 8)),
            (rng.random((4, 16), dtype=np.float32), rng.integers(0, 3, 4)))
    with pytest.raises(ValueError, match=r"cannot convert model 'svd_net' even without quantization.*at layer "
                                         r"'my_svd' \(SingularValues\): 'tf.Svd' op"):
        qlab.compare_keras_model(model, data, variants=["float32", "dynamic_int8"], latency=False, save=False)
