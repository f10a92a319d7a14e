"""The smoke MNIST CNN's int8 file on the microcontroller runtime (TFLM) beside LiteRT: agreement and arena."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.conversion import micro, tflite


@pytest.fixture(scope="module")
def smoke_int8():
    """The smoke-size mnist_cnn (shared cache, conftest), converted to int8_per_channel, and 50 test images."""
    import qlab

    model = qlab.load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), (x_test, _) = qlab.mnist_for("mnist_cnn", "smoke")
    return qlab.convert(model, "int8_per_channel", x_train, 100), x_test[:50]


@pytest.mark.slow
def test_the_micro_runtime_agrees_with_litert(smoke_int8):
    model_bytes, x = smoke_int8
    result = micro.micro_agreement(model_bytes, x)
    assert result.images == 50 and result.flash_bytes == len(model_bytes)
    assert result.top1_agreement >= 0.9
    assert result.max_step_difference <= 2  # XNNPACK requantizes in float: a step apart at most here
    # TFLM's kernels follow LiteRT's reference kernels, rounding and all
    assert result.reference_identical == 1.0 and result.reference_max_step_difference == 0
    # conv1's input (28x28x1) and output (26x26x32) int8 activations are live at once
    assert result.arena_bytes >= 28 * 28 + 26 * 26 * 32


@pytest.mark.slow
def test_litert_integer_outputs_are_litert_int8_tensor(smoke_int8):
    model_bytes, x = smoke_int8
    interpreter = tflite.make_interpreter(model_bytes)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    direct = []
    for image in tflite.quantize_input(x[:20], inp):
        interpreter.set_tensor(inp["index"], image[np.newaxis])
        interpreter.invoke()
        direct.append(interpreter.get_tensor(out["index"])[0])
    np.testing.assert_array_equal(micro.litert_integer_outputs(model_bytes, x[:20], out), np.stack(direct))


@pytest.mark.slow
def test_the_smallest_arena_runs_the_cnn(smoke_int8):
    model_bytes, x = smoke_int8
    smallest = micro.smallest_arena(model_bytes)
    x_int = tflite.quantize_input(x[:5], tflite.make_interpreter(model_bytes).get_input_details()[0])
    np.testing.assert_array_equal(micro.micro_predict(micro.micro_interpreter(model_bytes, smallest), x_int),
                                  micro.micro_predict(micro.micro_interpreter(model_bytes), x_int))
    with pytest.raises(ValueError, match=f"too small.*{smallest} bytes"):
        micro.micro_interpreter(model_bytes, smallest - 1)
