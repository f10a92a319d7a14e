"""A fake-quant TFLite does not compute: Keras and its own TFLite file part (smoke mnist_cnn)."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.qat import placement


@pytest.fixture(scope="module")
def smoke_cnn():
    """The smoke-size mnist_cnn, from the session's shared cache (conftest)."""
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), (x_test, y_test) = mnist_for("mnist_cnn", "smoke")
    return model, x_train[:100], x_test, y_test


@pytest.fixture(scope="module")
def agreement(smoke_cnn):
    return placement.placement_agreement(*smoke_cnn).set_index("kind")


@pytest.mark.slow
def test_correct_placement_predicts_its_file_and_the_pre_relu_one_does_not(agreement):
    correct, wrong = agreement.loc["correct"], agreement.loc["pre_activation"]
    assert correct["keras_tflite_agreement"] >= 0.99
    # measured (smoke): 45.6 dB against 36.2 dB; the pre-ReLU rounding Keras applies is not in the file
    assert wrong["keras_tflite_sqnr_db"] < correct["keras_tflite_sqnr_db"] - 5
    assert wrong["keras_tflite_agreement"] <= correct["keras_tflite_agreement"]


@pytest.mark.slow
def test_pre_relu_range_covers_negatives_and_the_converter_drops_it(smoke_cnn):
    from qlab.conversion.converter import convert_qat
    from qlab.qat.quantize import range_variables
    from qlab.conversion.tflite import make_interpreter, predict_tflite

    model, x_calib, x_test, _ = smoke_cnn
    qat_model = placement.calibrated_placement_model(model, "pre_activation", x_calib)
    pre = range_variables(qat_model.get_layer("quant_conv1"))
    post = range_variables(qat_model.get_layer("quant_conv1_relu"))
    assert pre["post_activation_min"] < 0 and post["output_min"] == 0  # the linear output, then the ReLU's
    wrong_file = convert_qat(qat_model)
    ops = placement.op_names(wrong_file)
    assert "RELU" not in ops and ops.count("CONV_2D") == 2  # ReLU fused: one output, one range
    scales = [float(d["quantization"][0]) for d in make_interpreter(wrong_file).get_tensor_details()]
    pre_scale = (pre["post_activation_max"] - pre["post_activation_min"]) / 255
    assert not any(abs(s - pre_scale) <= 1e-6 * pre_scale for s in scales)  # the pre-ReLU grid is gone
    # what is left is exactly the correctly placed model's file
    correct_file = convert_qat(placement.calibrated_placement_model(model, "correct", x_calib))
    np.testing.assert_array_equal(predict_tflite(wrong_file, x_test), predict_tflite(correct_file, x_test))


@pytest.mark.slow
def test_per_tensor_kernel_before_batch_norm_leaves_the_mobilenet_convs_in_float():
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mobilenet_v1", "smoke", verbose=0)
    (x_train, _), (x_test, y_test) = mnist_for("mobilenet_v1", "smoke")
    table = placement.placement_agreement(model, x_train[:50], x_test[:100], y_test[:100],
                                          ["correct", "per_tensor_before_fold"]).set_index("kind")
    assert table.loc["correct", "dequantize_ops"] == 0  # TFMOT's per-axis kernels fold into int8 convs
    # 27 on mobilenet_v1: one per float conv but the first (its input is the int8 model input)
    assert table.loc["per_tensor_before_fold", "dequantize_ops"] >= 20
    assert (table["keras_tflite_agreement"] >= 0.99).all()
