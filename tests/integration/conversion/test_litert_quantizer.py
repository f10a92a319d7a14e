"""The LiteRT Quantizer route (qlab.conversion.litert_quantizer) on real files: checks, calibration, 4-bit, validation."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.conversion import converter as conversion, litert_quantizer as lq
from qlab.conversion.tflite import make_interpreter, predict_tflite
from qlab.workbook.studies import litert_quantizer as lq_studies

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cnn():
    """The smoke mnist_cnn (shared cache), its float32 and converter int8 files, and its data."""
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), (x_test, y_test) = mnist_for("mnist_cnn", "smoke")
    return {"model": model, "float": conversion.convert(model, "float32"), "x": x_train, "x_test": x_test,
            "y_test": y_test, "int8": conversion.convert(model, "int8_per_channel", x_train, 50)}


@pytest.fixture(scope="module")
def depthwise_file():
    """A float .tflite with CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops (random weights)."""
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1))
    h = keras.layers.Conv2D(8, 3, activation="relu", name="stem")(inputs)
    h = keras.layers.DepthwiseConv2D(3, activation="relu", name="dw")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(4, name="head")(h)
    x = np.random.default_rng(0).random((64, 12, 12, 1), dtype=np.float32)
    return conversion.convert(keras.Model(inputs, outputs), "float32"), x


def test_moving_average_calibration_gives_the_input_scale_computed_by_hand(cnn):
    """The default calibration folds each image's min and max in with a 0.95 moving average."""
    x = cnn["x"][:40]
    low, high = float(x[0].min()), float(x[0].max())
    for image in x[1:]:
        low, high = 0.95 * low + 0.05 * float(image.min()), 0.95 * high + 0.05 * float(image.max())
    model_bytes = lq.quantize(cnn["float"], lq.variant_recipe("aeq_int8_per_channel"), x, len(x))
    scale, zero_point = make_interpreter(model_bytes).get_input_details()[0]["quantization"]
    assert low == 0.0 and zero_point == -128
    assert scale == pytest.approx((high - low) / 255, rel=1e-6)
    assert scale < 1 / 255  # some image's max is below 1: the average ends under it


def test_min_max_calibration_matches_the_converter_up_to_the_last_bit_of_a_scale(cnn):
    """With the converter's min/max ranges the files agree tensor by tensor; a scale may differ in float32 rounding."""
    default = lq.quantize_variant(cnn["float"], "aeq_int8_per_channel", cnn["x"], 50)
    assert lq.first_difference(default, cnn["int8"], cnn["x_test"][:20])["what"] == "input parameters"
    minmax = lq.quantize_variant(cnn["float"], "aeq_int8_per_channel", cnn["x"], 50, calibration="min_max")
    first = lq.first_difference(minmax, cnn["int8"], cnn["x_test"][:20])
    if not first["identical"]:
        assert first["what"] in ("output parameters", "output values"), first
        if first["what"] == "output parameters":
            a, b = (float(side.split()[1].rstrip(",")) for side in (first["a"], first["b"]))
            assert a == pytest.approx(b, rel=1e-6)
    ours = lq.stored_outputs(minmax, predict_tflite(minmax, cnn["x_test"]))
    theirs = lq.stored_outputs(cnn["int8"], predict_tflite(cnn["int8"], cnn["x_test"]))
    assert ours.dtype == np.int64 and np.mean(ours == theirs) > 0.99
    assert lq.first_difference(minmax, minmax, cnn["x_test"][:5]) == {"identical": True}
    # on the converter's (builtin) kernels too: as close (a tie rounded apart can move a value either way)
    rows = lq_studies.route_rows(cnn["float"], cnn["int8"], "aeq_int8_per_channel", cnn["x"], cnn["x_test"], cnn["y_test"], 50)
    assert [r["calibration"] for r in rows] == list(lq_studies.ROUTE_CALIBRATIONS)
    assert min(rows[1]["identical values"], rows[2]["identical values"]) > 0.99 > 0.1 > rows[0]["identical values"]
    assert rows[2]["first difference"] != "input parameters"


