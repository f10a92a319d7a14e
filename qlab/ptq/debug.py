"""Per-layer quantization error with TFLite's ``QuantizationDebugger``, and selective quantization.

The debugger runs the float and the int8 model side by side on a few
representative images and compares every quantized layer's output with its
float counterpart. ``rmse/scale`` is the root-mean-square error in units of the
tensor's quantization step: about 0.29 (= 1/sqrt(12)) is pure rounding noise;
much more means clipping or a badly fitting range. The worst layers are the
candidates to keep in float (a denylist): :func:`float_layer_recovery` keeps them
in float one at a time and measures what each step recovers and how many KB it
costs (:func:`selective_quantization` does the same for chosen counts of layers).
The debugger quantizes per channel unless told ``per_channel=False``, which gives
the ``int8_per_tensor`` variant's weights.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from qlab.zoo.quiet import tflite_chatter_silenced
from qlab.conversion.converter import keras_converter, representative_dataset
from qlab.numerics.validate import check_bool, check_int


@contextlib.contextmanager
def quantization_debugger(model: Any, dataset: Callable, per_channel: bool = True) -> Iterator[Any]:
    """A ``QuantizationDebugger`` for ``model``, usable inside the ``with`` block.

    It calibrates once; to quantize with a denylist, set its ``options``. With
    ``per_channel=False`` it quantizes the weights as the ``int8_per_tensor``
    variant does (the converter's private per-channel switch, which the debugger
    reads when it quantizes).
    """
    from qlab.zoo.keras2 import tf

    with keras_converter(model) as converter:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter._experimental_disable_per_channel = not per_channel
        yield tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)


def keras_layer_name(tensor_name: str) -> str:
    """The Keras layer a TFLite tensor name comes from, e.g. 'model/conv1/Relu;...' -> 'conv1'."""
    if tensor_name.startswith("StatefulPartitionedCall"):
        return "(model output)"  # the last layer's output carries the graph's output name
    parts = tensor_name.split(";")[0].split("/")
    return parts[1] if len(parts) > 2 else tensor_name


def layer_error_table(model: Any, x: np.ndarray, num_samples: int = 100,
                      per_channel: bool = True) -> pd.DataFrame:
    """Per-layer error of full-integer quantization, worst first.

    Taught in ``08_compare_and_debug``; used again in ``12_your_own_model``.

    Args:
        model: a float Keras 2 model.
        x: float32 images shaped like the model input; the first ``num_samples``
            calibrate the int8 model and are the debug data set.
        per_channel: False quantizes the weights per tensor, like the
            ``int8_per_tensor`` variant.

    Returns:
        One row per quantized layer output: ``keras_layer`` (a readable name),
        ``layer`` (the TFLite tensor name, what a denylist takes), ``op_name``, ``num_elements``, ``rmse/scale``,
        ``rmse`` (in the tensor's own units), ``max_abs_error``, ``mean_error``, ``scale``,
        ``zero_point``, and its position ``op_index`` in the graph.
    """
    per_channel = check_bool(per_channel, "per_channel")
    dataset = representative_dataset(x, num_samples, model.input_shape)
    buffer = io.StringIO()
    with tflite_chatter_silenced(), quantization_debugger(model, dataset, per_channel) as debugger:
        debugger.run()
        debugger.layer_statistics_dump(buffer)
    buffer.seek(0)
    stats = pd.read_csv(buffer)
    stats["rmse"] = np.sqrt(stats["mean_squared_error"])
    stats["rmse/scale"] = stats["rmse"] / stats["scale"]
    stats = stats.rename(columns={"tensor_name": "layer"}).reset_index(names="op_index")
    stats["keras_layer"] = stats["layer"].map(keras_layer_name)
    columns = ["op_index", "keras_layer", "op_name", "num_elements", "rmse/scale", "rmse",
               "max_abs_error", "mean_error", "scale", "zero_point", "layer"]
    return stats[columns].sort_values("rmse/scale", ascending=False, ignore_index=True)


def selective_quantization(model: Any, x_calib: np.ndarray, x_test: np.ndarray,
                           y_test: np.ndarray, num_float_layers: Sequence[int] = (0, 1, 2, 3),
                           num_samples: int = 100,
                           errors: pd.DataFrame | None = None,
                           per_channel: bool = True) -> pd.DataFrame:
    """Keep the ``k`` layers with the largest ``rmse/scale`` in float, for each ``k``.

    Returns a DataFrame with ``num_float_layers``, ``denylist``, ``accuracy`` (TFLite,
    on ``x_test``), ``size_bytes`` and the float32 model's accuracy and size for
    reference. ``k = 0`` is the fully quantized model (float input and output).
    The fixed-count form of :func:`float_layer_recovery`, which ``08_compare_and_debug`` teaches.
    """
    from qlab.conversion.converter import convert
    from qlab.conversion.tflite import evaluate_tflite

    per_channel = check_bool(per_channel, "per_channel")
    if errors is None:
        errors = layer_error_table(model, x_calib, num_samples, per_channel)
    for k in num_float_layers:
        if not 0 <= k <= len(errors):
            raise ValueError(f"num_float_layers must be in [0, {len(errors)}], got {k}")
    dataset = representative_dataset(x_calib, num_samples, model.input_shape)
    float_bytes = convert(model, "float32")
    float_accuracy = evaluate_tflite(float_bytes, x_test, y_test)
    rows = []
    # one calibration for all k: setting the debugger's options re-quantizes the same
    # calibrated model with the new denylist, which is what a fresh debugger would do
    with tflite_chatter_silenced(), quantization_debugger(model, dataset, per_channel) as debugger:
        for k in num_float_layers:
            denylist = list(errors["layer"][:k])
            model_bytes = quantized_with_denylist(debugger, denylist)
            rows.append({"num_float_layers": k, "denylist": denylist,
                         "accuracy": evaluate_tflite(model_bytes, x_test, y_test),
                         "size_bytes": len(model_bytes), "float32_accuracy": float_accuracy,
                         "float32_size_bytes": len(float_bytes)})
    return pd.DataFrame(rows)


#: How :func:`float_layer_recovery` picks the next layer to keep in float.
RECOVERY_ORDERS: dict[str, str] = {
    "debugger": "the QuantizationDebugger's table, largest rmse/scale first",
    "greedy": "each step, the layer whose float copy makes the model agree most with float32 "
              "on the calibration images (no test labels used)",
    "greedy_per_kb": "as greedy, but the most agreement won per KB the float copy adds",
}
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def quantized_with_denylist(debugger: Any, denylist: Sequence[str]) -> bytes:
    """The debugger's calibrated model quantized with ``denylist`` kept in float."""
    from qlab.zoo.keras2 import tf

    debugger.options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=list(denylist) or None)
    return debugger.get_nondebug_quantized_model()


