"""qlab.intsim: integer-only int8 inference, checked value for value against the TFLite interpreter.

Tiny seeded models converted here: every intermediate tensor matches the reference
kernels (BUILTIN_REF), errors are clear, the report can fail. Then (slow) the
workbook's own int8 variants of mnist_cnn, mobilenet_v1 and mobilenet_v2 (smoke
size) on 200 MNIST test images. The kernels' hand-computed cases are unit tests
(``tests/unit/numerics/test_intkernels.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics import intkernels as K
from qlab.conversion import intsim

# --- tiny converted models -----------------------------------------------------------------------


def _mnist_like(keras):
    keras.utils.set_random_seed(0)  # a fixed model: the same test every run
    i = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(i)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10, bias_initializer="random_normal")(x)
    return keras.Model(i, keras.layers.Softmax()(x))


def _mobile_like(keras):
    keras.utils.set_random_seed(0)  # a fixed model: the same test every run
    i = keras.Input((16, 16, 3))
    x = keras.layers.ReLU(6.0)(i)  # standalone RELU6
    x = keras.layers.ZeroPadding2D(((1, 1), (2, 1)))(x)  # PAD (not foldable into SAME)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.Conv2D(8, 1)(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(i, x)


def _convert(model, per_channel=True, int8_io=True):
    from qlab.zoo.keras2 import tf

    rng = np.random.default_rng(0)
    shape = model.input_shape[1:]

    def representative_dataset():
        for _ in range(16):
            yield [rng.normal(size=(1, *shape)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if not per_channel:
        converter._experimental_disable_per_channel = True
    return converter.convert()


@pytest.fixture(scope="module")
def tiny_models():
    from qlab.zoo.keras2 import keras, tf

    tf.random.set_seed(0)
    mnist, mobile = _mnist_like(keras), _mobile_like(keras)
    return {
        "mnist_per_channel": _convert(mnist),
        "mnist_per_tensor": _convert(mnist, per_channel=False),
        "mobile_per_channel": _convert(mobile),
        "mobile_per_tensor": _convert(mobile, per_channel=False),
        "mobile_float_io": _convert(mobile, int8_io=False),  # QUANTIZE ... DEQUANTIZE
    }


def _inputs(model, n=40, seed=0):
    info = model.tensors[model.inputs[0]]
    rng = np.random.default_rng(seed)
    if info.dtype == np.float32:
        return (rng.normal(size=(n, *info.shape[1:])) * 2).astype(np.float32)
    return rng.integers(-128, 128, size=(n, *info.shape[1:])).astype(np.int8)


@pytest.mark.parametrize("name", ["mnist_per_channel", "mnist_per_tensor", "mobile_per_channel",
                                  "mobile_per_tensor", "mobile_float_io"])
def test_every_tensor_is_bit_exact_with_the_reference_kernels(tiny_models, name):
    model = intsim.load(tiny_models[name])
    report = intsim.check(model, _inputs(model))
    assert report.bit_exact, report
    assert len(report.tensors) == len(model.operators)
    # the outputs must not be degenerate, or agreement would prove little
    output = intsim.run(model, _inputs(model))
    assert len(np.unique(output)) > 5


def test_the_tiny_models_cover_the_operators(tiny_models):
    names = set()
    for content in tiny_models.values():
        names |= {op.name for op in intsim.load(content).operators}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
            "ADD", "RESHAPE", "PAD", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "RELU6"} <= names


def test_check_reports_a_wrong_kernel(tiny_models, monkeypatch):
    model = intsim.load(tiny_models["mobile_per_channel"])
    original = K.add
    monkeypatch.setattr(K, "add", lambda *a, **k: np.clip(original(*a, **k).astype(int) + 1, -128, 127)
                        .astype(np.int8))
    report = intsim.check(model, _inputs(model, n=5))
    add_rows = [t for t in report.tensors if t.operator == "ADD"]
    assert not report.bit_exact and add_rows[0].mismatches > 0 and add_rows[0].max_difference >= 1
    assert "values differ" in repr(report) and "<table>" in report._repr_html_()


def test_mismatch_report_against_the_optimized_kernels(tiny_models):
    model = intsim.load(tiny_models["mobile_per_channel"])
    x = _inputs(model, n=10)
    optimized = intsim.check(model, x, kernels="optimized")
    assert optimized.kernels == "optimized" and len(optimized.tensors) == len(model.operators)
    assert all(t.mismatches <= t.size for t in optimized.tensors)
    default = intsim.check(model, x, kernels="default")  # XNNPACK: only the outputs are readable
    assert [t.index for t in default.tensors] == list(model.outputs)
    with pytest.raises(ValueError, match="kernels"):
        intsim.check(model, x, kernels="fast")


def test_run_accepts_path_and_bytes_and_checks_its_input(tiny_models, tmp_path):
    content = tiny_models["mnist_per_channel"]
    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    x = _inputs(intsim.load(content), n=3)
    assert np.array_equal(intsim.run(path, x), intsim.run(content, x))
    assert intsim.run(content, x[0]).shape == (1, 10)
    with pytest.raises(TypeError, match="dtype int8"):
        intsim.run(content, x.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        intsim.run(content, x[:, :5])
    with pytest.raises(TypeError, match="model"):
        intsim.run(3, x)


def test_quantize_input_matches_the_interpreter_quantization(tiny_models):
    model = intsim.load(tiny_models["mobile_float_io"])
    x = _inputs(model, n=4)
    quantize_op = model.operators[0]
    ours = intsim.run_all(model, x)[quantize_op.outputs[0]]
    assert quantize_op.name == "QUANTIZE"
    scale, zero_point = model.tensors[quantize_op.outputs[0]].scalar_quantization()
    assert np.array_equal(ours, K.quantize(x, scale=scale, zero_point=zero_point))


def test_unsupported_operator_is_named(tmp_path):
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)  # a fixed model: the same test every run
    i = keras.Input((8,))
    model = keras.Model(i, keras.layers.Dense(4, activation="tanh")(keras.layers.Dense(8)(i)))
    content = _convert(model)
    with pytest.raises(intsim.UnsupportedOperatorError, match="TANH"):
        intsim.run(content, np.zeros((1, 8), dtype=np.int8))


@pytest.mark.parametrize("op_name", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_explain_reproduces_the_kernel_value(tiny_models, op_name):
    model = intsim.load(tiny_models["mobile_per_channel"])
    x = _inputs(model, n=1, seed=3)
    op = next(o for o in model.operators if o.name == op_name)
    out = intsim.run_all(model, x)[op.outputs[0]][0]
    index = tuple(int(i) for i in np.unravel_index(np.argmax(out), out.shape))
    explanation = intsim.explain(model, op.index, index, x[0])
    assert explanation.steps[-1].value == int(out[index])
    scale, zero_point = model.tensors[op.outputs[0]].scalar_quantization()
    assert explanation.real_value == pytest.approx(scale * (int(out[index]) - zero_point))
    # the integer result stays within one output step (plus clamping) of the float layer
    assert abs(explanation.real_value - explanation.float_reference) <= scale * 1.01
    assert "round" in repr(explanation) and "<table>" in explanation._repr_html_()
    with pytest.raises(ValueError, match="output_index"):
        intsim.explain(model, op.index, (999,) * len(index), x[0])


def test_explain_refuses_other_operators(tiny_models):
    model = intsim.load(tiny_models["mobile_per_channel"])
    add = next(o for o in model.operators if o.name == "ADD")
    with pytest.raises(ValueError, match="explain covers"):
        intsim.explain(model, add.index, (0, 0, 0), _inputs(model, n=1)[0])


# --- the workbook's own int8 models --------------------------------------------------------------

PIPELINE_CASES = [("mnist_cnn", "int8_per_channel"), ("mnist_cnn", "int8_per_tensor"),
                  ("mnist_cnn", "qat_int8"),
                  ("mobilenet_v1", "int8_per_channel"), ("mobilenet_v1", "int8_per_tensor"),
                  ("mobilenet_v2", "int8_per_channel"), ("mobilenet_v2", "int8_per_tensor")]


@pytest.mark.slow
@pytest.mark.parametrize("name,variant", PIPELINE_CASES)
def test_workbook_int8_models_are_bit_exact(name, variant):  # smoke models from the shared cache
    from qlab.conversion import converter as conversion
    from qlab.zoo import models

    (x_train, _), (x_test, _) = models.mnist_for(name, "smoke")
    if variant.startswith("qat"):
        from qlab.qat.training import load_or_fine_tune

        content = conversion.convert_qat(load_or_fine_tune(name, variant, "smoke", verbose=0))
    else:
        content = conversion.convert(models.load_or_train(name, "smoke", verbose=0), variant, x_train[:200])
    model = intsim.load(content)
    x = intsim.quantize_model_input(model, x_test[:200])
    report = intsim.check(model, x)
    assert report.examples == 200 and report.bit_exact, report
