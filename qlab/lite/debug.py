"""Per-layer quantization error with TFLite's ``QuantizationDebugger``, and selective quantization.

The debugger runs the float and the int8 model side by side on a few
representative images and compares every quantized layer's output with its
float counterpart. ``rmse/scale`` is the root-mean-square error in units of the
tensor's quantization step: about 0.29 (= 1/sqrt(12)) is pure rounding noise;
much more means clipping or a badly fitting range. The worst layers are the
candidates to keep in float (a denylist): :func:`selective_quantization` measures
how much accuracy that recovers and how many bytes it costs.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from qlab.lite.quiet import tflite_chatter_silenced
from qlab.lite.conversion import keras_converter, representative_dataset



@contextlib.contextmanager
def _debugger(model: Any, dataset: Callable) -> Iterator[Any]:
    """A ``QuantizationDebugger`` for ``model``, usable inside the ``with`` block.

    It calibrates once; to quantize with a denylist, set its ``options``.
    """
    from qlab.lite.keras2 import tf

    with keras_converter(model) as converter:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        yield tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)


def keras_layer_name(tensor_name: str) -> str:
    """The Keras layer a TFLite tensor name comes from, e.g. 'model/conv1/Relu;...' -> 'conv1'."""
    if tensor_name.startswith("StatefulPartitionedCall"):
        return "(model output)"  # the last layer's output carries the graph's output name
    parts = tensor_name.split(";")[0].split("/")
    return parts[1] if len(parts) > 2 else tensor_name


def layer_error_table(model: Any, x: np.ndarray, num_samples: int = 100) -> pd.DataFrame:
    """Per-layer error of full-integer quantization, worst first.

    Taught in ``08_compare_and_debug``; used again in ``09_your_own_model``.

    Args:
        model: a float Keras 2 model.
        x: float32 images shaped like the model input; the first ``num_samples``
            calibrate the int8 model and are the debug data set.

    Returns:
        One row per quantized layer output: ``keras_layer`` (a readable name),
        ``layer`` (the TFLite tensor name, what a denylist takes), ``op_name``, ``num_elements``, ``rmse/scale``,
        ``max_abs_error``, ``mean_error``, ``scale``, ``zero_point``, and its
        position ``op_index`` in the graph.
    """
    dataset = representative_dataset(x, num_samples, model.input_shape)
    buffer = io.StringIO()
    with tflite_chatter_silenced(), _debugger(model, dataset) as debugger:
        debugger.run()
        debugger.layer_statistics_dump(buffer)
    buffer.seek(0)
    stats = pd.read_csv(buffer)
    stats["rmse/scale"] = np.sqrt(stats["mean_squared_error"]) / stats["scale"]
    stats = stats.rename(columns={"tensor_name": "layer"}).reset_index(names="op_index")
    stats["keras_layer"] = stats["layer"].map(keras_layer_name)
    columns = ["op_index", "keras_layer", "op_name", "num_elements", "rmse/scale", "max_abs_error",
               "mean_error", "scale", "zero_point", "layer"]
    return stats[columns].sort_values("rmse/scale", ascending=False, ignore_index=True)


def selective_quantization(model: Any, x_calib: np.ndarray, x_test: np.ndarray,
                           y_test: np.ndarray, num_float_layers: Sequence[int] = (0, 1, 2, 3),
                           num_samples: int = 100,
                           errors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Keep the ``k`` layers with the largest ``rmse/scale`` in float, for each ``k``.

    Returns a DataFrame with ``num_float_layers``, ``denylist``, ``accuracy`` (TFLite,
    on ``x_test``), ``size_bytes`` and the float32 model's accuracy and size for
    reference. ``k = 0`` is the fully quantized model (float input and output).
    Taught in ``08_compare_and_debug``.
    """
    from qlab.lite.keras2 import tf
    from qlab.lite.conversion import convert
    from qlab.lite.tflite import evaluate_tflite

    if errors is None:
        errors = layer_error_table(model, x_calib, num_samples)
    for k in num_float_layers:
        if not 0 <= k <= len(errors):
            raise ValueError(f"num_float_layers must be in [0, {len(errors)}], got {k}")
    dataset = representative_dataset(x_calib, num_samples, model.input_shape)
    float_bytes = convert(model, "float32")
    float_accuracy = evaluate_tflite(float_bytes, x_test, y_test)
    rows = []
    # one calibration for all k: setting the debugger's options re-quantizes the same
    # calibrated model with the new denylist, which is what a fresh debugger would do
    with tflite_chatter_silenced(), _debugger(model, dataset) as debugger:
        for k in num_float_layers:
            denylist = list(errors["layer"][:k])
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=denylist or None)
            model_bytes = debugger.get_nondebug_quantized_model()
            rows.append({"num_float_layers": k, "denylist": denylist,
                         "accuracy": evaluate_tflite(model_bytes, x_test, y_test),
                         "size_bytes": len(model_bytes), "float32_accuracy": float_accuracy,
                         "float32_size_bytes": len(float_bytes)})
    return pd.DataFrame(rows)


def weight_scale_spread(model_bytes: bytes) -> pd.DataFrame:
    """For every per-channel int8 weight tensor of a TFLite model: how far its channel scales spread.

    ``max/min scale`` is what per-tensor quantization throws away: with one scale
    for the whole tensor, the channel with the smallest range gets only about
    ``127 / (max/min scale)`` levels instead of 127. Depthwise kernels with batch
    norm folded in are where this ratio gets large.
    """
    from qlab.lite.tflite import make_interpreter

    rows = []
    for detail in make_interpreter(model_bytes).get_tensor_details():
        scales = detail["quantization_parameters"]["scales"]
        # per-tensor conversion can still store one (identical) scale per output channel
        # for FULLY_CONNECTED weights: that is per-tensor quantization, not per-channel
        if detail["dtype"] != np.int8 or len(scales) < 2 or np.all(scales == scales[0]):
            continue
        rows.append({"tensor": detail["name"], "channels": len(scales),
                     "max/min scale": float(scales.max() / max(scales.min(), 1e-30)),
                     "levels_of_smallest_channel_if_per_tensor":
                         float(127 * scales.min() / scales.max())})
    columns = ["tensor", "channels", "max/min scale", "levels_of_smallest_channel_if_per_tensor"]
    return pd.DataFrame(rows, columns=columns).sort_values("max/min scale", ascending=False,
                                                           ignore_index=True)