def _agreement(model_bytes: bytes, x_select: np.ndarray, reference: np.ndarray) -> float:
    from qlab.conversion.tflite import predict_tflite

    return float(np.mean(predict_tflite(model_bytes, x_select).argmax(1) == reference))


def _greedy_next(debugger: Any, denylist: list[str], candidates: Sequence[str],
                 x_select: np.ndarray, reference: np.ndarray, per_kb: bool) -> str:
    """The candidate whose float copy raises top-1 agreement with ``reference`` most (per KB added)."""
    current = quantized_with_denylist(debugger, denylist)
    base, base_size = _agreement(current, x_select, reference), len(current)
    scores = {}
    for tensor in (c for c in candidates if c not in denylist):
        trial = quantized_with_denylist(debugger, [*denylist, tensor])
        gain = _agreement(trial, x_select, reference) - base
        # per KB: a layer that wins nothing is never preferred for being cheap
        kb = max(len(trial) - base_size, 1) / 1024
        scores[tensor] = (gain / kb if gain > 0 else gain - 1.0) if per_kb else gain
    if not scores:
        raise ValueError("no layer left to keep in float: lower max_float_layers or raise "
                         "greedy_candidates")
    return max(scores, key=scores.get)


def _recovery_candidates(errors: pd.DataFrame, max_float_layers: Any, order: str,
                         greedy_candidates: Any) -> list[str]:
    """Check the arguments that depend on the debugger's table; the tensors a greedy order may choose."""
    if isinstance(max_float_layers, bool) or not isinstance(max_float_layers, (int, np.integer)) \
            or not 1 <= max_float_layers <= len(errors):
        raise ValueError(f"max_float_layers must be an integer in [1, {len(errors)}] (the "
                         f"debugger's table has {len(errors)} layers), got {max_float_layers!r}")
    if greedy_candidates is not None and (isinstance(greedy_candidates, bool) or not isinstance(
            greedy_candidates, (int, np.integer)) or greedy_candidates < 1):
        raise ValueError(f"greedy_candidates must be a positive integer or None (all weight layers), "
                         f"got {greedy_candidates!r}")
    candidates = list(errors.loc[errors["op_name"].isin(_WEIGHT_OPS), "layer"][:greedy_candidates])
    if order != "debugger" and max_float_layers > len(candidates):
        raise ValueError(f"max_float_layers={max_float_layers} but the greedy order chooses among "
                         f"{len(candidates)} weight layers (greedy_candidates={greedy_candidates})")
    return candidates


