"""How far an int8 TFLite model has drifted from float at every depth of its graph.

The LiteRT interpreter keeps every intermediate tensor when it is created with
``experimental_preserve_all_tensors=True`` (and without the XNNPACK delegate, which
would fuse the graph into one opaque node). Each op's output is dequantized and
compared with the float Keras model's output at the same point: the tensor of a
fused conv -> batch norm -> ReLU op is the output of the chain's last Keras layer
(:func:`qlab.zoo.introspect.fused_output_layer`). The int8 model's input to each
op is its own int8 output of the op before, so the error at depth ``d`` is all the
error accumulated up to ``d`` - unlike the QuantizationDebugger's per-layer
figure, where each layer's float twin reads the same (int8) input as the int8
layer and sees only the error that layer adds. Taught in ``08_compare_and_debug``.

The ops run on LiteRT's built-in kernels: XNNPACK, which
:func:`qlab.conversion.tflite.predict_tflite` uses, rounds some steps differently, so its
final output can differ from the last point here by a few percent of the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from qlab.ptq.debug import keras_layer_name
from qlab.zoo.introspect import fused_output_layer
from qlab.conversion.tflite import dequantize_output, interpreter_keeping_all_tensors, quantize_input

__all__ = ["DepthPoint", "depth_points", "error_by_depth"]

# Ops that only move data between float and int8 at the model's edges: not a depth of the model.
_EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")


@dataclass(frozen=True)
class DepthPoint:
    """One TFLite op output matched to the Keras layer whose float output it approximates."""

    op_index: int
    op_name: str
    tensor_index: int
    tensor_name: str
    keras_layer: str


def _keras_point(model: Any, tensor_name: str) -> str | None:
    """The Keras layer whose output the TFLite tensor ``tensor_name`` holds, or None."""
    name = keras_layer_name(tensor_name)
    if name == "(model output)":
        name = model.output_names[0]
    layer_names = {layer.name for layer in model.layers}
    return fused_output_layer(model, name) if name in layer_names else None


def depth_points(model: Any, interpreter: Any) -> list[DepthPoint]:
    """The ops of the TFLite graph, in execution order, that have a Keras counterpart.

    A layer reached twice (an int8 op and the DEQUANTIZE after it) keeps its first op.
    """
    tensors = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    points, seen = [], set()
    for op in interpreter._get_ops_details():  # the only API that lists ops in order
        if op["op_name"] in _EDGE_OPS or len(op["outputs"]) != 1:
            continue
        index = int(op["outputs"][0])
        layer = _keras_point(model, tensors[index])
        if layer is not None and layer not in seen:
            seen.add(layer)
            points.append(DepthPoint(int(op["index"]), op["op_name"], index, tensors[index], layer))
    return points


def _batches(x: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]


def _check_inputs(model: Any, x: Any, batch_size: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"x must be a float32 numpy array of images, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if len(x) == 0:
        raise ValueError("x is empty: there are no images to compare on")
    expected = tuple(model.input_shape)[1:]
    if x.shape[1:] != expected:
        raise ValueError(f"x has shape {x.shape}, the model input is {tuple(model.input_shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    return x


def _squared_sums(model: Any, interpreter: Any, points: list[DepthPoint], x: np.ndarray,
                  batch_size: int, verbose: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sum of squared errors and of squared float values at every point, over all of ``x``."""
    from qlab.zoo.keras2 import keras

    probe = keras.Model(model.inputs, [model.get_layer(p.keras_layer).output for p in points])
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    inp = interpreter.get_input_details()[0]
    sse, ssf = np.zeros(len(points)), np.zeros(len(points))
    for i, batch in enumerate(_batches(x, batch_size)):
        interpreter.resize_tensor_input(inp["index"], list(batch.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], quantize_input(batch, inp))
        interpreter.invoke()
        floats = probe(batch, training=False)
        floats = floats if isinstance(floats, (list, tuple)) else [floats]
        for j, (point, reference) in enumerate(zip(points, floats)):
            reference = np.asarray(reference, dtype=np.float64)
            values = dequantize_output(interpreter.get_tensor(point.tensor_index),
                                       details[point.tensor_index]).astype(np.float64)
            sse[j] += np.sum((values.reshape(reference.shape) - reference) ** 2)
            ssf[j] += np.sum(reference ** 2)
        if verbose:
            print(f"error_by_depth: {min((i + 1) * batch_size, len(x))}/{len(x)} images", flush=True)
    return sse, ssf


def error_by_depth(model: Any, model_bytes: bytes, x: np.ndarray, batch_size: int = 50,
                   debugger_errors: pd.DataFrame | None = None,
                   verbose: bool = False) -> pd.DataFrame:
    """The TFLite model's error against the float Keras model at every depth of the graph.

    Taught in ``08_compare_and_debug``.

    Args:
        model: the float Keras 2 model ``model_bytes`` was converted from.
        model_bytes: its TFLite flatbuffer (int8, int16x8, float: any variant).
        x: float32 images shaped like the model input.
        debugger_errors: optionally :func:`qlab.ptq.debug.layer_error_table` of the same
            model on the same images; adds the debugger's same-input error per point.

    Returns:
        One row per point in graph order: ``depth`` (1, 2, ...), ``op_index``, ``op_name``,
        ``keras_layer``, ``relative_rmse`` (RMSE over the float output's RMS), ``sqnr_db``,
        ``float_rms``; with ``debugger_errors`` also ``same_input_relative_rmse`` and
        ``same_input_sqnr_db`` (the debugger's RMSE over the same float RMS).
    """
    x = _check_inputs(model, x, batch_size)
    interpreter = interpreter_keeping_all_tensors(model_bytes)
    points = depth_points(model, interpreter)
    if not points:
        raise ValueError("no op of model_bytes matches a layer of model: was it converted "
                         "from this model?")
    sse, ssf = _squared_sums(model, interpreter, points, x, batch_size, verbose)
    size = np.array([float(np.prod(model.get_layer(p.keras_layer).output_shape[1:])) * len(x)
                     for p in points])
    with np.errstate(divide="ignore", invalid="ignore"):
        table = pd.DataFrame({
            "depth": np.arange(1, len(points) + 1), "op_index": [p.op_index for p in points],
            "op_name": [p.op_name for p in points], "keras_layer": [p.keras_layer for p in points],
            "relative_rmse": np.sqrt(sse / ssf), "sqnr_db": 10 * np.log10(ssf / sse),
            "float_rms": np.sqrt(ssf / size)})
    if debugger_errors is not None:
        table = _with_same_input_error(model, table, debugger_errors)
    return table


def _with_same_input_error(model: Any, table: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """Add the debugger's per-layer RMSE, relative to the same float RMS, to ``table``."""
    if "rmse" not in errors.columns or "layer" not in errors.columns:
        raise TypeError("debugger_errors must be the DataFrame of qlab.ptq.debug.layer_error_table, "
                        f"got columns {list(errors.columns)}")
    rmse: dict[str, float] = {}
    for tensor, value in zip(errors["layer"], errors["rmse"]):
        layer = _keras_point(model, tensor)
        if layer is not None:
            rmse.setdefault(layer, float(value))
    same = table["keras_layer"].map(rmse).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["same_input_relative_rmse"] = same / table["float_rms"]
        table["same_input_sqnr_db"] = -20 * np.log10(table["same_input_relative_rmse"])
    return table