def test_a_single_4bit_config_leaves_depthwise_float_and_the_layered_recipe_does_not(depthwise_file):
    float_bytes, x = depthwise_file
    from ai_edge_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, 4)
    single = lq.quantize(float_bytes, manager.get_quantization_recipe(), x, 32)
    assert conversion.weight_types_by_op(single)["DEPTHWISE_CONV_2D"] == {"FLOAT32": 1}
    table = lq.integer_only_ops(single).set_index("op")["count"].to_dict()
    assert table == {"DEQUANTIZE": 1, "DEPTHWISE_CONV_2D": 1, "QUANTIZE": 1}
    layered = lq.quantize_variant(float_bytes, "aeq_int4_static", x, 32)
    assert conversion.weight_types_by_op(layered) == {"CONV_2D": {"INT4": 1}, "DEPTHWISE_CONV_2D": {"INT8": 1},
                                                       "FULLY_CONNECTED": {"INT4": 1}}
    assert lq.count_non_integer_ops(layered) == 0
    assert lq.count_non_integer_ops(float_bytes) == len(lq.file_ops(float_bytes))


def test_every_variant_runs_and_the_float_ones_are_counted(depthwise_file):
    float_bytes, x = depthwise_file
    reference = predict_tflite(float_bytes, x)
    for variant in conversion.AEQ_VARIANTS:
        model_bytes = lq.quantize_variant(float_bytes, variant, x, 32)
        scores = predict_tflite(model_bytes, x)
        assert np.corrcoef(scores.ravel(), reference.ravel())[0, 1] > 0.9, variant
        static = variant in ("aeq_int8_per_channel", "aeq_int8_per_tensor", "aeq_int4_static")
        assert (lq.count_non_integer_ops(model_bytes) == 0) == static, variant
    # the head has 8 inputs, fewer than a block of 32: it falls back to per-channel INT4, with one scale per output
    recipe = lq.variant_recipe("aeq_int4_blockwise", model_bytes=float_bytes)
    assert recipe[-1]["regex"] == "^StatefulPartitionedCall:0;$" and recipe[-1]["op_config"]["weight_tensor_config"][
        "granularity"] == "CHANNELWISE"
    storage = conversion.weight_storage(lq.quantize_variant(float_bytes, "aeq_int4_blockwise"))
    assert storage.set_index("op")["stored type"].to_dict() == {"CONV_2D": "INT4", "DEPTHWISE_CONV_2D": "INT8",
                                                                "FULLY_CONNECTED": "INT4"}


def test_variant_recipes_leave_out_ops_the_model_does_not_have(cnn):
    ops = {config["operation"] for config in lq.variant_recipe("aeq_int4_static", model_bytes=cnn["float"])}
    assert ops == {"*", "CONV_2D", "FULLY_CONNECTED"}
    with pytest.raises(ValueError, match="unknown LiteRT Quantizer variant 'aeq_int3'.*aeq_int8_per_channel"):
        lq.variant_recipe("aeq_int3")
    with pytest.raises(ValueError, match="unknown weight algorithm 'gptq'; valid: min_max, mse, octav"):
        lq.variant_recipe("aeq_int4_static", algorithm="gptq")