def _check_recovery_inputs(x_calib: Any, x_test: Any, y_test: Any, order: Any,
                           greedy_samples: Any) -> int:
    """Check :func:`float_layer_recovery`'s arguments that need no model; return ``greedy_samples``."""
    if order not in RECOVERY_ORDERS:
        raise ValueError(f"order must be one of {list(RECOVERY_ORDERS)}, got {order!r}")
    # no upper bound: asking for more images than x_calib holds scores on all of them
    greedy_samples = check_int(greedy_samples, "greedy_samples", 1, sys.maxsize)
    for argument, value in (("x_calib", x_calib), ("x_test", x_test), ("y_test", y_test)):
        if len(value) == 0:
            raise ValueError(f"{argument} is empty; float_layer_recovery needs at least one image "
                             f"(and label) in x_calib, x_test and y_test")
    if len(x_test) != len(y_test):
        raise ValueError(f"x_test has {len(x_test)} images but y_test has {len(y_test)} labels; "
                         f"they must be the same length")
    return greedy_samples


def float_layer_recovery(model: Any, x_calib: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                         max_float_layers: int = 5, per_channel: bool = False,
                         num_samples: int = 100, order: str = "debugger",
                         errors: pd.DataFrame | None = None, greedy_candidates: int | None = 12,
                         greedy_samples: int = 500, verbose: bool = True) -> pd.DataFrame:
    """Keep layers in float one at a time and measure the accuracy each step wins back, and its KB.

    Taught in ``08_compare_and_debug``. The debugger quantizes with the same
    settings as the broken variant (``per_channel=False``: per-tensor weights,
    like ``int8_per_tensor``); every step re-quantizes its calibrated model with
    one more layer on the denylist (float inputs and outputs, like the debugger's own).

    Args:
        order: ``"debugger"`` (worst ``rmse/scale`` first), ``"greedy"`` or
            ``"greedy_per_kb"``; see :data:`RECOVERY_ORDERS`.
        errors: the debugger's table (:func:`layer_error_table`, same ``per_channel``),
            computed here if not given.
        greedy_candidates: with a greedy order, how many of the debugger's worst
            weight layers (conv, depthwise, dense) to try at each step (None: all).
        greedy_samples: calibration images the greedy choice is scored on (an
            integer >= 1; at most ``len(x_calib)`` are used).

    Returns:
        One row per ``k`` = 0 (all int8) .. ``max_float_layers``: ``order``, ``k``,
        ``keras_layer`` and ``layer`` (the tensor just added to the denylist),
        ``accuracy`` (on ``x_test``), ``size_kb``, ``kb_added`` (against k = 0),
        ``recovered_share`` (share of the float32 -> int8 accuracy loss won back),
        ``float32_accuracy`` and ``float32_size_kb``.
    """
    from qlab.conversion.converter import convert
    from qlab.conversion.tflite import evaluate_tflite, predict_tflite

    per_channel = check_bool(per_channel, "per_channel")
    greedy_samples = _check_recovery_inputs(x_calib, x_test, y_test, order, greedy_samples)
    if errors is None:
        errors = layer_error_table(model, x_calib, num_samples, per_channel)
    candidates = _recovery_candidates(errors, max_float_layers, order, greedy_candidates)
    names = dict(zip(errors["layer"], errors["keras_layer"]))
    float_bytes = convert(model, "float32")
    float_accuracy = evaluate_tflite(float_bytes, x_test, y_test)
    x_select = x_calib[:greedy_samples]
    reference = predict_tflite(float_bytes, x_select).argmax(1) if order != "debugger" else None
    rows, denylist = [], []
    dataset = representative_dataset(x_calib, num_samples, model.input_shape)
    with tflite_chatter_silenced(), quantization_debugger(model, dataset, per_channel) as debugger:
        for k in range(max_float_layers + 1):
            if k:
                denylist.append(errors["layer"][k - 1] if order == "debugger" else
                                _greedy_next(debugger, denylist, candidates, x_select, reference,
                                             per_kb=order == "greedy_per_kb"))
            model_bytes = quantized_with_denylist(debugger, denylist)
            rows.append({"order": order, "k": k, "keras_layer": names[denylist[-1]] if k else "",
                         "layer": denylist[-1] if k else "",
                         "accuracy": evaluate_tflite(model_bytes, x_test, y_test),
                         "size_kb": len(model_bytes) / 1024})
            if verbose:
                print(f"{order} k={k}: {rows[-1]['keras_layer'] or '(all int8)'} -> accuracy "
                      f"{rows[-1]['accuracy']:.4f}, {rows[-1]['size_kb']:.1f} KB", flush=True)
    table = pd.DataFrame(rows)
    table["kb_added"] = table["size_kb"] - table["size_kb"][0]
    loss = float_accuracy - table["accuracy"][0]
    # a loss below one test image has no share to speak of
    table["recovered_share"] = ((table["accuracy"] - table["accuracy"][0]) / loss
                                if loss * len(y_test) >= 1 else np.nan)
    table["float32_accuracy"] = float_accuracy
    table["float32_size_kb"] = len(float_bytes) / 1024
    return table


