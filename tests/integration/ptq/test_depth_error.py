"""Error by depth: the int8 model's intermediate tensors against the float Keras model."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def small_net():
    """A seeded conv -> BN -> ReLU6 -> depthwise -> residual add -> dense net, and images."""
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((12, 12, 1))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(name="conv_bn")(x)
    x = layers.ReLU(6.0, name="conv_relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.Add(name="add")([x, y])
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(4, name="logits")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("conv_bn")  # non-trivial statistics, so folding matters
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8),
                    rng.uniform(0.5, 2, 8)])
    return model, rng.random((24, 12, 12, 1), dtype=np.float32)


@pytest.mark.slow
def test_points_follow_the_graph_and_fused_chains_map_to_their_last_layer(small_net):
    from qlab.conversion.converter import convert
    from qlab.ptq.depth_error import error_by_depth

    model, x = small_net
    table = error_by_depth(model, convert(model, "int8_per_channel", x, 24), x, batch_size=10)
    assert list(table["keras_layer"]) == ["conv_relu", "dw", "add", "pool", "logits"]
    assert list(table["depth"]) == [1, 2, 3, 4, 5] and table["op_index"].is_monotonic_increasing
    assert (table["relative_rmse"] > 0).all() and (table["relative_rmse"] < 0.1).all()
    np.testing.assert_allclose(table["sqnr_db"], -20 * np.log10(table["relative_rmse"]))


def _scores(model_bytes, x, op_resolver):
    """The model's output on ``x`` from a plain LiteRT run (no intermediate tensors kept)."""
    from ai_edge_litert.interpreter import Interpreter

    from qlab.conversion.tflite import dequantize_output, quantize_input

    interpreter = Interpreter(model_content=model_bytes, experimental_op_resolver_type=op_resolver)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], quantize_input(x, inp))
    interpreter.invoke()
    return dequantize_output(interpreter.get_tensor(out["index"]), out).astype(np.float64)


@pytest.mark.slow
def test_last_point_agrees_with_the_interpreter_output_and_float32_has_no_error(small_net):
    from ai_edge_litert.interpreter import OpResolverType

    from qlab.conversion.converter import convert
    from qlab.ptq.depth_error import error_by_depth

    model, x = small_net
    int8 = convert(model, "int8_per_channel", x, 24)
    table = error_by_depth(model, int8, x, batch_size=7)  # uneven batches on purpose
    reference = model.predict(x, verbose=0).astype(np.float64)

    def relative_rmse(scores):
        return np.sqrt(np.mean((scores - reference) ** 2) / np.mean(reference ** 2))

    # the same built-in kernels, run the usual way, give exactly the last point's error
    builtin = _scores(int8, x, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    assert table["relative_rmse"].iloc[-1] == pytest.approx(relative_rmse(builtin), rel=1e-6)
    # XNNPACK (what predict_tflite runs) rounds some steps differently: close, not equal
    xnnpack = _scores(int8, x, OpResolverType.AUTO)
    assert table["relative_rmse"].iloc[-1] == pytest.approx(relative_rmse(xnnpack), rel=0.1)
    float_table = error_by_depth(model, convert(model, "float32"), x)
    assert (float_table["relative_rmse"] < 1e-5).all()


@pytest.mark.slow
def test_debugger_same_input_error_joins_on_the_same_points(small_net):
    from qlab.conversion.converter import convert
    from qlab.ptq.debug import layer_error_table
    from qlab.ptq.depth_error import error_by_depth
    from qlab.plots.layer_errors import plot_error_by_depth

    model, x = small_net
    errors = layer_error_table(model, x, num_samples=24)
    table = error_by_depth(model, convert(model, "int8_per_channel", x, 24), x,
                           debugger_errors=errors)
    same = table.set_index("keras_layer")["same_input_relative_rmse"]
    assert np.isfinite(same[["conv_relu", "dw", "logits"]]).all()
    # the first layer reads the same quantized input either way: both measures agree there
    assert same["conv_relu"] == pytest.approx(table["relative_rmse"][0], rel=0.3)
    assert len(plot_error_by_depth(table).axes[0].lines) == 2


def test_bad_inputs_name_the_argument(small_net):
    from qlab.ptq.depth_error import error_by_depth

    model, x = small_net
    with pytest.raises(TypeError, match="model_bytes"):
        error_by_depth(model, "not bytes", x)
    with pytest.raises(TypeError, match="x must be a float32"):
        error_by_depth(model, b"", x.astype(np.float64))
    with pytest.raises(ValueError, match="x has shape"):
        error_by_depth(model, b"", x[:, :10])
    with pytest.raises(ValueError, match="x is empty"):
        error_by_depth(model, b"", x[:0])
    with pytest.raises(ValueError, match="batch_size"):
        error_by_depth(model, b"", x, batch_size=0)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        error_by_depth(model, b"", bad)


@pytest.mark.slow
def test_the_widget_takes_a_model_by_depth(small_net):
    import matplotlib

    matplotlib.use("Agg")
    from qlab import widgets

    model, x = small_net
    w = widgets.ErrorAccumulation.for_model_by_depth(model, x, num_samples=24)
    assert list(w.depth_profile["keras_layer"]) == ["conv_relu", "dw", "add", "pool", "logits"]
    assert "same_input_relative_rmse" in w.depth_profile.columns
    assert w.profile_image.value[:4] == b"\x89PNG"
    w.close()
