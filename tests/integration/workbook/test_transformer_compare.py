"""The Keras 3 transformer through compare_keras_model: a variant the converter refuses is a row that says why.

The smoke encoder comes from the run's shared cache (trained once per run, like the other smoke models), and
its float file is converted once for the module: no function tested here changes either.
"""

from __future__ import annotations

import numpy as np
import pytest

import qlab
from qlab.zoo import transformer


@pytest.fixture(scope="module")
def model():
    return transformer.load_or_train_encoder("smoke", 0, verbose=0)


@pytest.fixture(scope="module")
def float_file(model):
    from qlab.conversion.converter import convert

    return convert(model, "float32")


def test_the_refused_16x8_variant_is_reported_and_the_others_measured(model):
    result = qlab.compare_keras_model(model, transformer.encoder_data("smoke"),
                                      variants=["float32", "int8_per_channel", "int16x8"], latency=False,
                                      save=False, calibration_samples=50, input_range=(0, 1))
    rows = result.table.set_index("variant")
    assert rows.loc["int16x8", "evaluated_with"] == "refused" and np.isnan(rows.loc["int16x8", "accuracy"])
    assert "16x8-bit not yet supported for op: 'NEG'" in rows.loc["int16x8", "note"]
    assert result.notes() == [f"patch_encoder int16x8: {rows.loc['int16x8', 'note']}"]
    assert "the converter refused" in repr(result) and "the converter refused" in result._repr_html_()
    measured = rows.loc[["float32", "int8_per_channel"]]
    assert (measured["evaluated_with"] == "litert").all() and measured["accuracy"].between(0, 1).all()
    # the LayerNorm's NEG stays float between a DEQUANTIZE and a QUANTIZE: not integer-only
    assert rows.loc["int8_per_channel", "non_integer_ops"] > 0


def test_the_zoo_comparison_takes_the_transformer_by_name():
    from qlab.workbook.pipeline import check_models

    assert transformer.NAME not in check_models("all") and check_models(transformer.NAME) == [transformer.NAME]
    result = qlab.compare(transformer.NAME, ["float32", "dynamic_int8", "qat_int8", "pcqat_int8"], size="smoke",
                          latency=False, save=False)
    rows = result.table.set_index("variant")
    assert list(rows.index) == ["float32", "dynamic_int8", "qat_int8", "pcqat_int8"]
    assert rows.loc[["float32", "dynamic_int8"], "accuracy"].between(0, 1).all()
    assert (rows.loc[["qat_int8", "pcqat_int8"], "evaluated_with"] == "not applicable").all()
    note = rows.loc["qat_int8", "note"]  # the layers its tf_keras rebuild, which TFMOT needs, stops at
    assert note.startswith("not applicable: ") and "layer 'position'" in note and "block0_attention" in note
    assert result.notes() == [f"{transformer.NAME} qat_int8, pcqat_int8: {note}"]


def test_keras3_quantization_is_measured_in_keras_and_through_the_file(model, float_file):
    from qlab.ptq.keras3_quantize import keras3_quantization_table

    _, (x_test, y_test) = transformer.encoder_data("smoke")
    table = keras3_quantization_table(model, x_test[:200], y_test[:200], modes=[("int8", None), ("int4", None)],
                                      float_file=float_file)
    rows = table.set_index("mode")
    assert list(rows.index) == ["float32", "int8", "int4"]
    assert rows.loc["int8", "weight bytes in memory"] < rows.loc["float32", "weight bytes in memory"] / 3
    # int8: the converter cannot take Keras's int8 matmul; int4: converts, but dequantizes in float
    assert not rows.loc["int8", "converted"] and "'tfl.fully_connected' op" in rows.loc["int8", "note"]
    assert rows.loc["int4", "converted"] and rows.loc["int4", "BATCH_MATMUL"] > rows.loc["float32", "BATCH_MATMUL"]
    assert rows.loc["int4", "dequantize ops (CAST, DEQUANTIZE)"] > 0 and rows.loc["int4", "ops not integer-only"] > 0
    assert rows.loc["int4", "LiteRT accuracy"] == rows.loc["int4", "Keras accuracy"]
    assert rows.loc["float32", "file bytes"] == len(float_file)
    with pytest.raises(ValueError, match="float_file is not a readable .tflite"):
        keras3_quantization_table(model, x_test, y_test, float_file=b"not a model")


def test_lowering_one_group_of_layers_at_a_time_measures_what_keeping_the_rest_at_8_bits_recovers(model, float_file):
    from qlab.conversion.litert_quantizer import mixed_weight_recipe
    from qlab.ptq.layer_bits import ENCODER_GROUPS, layer_bits_table

    _, (x_test, y_test) = transformer.encoder_data("smoke")
    table = layer_bits_table(model, x_test, y_test, low_bits=2, float_file=float_file)
    assert list(table["weights"]) == ["8-bit weights", "all groups at 2 bits",
                                      *(f"{name} at 2 bits, the rest 8" for name in ENCODER_GROUPS)]
    sizes = table["file bytes"].tolist()
    assert sizes[1] < sizes[2] == sizes[3] < sizes[0]  # 2-bit weights take a quarter of int8's bytes
    if table.attrs["break (points)"] > 0:
        assert table.loc[0, "recovered"] == pytest.approx(1) and table.loc[1, "recovered"] == 0
    with pytest.raises(ValueError, match="no FULLY_CONNECTED op"):
        mixed_weight_recipe(float_file, 2, r".*nothing_like_this.*")
    with pytest.raises(ValueError, match="low_bits"):
        mixed_weight_recipe(float_file, 1, None)
    with pytest.raises(ValueError, match="float_file is not a readable .tflite"):
        layer_bits_table(model, x_test, y_test, float_file=b"not a model")


def test_keras3_qat_beats_its_control_in_the_file_it_implies(model, float_file):
    from qlab.qat.keras3_qat import keras3_qat_contrast

    table = keras3_qat_contrast(model, transformer.encoder_data("smoke"), num_bits=2, epochs=1, samples=256,
                                float_file=float_file)
    rows = table.set_index("method")
    qat = rows.loc["QAT (Keras 3, fake-quantized kernels)"]
    assert list(rows["steps"]) == [0, 2, 2]  # the control and QAT: the same 2 steps
    assert qat["Keras-file agreement"] >= 0.95  # the file computes what the fake-quantized model trained
    assert qat["gain low"] <= qat["QAT gain vs control (points)"] <= qat["gain high"]
    assert rows["accuracy"].between(0, 1).all() and rows["Keras accuracy"].between(0, 1).all()
    with pytest.raises(TypeError, match="float_file must be the bytes of a .tflite file"):
        keras3_qat_contrast(model, transformer.encoder_data("smoke"), float_file="float.tflite")
