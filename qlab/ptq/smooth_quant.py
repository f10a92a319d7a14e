"""SmoothQuant: per-channel scales moved from a LayerNorm's output into the weights that read it.

SmoothQuant is from Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training
Quantization for Large Language Models". An activation tensor gets one scale (per tensor), set
by its largest channel; when a few channels of a Dense layer's input are far larger than the
rest (large language models show outlier channels 100x the median), the others get few levels.
Dividing input channel ``j`` by ``s_j`` and multiplying row ``j`` of every kernel that reads it
by ``s_j`` computes the same function, and moves part of the range into the weights, which
are quantized per output channel and can take it. In a pre-LN transformer the division is free:
it goes into the LayerNorm's gamma and beta, ``(gamma * n + beta) / s = (gamma / s) * n + beta / s``.

    s_j = max|X_j| ** alpha / max|W_j| ** (1 - alpha)

``max|X_j|`` is channel ``j``'s largest activation over calibration images, ``max|W_j|`` the
largest weight reading it (over every consumer: a LayerNorm that feeds the query, key and value
projections gives all three the same ``s``). ``alpha = 1`` makes every activation channel's
range 1 (all the spread goes into the weights), ``alpha = 0`` every weight row's (all of it goes
into the activations); SmoothQuant's default is 0.5. It is the transformer analogue of
cross-layer equalization (:mod:`qlab.ptq.equalize`, taught in ``05_per_channel``), with
activation ranges in place of the first layer's weights. Taught in the transformer lesson.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qlab.zoo.keras3 import copy_keras3_model, is_keras3_model, require_keras3

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SmoothingPair", "smoothing_pairs", "require_smoothing_pairs", "check_calibration", "layer_outputs",
           "channel_ranges", "channel_outliers", "smoothing_scales", "smooth_quant"]


@dataclass(frozen=True)
class SmoothingPair:
    """A LayerNormalization and every Dense / EinsumDense layer that reads its output (by layer path)."""

    norm: str
    consumers: tuple[str, ...]

    def __repr__(self) -> str:
        return f"SmoothingPair({self.norm} -> {', '.join(self.consumers)})"


def _reads_channels_first(layer: Any) -> bool:
    """Whether row ``j`` of the kernel (axis 0) holds every weight reading input channel ``j`` (the last axis)."""
    if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
        return False
    equation = getattr(layer, "equation", None)
    if equation is None:
        return True  # Dense: kernel (inputs, units) on the last axis
    inputs, output = equation.split("->")
    x, kernel = inputs.split(",")
    return x[-1] == kernel[0] and x[-1] not in output and x.count(x[-1]) == 1 and kernel.count(kernel[0]) == 1


def _attention_projections(layer: Any, node: Any, tensor: Any) -> list[Any] | None:
    """The projections of a MultiHeadAttention call that read ``tensor`` (None: it is also used otherwise)."""
    bound = inspect.signature(layer.call).bind(*node.arguments.args, **node.arguments.kwargs).arguments
    if bound.get("key") is None:
        bound["key"] = bound.get("value")
    roles = {"query": layer.query_dense, "key": layer.key_dense, "value": layer.value_dense}
    found = [roles[name] for name in roles if bound.get(name) is tensor]
    others = [value for name, value in bound.items() if name not in roles and value is tensor]
    return None if others else found


def _consumers(model: Any, norm: Any) -> list[Any] | None:
    """The Dense / EinsumDense layers reading ``norm``'s output, or None if anything else reads it."""
    keras = require_keras3()
    if any(out is norm.output for out in model.outputs):
        return None
    tensor, found = norm.output, []
    for layer in model.layers:
        for node in layer._inbound_nodes:
            if not any(t is tensor for t in node.arguments.keras_tensors):
                continue
            if isinstance(layer, keras.layers.MultiHeadAttention):
                projections = _attention_projections(layer, node, tensor)
                if projections is None:
                    return None
                found += projections
            elif isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)):
                found.append(layer)
            else:
                return None
    return found if found and all(_reads_channels_first(layer) for layer in found) else None


def _norms(model: Any) -> list[Any]:
    """The model's LayerNormalizations called once, with a gamma, over the last axis only."""
    keras = require_keras3()
    found = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.LayerNormalization) or len(layer._inbound_nodes) != 1:
            continue
        axes = list(layer.axis) if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if getattr(layer, "gamma", None) is not None and axes in ([-1], [len(layer.output.shape) - 1]):
            found.append(layer)
    return found


def smoothing_pairs(model: Any) -> list[SmoothingPair]:
    """Every LayerNormalization (scaled, on the last axis) whose output only Dense / EinsumDense layers read.

    A MultiHeadAttention's query, key and value projections count as the layers reading the
    tensors passed as its query, key and value. A LayerNorm whose output also goes elsewhere (a
    residual, pooling, a model output) cannot hide the division and is left out.
    """
    if not is_keras3_model(model):
        raise TypeError(f"model must be a Keras 3 model (`import keras`), got {type(model).__name__}")
    pairs = []
    for norm in _norms(model):
        consumers = _consumers(model, norm)
        if consumers:
            pairs.append(SmoothingPair(norm.name, tuple(layer.path for layer in consumers)))
    return pairs


def require_smoothing_pairs(model: Any) -> list[SmoothingPair]:
    """:func:`smoothing_pairs`, or a ValueError saying the model has none."""
    pairs = smoothing_pairs(model)
    if not pairs:
        raise ValueError(f"model {model.name!r} has no LayerNormalization whose output only Dense or EinsumDense "
                         "layers read (query/key/value projections, a feed-forward layer): nothing to smooth")
    return pairs