def weight_scale_spread(model_bytes: bytes) -> pd.DataFrame:
    """For every per-channel int8 weight tensor of a TFLite model: how far its channel scales spread.

    ``max/min scale`` is what per-tensor quantization throws away: with one scale
    for the whole tensor, the channel with the smallest range gets only about
    ``127 / (max/min scale)`` levels instead of 127. Depthwise kernels with batch
    norm folded in are where this ratio gets large.
    """
    from qlab.conversion.tflite import make_interpreter

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


def recovery_milestone(table: pd.DataFrame, share: float = 0.5) -> dict[str, Any]:
    """The first step of a :func:`float_layer_recovery` table that wins back ``share`` of the loss.

    Returns ``order``, ``k``, ``layers`` kept in float, ``kb_added``, ``accuracy`` and
    ``recovered_share`` of that step; ``k`` is None (and the rest empty) when no step
    reaches it. ``table`` must hold one order: concatenated tables of several orders
    would interleave their steps. Taught in ``08_compare_and_debug``.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    if "recovered_share" not in getattr(table, "columns", []):
        raise TypeError("table must be the DataFrame of qlab.ptq.debug.float_layer_recovery")
    if "order" in table.columns and table["order"].nunique() > 1:
        orders = list(table["order"].unique())
        raise ValueError(f"table holds {len(orders)} orders {orders}; recovery_milestone reads one "
                         f"order's steps, e.g. table[table['order'] == {orders[0]!r}]")
    table = table.sort_values("k", ignore_index=True)
    order = str(table["order"][0]) if "order" in table.columns else ""
    reached = table[table["recovered_share"] >= share]
    if reached.empty:
        return {"order": order, "k": None, "layers": [], "kb_added": None, "accuracy": None,
                "recovered_share": None}
    row = reached.iloc[0]
    return {"order": order, "k": int(row["k"]), "layers": list(table["keras_layer"][1:int(row["k"]) + 1]),
            "kb_added": float(row["kb_added"]), "accuracy": float(row["accuracy"]),
            "recovered_share": float(row["recovered_share"])}
