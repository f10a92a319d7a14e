"""A Keras 3 model (``import keras``) through every variant: compare_keras_model and ``qlab compare``.

The model has the layers the issue names - Rescaling, Conv2D, BatchNormalization, MaxPooling2D,
Dropout, Dense (and the Flatten between them) - and takes 0..255 pixels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import qlab
from qlab.cli import main
from qlab.conversion.converter import DC_VARIANTS, KERAS3_VARIANTS, PTQ_VARIANTS, QAT_VARIANTS, VARIANTS

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras3_model_and_pixels():
    (x, y), (xt, yt) = qlab.mnist_for("mnist_cnn", "smoke")
    data = ((x * 255, y), (xt[:300] * 255, yt[:300]))
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([
        L.Input((28, 28, 1)), L.Rescaling(1 / 255), L.Conv2D(8, 3), L.BatchNormalization(),
        L.MaxPooling2D(), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(),
        L.Dropout(0.2), L.Dense(10)], name="keras3_smoke")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*data[0], epochs=6, batch_size=32, verbose=0)
    return model, data


#: One variant of each family for the command line: every variant is checked through compare_keras_model
#: above, with the same code per variant; here the CLI's own part (the model and data files, the JSON) is tested,
#: with the Keras 3 -> tf_keras rebuild the QAT and Deep Compression families need.
CLI_VARIANTS = ("float32", "int8_per_channel", "qat_int8", "pruned_int8", "aeq_int8_per_channel")


def check_accuracies(accuracy: dict, float_accuracy: float, variants=VARIANTS) -> None:
    assert set(accuracy) == set(variants)
    assert float_accuracy > 0.6  # 512 images, 6 epochs: well above chance (0.1)
    for variant, value in accuracy.items():
        # pruning 75% of a barely trained model in a few steps on 256 images costs more than rounding
        bound = 0.25 if variant in DC_VARIANTS else 0.1
        assert abs(value - float_accuracy) < bound, (variant, value, float_accuracy)


def test_every_variant_of_compare_keras_model(keras3_model_and_pixels, artifacts):
    model, data = keras3_model_and_pixels
    result = qlab.compare_keras_model(model, data, variants="all", fine_tune_samples=256, latency=False)
    table = result.table.set_index("variant")
    float_top1 = model.predict(data[1][0], verbose=0).argmax(axis=1)
    float_accuracy = float(np.mean(float_top1 == data[1][1]))
    assert table.loc["float32", "accuracy"] == pytest.approx(float_accuracy)
    assert list(table.index) == [*VARIANTS, *KERAS3_VARIANTS]  # a Keras 3 model's "all": Keras's own modes too
    check_accuracies(table.loc[list(VARIANTS), "accuracy"].to_dict(), float_accuracy)
    # model.quantize takes the Dense layer only; measured in Keras whether or not the converter takes it
    keras_rows = table.loc[list(KERAS3_VARIANTS)]
    assert (abs(keras_rows["keras_accuracy"] - float_accuracy) < 0.1).all()
    assert (keras_rows["keras_weight_bytes"] < table.loc["float32", "keras_weight_bytes"]).all()
    # int8 weights; a small model's graph is a large share of its file, hence not 4x
    assert (table.loc[list(PTQ_VARIANTS[2:]), "size_ratio"] > 2).all()
    assert (table.loc[list(QAT_VARIANTS), "keras_tflite_agreement"] > 0.9).all()
    assert (table.loc[["pqat_int8", "cqat_int8", "pcqat_int8"], "keras_tflite_agreement"] > 0.9).all()
    assert table.loc["pcqat_int8", "gzip_ratio"] > table.loc["int8_per_channel", "gzip_ratio"]
    assert result.config["keras"] == "3"
    assert 0 <= result.config["keras3_rebuild"]["max_abs_diff"] <= 1e-4


def test_qlab_compare_with_a_model_file_and_a_data_file(keras3_model_and_pixels, tmp_path, artifacts,
                                                        capsys):
    model, ((x, y), (xt, yt)) = keras3_model_and_pixels
    model.save(tmp_path / "my_model.keras")
    np.savez(tmp_path / "my_data.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    out = tmp_path / "out.json"
    code = main(["compare", "--model", str(tmp_path / "my_model.keras"), "--data",
                 str(tmp_path / "my_data.npz"), "--variants", ",".join(CLI_VARIANTS), "--json", str(out),
                 "--no-latency", "--fine-tune-samples", "256", "--quiet"])
    assert code == 0, capsys.readouterr().err
    rows = json.loads(out.read_text())
    accuracy = {row["variant"]: row["accuracy"] for row in rows}
    float_accuracy = float(np.mean(model.predict(xt, verbose=0).argmax(axis=1) == yt))
    assert accuracy["float32"] == pytest.approx(float_accuracy)
    check_accuracies(accuracy, float_accuracy, CLI_VARIANTS)
    assert "JSON written to" in capsys.readouterr().out