def check_calibration(x: Any) -> np.ndarray:
    """``x`` as a float32 array of calibration images, or a ValueError if it is empty or holds NaN/inf."""
    array = np.asarray(x, dtype=np.float32)
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(f"calibration data x is empty (shape {array.shape}); pass some images shaped like the "
                         "model input")
    if not np.isfinite(array).all():
        raise ValueError(f"calibration data x contains {int((~np.isfinite(array)).sum())} NaN/inf value(s)")
    return array


def layer_outputs(model: Any, names: list[str], x: Any, batch_size: int = 500) -> list[np.ndarray]:
    """The outputs of the named layers of ``model`` on the calibration images ``x`` (checked)."""
    keras = require_keras3()
    x = check_calibration(x)
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    outputs = probe.predict(x, batch_size=batch_size, verbose=0)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def channel_ranges(model: Any, names: list[str], x: Any) -> dict[str, np.ndarray]:
    """``max |x_j|`` of each channel (last axis) of each named layer's output over the calibration images ``x``."""
    outputs = layer_outputs(model, names, x)
    return {name: np.abs(out).reshape(-1, out.shape[-1]).max(axis=0) for name, out in zip(names, outputs)}


def channel_outliers(model: Any, x: Any) -> "pd.DataFrame":
    """Step 1 of SmoothQuant: how far each smoothable LayerNorm output's largest channel is from the median.

    One row per :class:`SmoothingPair`: the layers reading it, its channels, the largest and
    median per-channel ``max |x_j|`` over ``x``, their ratio (``max / median``: about 1 when no
    channel stands out, 100 and more in large language models) and the largest channel's index.
    """
    import pandas as pd

    pairs = require_smoothing_pairs(model)
    ranges = channel_ranges(model, [p.norm for p in pairs], x)
    rows = []
    for pair in pairs:
        r = ranges[pair.norm]
        rows.append({"norm": pair.norm, "read by": ", ".join(pair.consumers), "channels": r.size,
                     "largest max|x|": float(r.max()), "median max|x|": float(np.median(r)),
                     "max / median": float(r.max() / max(np.median(r), 1e-12)), "largest channel": int(r.argmax())})
    return pd.DataFrame(rows)


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= alpha <= 1.0:  # NaN fails the comparison too
        raise ValueError(f"alpha must be a number in [0, 1] (the share of the range moved into the weights; "
                         f"SmoothQuant's default is 0.5), got {alpha!r}")
    return float(alpha)


def smoothing_scales(activation_ranges: Any, weight_ranges: Any, alpha: float = 0.5) -> np.ndarray:
    """``s_j = a_j ** alpha / w_j ** (1 - alpha)`` per channel; 1 where a channel's activations or weights are all 0."""
    alpha = _check_alpha(alpha)
    a = np.asarray(activation_ranges, dtype=np.float64)
    w = np.asarray(weight_ranges, dtype=np.float64)
    if a.shape != w.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"activation_ranges and weight_ranges must be 1-D, non-empty and the same length, got "
                         f"shapes {a.shape} and {w.shape}")
    if not (np.isfinite(a).all() and np.isfinite(w).all()) or (a < 0).any() or (w < 0).any():
        raise ValueError("activation_ranges and weight_ranges must be finite and >= 0 (largest |x| and |w|)")
    s = np.ones_like(a)
    ok = (a > 0) & (w > 0)
    s[ok] = a[ok] ** alpha / w[ok] ** (1.0 - alpha)
    return s


def _layers_by_path(model: Any) -> dict[str, Any]:
    return {layer.path: layer for layer in model._flatten_layers()}


def _kernel_rows(layer: Any) -> np.ndarray:
    kernel = np.asarray(layer.kernel)
    return np.abs(kernel.reshape(kernel.shape[0], -1)).max(axis=1)


def _migrate(norm: Any, consumers: list[Any], s: np.ndarray) -> None:
    """Divide the LayerNorm's gamma and beta by ``s``, multiply each consumer's kernel rows by it."""
    norm.gamma.assign((np.asarray(norm.gamma) / s).astype(np.float32))
    if getattr(norm, "beta", None) is not None:
        norm.beta.assign((np.asarray(norm.beta) / s).astype(np.float32))
    for layer in consumers:
        kernel = np.asarray(layer.kernel, dtype=np.float64)
        layer.kernel.assign((kernel * s.reshape(-1, *[1] * (kernel.ndim - 1))).astype(np.float32))


def smooth_quant(model: Any, x: Any, alpha: float = 0.5) -> Any:
    """A copy of the Keras 3 ``model`` with SmoothQuant's scales migrated from each LayerNorm into its readers.

    The copy computes the same function (to float rounding); only where the ranges sit changes.

    Args:
        model: a Keras 3 model with at least one :func:`smoothing_pairs` pair.
        x: calibration images shaped like the model input (non-empty, finite).
        alpha: in [0, 1]; how much of each channel's range moves from the activations into the weights.

    Returns:
        The smoothed copy; ``model`` is left as it is.
    """
    alpha = _check_alpha(alpha)
    pairs = require_smoothing_pairs(model)
    ranges = channel_ranges(model, [p.norm for p in pairs], x)
    smoothed = copy_keras3_model(model)
    layers = _layers_by_path(smoothed)
    for pair in pairs:
        consumers = [layers[path] for path in pair.consumers]
        weights = np.max([_kernel_rows(layer) for layer in consumers], axis=0)
        _migrate(smoothed.get_layer(pair.norm), consumers, smoothing_scales(ranges[pair.norm], weights, alpha))
    return smoothed