def test_bad_files_recipes_and_calibration_images_are_named(cnn):
    float_bytes, x = cnn["float"], cnn["x"]
    static = lq.variant_recipe("aeq_int8_per_channel")
    with pytest.raises(ValueError, match=r"already quantized \(it has INT8 tensors\).*float32 .tflite"):
        lq.quantize(cnn["int8"], static, x, 10)
    with pytest.raises(ValueError, match=r"already quantized \(it has DEQUANTIZE ops, FLOAT16 tensors\)"):
        lq.quantize(conversion.convert(cnn["model"], "float16"), lq.variant_recipe("aeq_dynamic_int8"))
    with pytest.raises(ValueError, match="not a readable .tflite flatbuffer"):
        lq.quantize(b"PK\x03\x04 a zip file, not a model", static, x, 10)
    with pytest.raises(TypeError, match="bytes of a .tflite file, got str"):
        lq.quantize("model.tflite", static, x, 10)
    with pytest.raises(ValueError, match="names op 'DEPTHWISE_CONV_2D', which the model does not have; its ops: CONV_2D"):
        lq.quantize(float_bytes, [dict(static[0], operation="DEPTHWISE_CONV_2D")], x, 10)
    with pytest.raises(ValueError, match="regex 'conv9' matches no op of the model; the scopes.*conv1"):
        lq.quantize(float_bytes, static + [dict(static[0], regex="conv9")], x, 10)
    with pytest.raises(ValueError, match="invalid regex"):
        lq.check_recipe(float_bytes, [dict(static[0], regex="conv(")])
    with pytest.raises(ValueError, match="non-empty list of configs"):
        lq.check_recipe(float_bytes, [])
    with pytest.raises(ValueError, match=r"shape \(512, 20, 28, 1\), the model input is \(1, 28, 28, 1\)"):
        lq.quantize(float_bytes, static, x[:, :20], 10)
    with pytest.raises(ValueError, match="float32 like the model input, got dtype float64"):
        lq.quantize(float_bytes, static, x.astype(np.float64), 10)
    with pytest.raises(ValueError, match="empty"):
        lq.quantize(float_bytes, static, x[:0], 1)
    bad = x[:10].copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        lq.quantize(float_bytes, static, bad, 10)
    with pytest.raises(ValueError, match="needs calibration images x"):
        lq.quantize(float_bytes, static)
    with pytest.raises(ValueError, match="unknown calibration 'ema'; valid: moving_average, min_max"):
        lq.quantize(float_bytes, static, x, 10, calibration="ema")


def test_validation_compares_every_tensor_and_the_error_builds_up(cnn):
    four_bit = lq.quantize_variant(cnn["float"], "aeq_int4_static", cnn["x"], 50)
    table = lq.validate(cnn["float"], four_bit, cnn["x_test"], 5)
    assert list(table.columns) == ["tensor", "kind", "mse", "snr_db", "cosine"]
    assert table["kind"].iloc[0] == "input" and (table["kind"] == "output").sum() == 1
    activations = table[table["kind"].isin(["intermediate", "output"])]
    assert activations["snr_db"].iloc[-1] < activations["snr_db"].iloc[0]  # the output has drifted most
    assert ((activations["cosine"] > 0.9) & (activations["cosine"] <= 1 + 1e-6)).all()
    with pytest.raises(ValueError, match="not a readable .tflite flatbuffer"):
        lq.validate(cnn["float"], b"not a model", cnn["x_test"], 5)


def test_weight_rounding_finds_a_weight_stored_one_step_apart(cnn):
    """Two files that differ in one stored weight: the function finds it, with the float weight and its scale."""
    import flatbuffers

    flat = lq.read_flatbuffer(cnn["int8"])
    graph = flat.subgraphs[0]
    index = lq.file_ops(cnn["int8"])[5]["inputs"][1]  # the first Dense kernel
    data = np.array(flat.buffers[graph.tensors[index].buffer].data, dtype=np.uint8).view(np.int8).copy()
    data[7] = data[7] + 1 if data[7] < 127 else data[7] - 1
    flat.buffers[graph.tensors[index].buffer].data = data.view(np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(flat.Pack(builder), file_identifier=b"TFL3")
    changed = bytes(builder.Output())
    found = lq.weight_rounding(cnn["float"], changed, cnn["int8"], 5)
    assert found["position"] == np.unravel_index(7, lq.file_ops(cnn["int8"])[5]["input_shapes"][1])
    assert abs(found["a"] - found["b"]) == 1
    assert found["float32"] == pytest.approx(found["float weight"] / found["scale"], rel=1e-6)
    assert lq.weight_rounding(cnn["float"], cnn["int8"], cnn["int8"], 5) == {}
    assert lq.weight_rounding(cnn["float"], cnn["int8"], cnn["int8"], 1) == {}  # MAX_POOL_2D has no weights
