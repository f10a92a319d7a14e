"""Cross-layer equalization: per-channel scales moved between two layers without changing the function.

Cross-layer equalization (CLE) is from Nagel et al. 2019, "Data-Free Quantization
Through Weight Equalization and Bias Correction". Two weight layers joined only by
per-channel positive-homogeneous ops (ReLU, max pooling, zero padding, flatten) compute
the same function when output channel ``i`` of the first is divided by ``s_i > 0``
and input channel ``i`` of the second is multiplied by it, because
``relu(x / s) = relu(x) / s``. Choosing ``s_i = sqrt(r1_i / r2_i)`` (``r`` = each
channel's largest ``|w|``) gives both layers equal channel ranges, which is what a
per-tensor scale needs. ReLU6 is not positive-homogeneous (``min(x / s, 6) !=
min(x, 6) / s``): like Nagel, :func:`cross_layer_equalization` can replace it by
ReLU (its float cost is measured, not assumed); otherwise a ReLU6 ends a chain.

:func:`rescale_channels` does the opposite on purpose: it spreads channel ranges
by large factors without changing the function - the constructed model of
``05_per_channel``. Taught in ``05_per_channel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from qlab.ptq.batch_norm_folding import check_model, fold_batch_norm, relu6_to_relu, scale_out
from qlab.zoo.introspect import WEIGHT_LAYER_TYPES, sole_consumer

__all__ = ["EqualizationPair", "equalization_pairs", "cross_layer_equalization", "rescale_channels",
           "max_output_difference"]

# Layers that commute with a positive per-channel scale of their input (channels last).
_HOMOGENEOUS = ("ReLU", "MaxPooling2D", "ZeroPadding2D", "Dropout", "Flatten", "InputLayer")
_HOMOGENEOUS_ACTIVATIONS = ("linear", "relu")


@dataclass(frozen=True)
class EqualizationPair:
    """Two weight layers whose shared channels can be rescaled without changing the function."""

    first: str
    second: str
    through: tuple[str, ...]  #: the layers in between (ReLU, pooling, padding, flatten)

    def __repr__(self) -> str:
        via = " -> ".join(self.through)
        return f"EqualizationPair({self.first} -> {via + ' -> ' if via else ''}{self.second})"


def _out_ranges(layer: Any, kernel: np.ndarray) -> np.ndarray:
    """Largest ``|w|`` of each output channel."""
    if type(layer).__name__ == "DepthwiseConv2D":
        return np.abs(kernel).max(axis=(0, 1)).reshape(-1)
    return np.abs(kernel.reshape(-1, kernel.shape[-1])).max(axis=0)


def _in_view(layer: Any, kernel: np.ndarray, channels: int) -> np.ndarray:
    """``kernel`` as a (channels, -1) array: row ``i`` holds every weight reading input channel ``i``."""
    if type(layer).__name__ == "Dense":
        # A Flatten before a Dense orders its inputs (h, w, c): channel = row % channels.
        return kernel.reshape(-1, channels, kernel.shape[-1]).transpose(1, 0, 2).reshape(channels, -1)
    return np.moveaxis(kernel, 2, 0).reshape(channels, -1)


def _in_ranges(layer: Any, kernel: np.ndarray, channels: int) -> np.ndarray:
    """Largest ``|w|`` over each input channel of ``kernel``."""
    return np.abs(_in_view(layer, kernel, channels)).max(axis=1)


def _scale_in(layer: Any, kernel: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``kernel`` with input channel ``i`` multiplied by ``scale[i]``."""
    if type(layer).__name__ == "Dense":
        rows = kernel.shape[0] // scale.size
        return (kernel * np.tile(scale, rows)[:, None]).astype(np.float32)
    shape = [1] * kernel.ndim
    shape[2] = -1
    return (kernel * scale.reshape(shape)).astype(np.float32)


def _homogeneous(layer: Any) -> bool:
    """Does ``layer`` commute with a positive per-channel scale of its input?"""
    kind = type(layer).__name__
    if kind == "ReLU":
        config = layer.get_config()
        return config.get("max_value") is None and not config.get("negative_slope") \
            and not config.get("threshold")
    if kind == "Activation":
        return layer.get_config()["activation"] in _HOMOGENEOUS_ACTIVATIONS
    if kind == "Flatten":
        return len(layer.input_shape) == 4 or len(layer.input_shape) == 2
    return kind in _HOMOGENEOUS


def _own_activation_ok(layer: Any) -> bool:
    return layer.get_config().get("activation", "linear") in _HOMOGENEOUS_ACTIVATIONS


def equalization_pairs(model: Any) -> list[EqualizationPair]:
    """Every pair of weight layers joined by one unbranched chain of positive-homogeneous layers.

    BatchNormalization must be folded first (:func:`fold_batch_norm`). A ReLU6 ends
    a chain (apply :func:`relu6_to_relu` first to cross it). Taught in ``05_per_channel``.
    """
    model = check_model(model)
    pairs = []
    for layer in model.layers:
        if type(layer).__name__ not in WEIGHT_LAYER_TYPES or not _own_activation_ok(layer):
            continue
        through, current = [], layer
        while (consumer := sole_consumer(model, current.name)) is not None:
            kind = type(consumer).__name__
            if kind in WEIGHT_LAYER_TYPES:
                flattened = any(type(model.get_layer(t)).__name__ == "Flatten" for t in through)
                if kind == "Dense" or not flattened:  # after a Flatten only a Dense reads channels
                    pairs.append(EqualizationPair(layer.name, consumer.name, tuple(through)))
                break
            if not _homogeneous(consumer):
                break
            through.append(consumer.name)
            current = consumer
    return pairs


def _weights_of(model: Any, names: Sequence[str]) -> dict[str, list[np.ndarray]]:
    return {name: [np.array(w, dtype=np.float32) for w in model.get_layer(name).get_weights()]
            for name in names}


def _apply_scale(model: Any, weights: dict, pair: EqualizationPair, s: np.ndarray) -> None:
    """Divide ``pair.first``'s output channels by ``s`` and multiply ``pair.second``'s inputs by it."""
    first, second = model.get_layer(pair.first), model.get_layer(pair.second)
    w1, w2 = weights[pair.first], weights[pair.second]
    w1[0] = scale_out(first, w1[0], 1.0 / s)
    if len(w1) > 1:
        w1[1] = (w1[1] / s).astype(np.float32)
    w2[0] = _scale_in(second, w2[0], s)


def _equalizing_scale(model: Any, weights: dict, pair: EqualizationPair) -> np.ndarray:
    """Nagel eq. 10: ``s_i = sqrt(r1_i * r2_i) / r2_i``; 1 where a channel is all zeros."""
    first, second = model.get_layer(pair.first), model.get_layer(pair.second)
    r1 = _out_ranges(first, weights[pair.first][0]).astype(np.float64)
    r2 = _in_ranges(second, weights[pair.second][0], r1.size).astype(np.float64)
    ok = (r1 > 0) & (r2 > 0)
    s = np.ones_like(r1)
    s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
    return s.astype(np.float32)


def _set_weights(model: Any, weights: dict[str, list[np.ndarray]]) -> None:
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)


def _prepared(model: Any, relu6_to_relu_: bool) -> tuple[Any, list[EqualizationPair]]:
    model = fold_batch_norm(check_model(model))
    if relu6_to_relu_:
        model = relu6_to_relu(model)
    pairs = equalization_pairs(model)
    if not pairs:
        hint = "" if relu6_to_relu_ else " (a ReLU6 ends every chain: try relu6_to_relu=True)"
        raise ValueError(f"model {model.name!r} has no pair of Conv2D/DepthwiseConv2D/Dense layers "
                         f"joined only by ReLU, pooling, padding or flatten{hint}")
    return model, pairs


def _check_sweeps_tolerance(sweeps: Any, tolerance: Any) -> None:
    if isinstance(sweeps, bool) or not isinstance(sweeps, (int, np.integer)) or sweeps < 1:
        raise ValueError(f"sweeps must be an integer >= 1 (passes over the pairs), got {sweeps!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)) \
            or not np.isfinite(tolerance) or tolerance <= 0:
        raise ValueError(f"tolerance must be a finite number > 0 (largest relative scale change "
                         f"that ends the sweeps, e.g. 1e-4), got {tolerance!r}")


def cross_layer_equalization(model: Any, relu6_to_relu: bool = True, sweeps: int = 20,
                             tolerance: float = 1e-4) -> tuple[Any, "pd.DataFrame"]:
    """Cross-layer equalization (Nagel et al. 2019): equal channel ranges across each pair, same function.

    Batch norm is folded first; with ``relu6_to_relu`` every ReLU6 becomes a ReLU (its
    float cost is the caller's to measure, e.g. :func:`max_output_difference`),
    otherwise pairs stop at ReLU6 layers. Pairs are equalized in order, sweep after
    sweep, until no scale moves by more than ``tolerance`` (relative).

    Returns:
        ``(equalized model, report)``: one row per pair with the largest/median channel
        range of the first layer before and after (``spread``) and the sweeps used.

    Args:
        sweeps: most passes over the pairs, an integer >= 1.
        tolerance: a finite number > 0; stop once no scale moves by more (relative).

    Taught in ``05_per_channel``.
    """
    import pandas as pd

    _check_sweeps_tolerance(sweeps, tolerance)
    model, pairs = _prepared(model, relu6_to_relu)
    names = sorted({n for p in pairs for n in (p.first, p.second)})
    weights = _weights_of(model, names)
    before = {p: _spread(model, weights, p.first) for p in pairs}
    used = 0
    for used in range(1, sweeps + 1):
        largest = 0.0
        for pair in pairs:
            s = _equalizing_scale(model, weights, pair)
            _apply_scale(model, weights, pair, s)
            largest = max(largest, float(np.max(np.abs(np.log(s)))))
        if largest < tolerance:
            break
    _set_weights(model, weights)
    rows = [{"first": p.first, "second": p.second, "through": ", ".join(p.through),
             "spread before": before[p], "spread after": _spread(model, weights, p.first)}
            for p in pairs]
    report = pd.DataFrame(rows)
    report.attrs["sweeps"] = used
    return model, report


def _spread(model: Any, weights: dict, name: str) -> float:
    """Largest over median output-channel range of layer ``name``."""
    r = _out_ranges(model.get_layer(name), weights[name][0])
    return float(r.max() / max(np.median(r), 1e-12))


def rescale_channels(model: Any, spread: float = 100.0, seed: int = 0,
                     pairs: Sequence[tuple[str, str]] | None = None) -> Any:
    """A constructed model: same function, channel ranges spread by factors up to ``spread``.

    Batch norm is folded, then for each exact pair (see :func:`equalization_pairs`;
    ReLU6 is never crossed) output channel ``i`` of the first layer is multiplied by
    ``f_i = spread ** u_i`` (``u_i`` uniform in [0, 1], seeded) and input channel ``i``
    of the second divided by it. The kernel, bias and the activations between the two
    layers now have channels up to ``spread`` times apart, as in ImageNet-trained
    MobileNets. Taught in ``05_per_channel``; lesson 08 uses it too.

    Args:
        model: a Keras 2 model.
        spread: largest factor, > 1.
        seed: seeds the factors, a non-negative integer.
        pairs: ``(first, second)`` layer names to rescale; default: every exact pair.
    """
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not np.isfinite(spread) \
            or spread <= 1:
        raise ValueError(f"spread must be a finite number > 1, got {spread!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    model = fold_batch_norm(check_model(model))
    found = equalization_pairs(model)
    chosen = _choose_pairs(found, pairs, model.name)
    rng = np.random.default_rng(seed)
    names = sorted({n for p in chosen for n in (p.first, p.second)})
    weights = _weights_of(model, names)
    for pair in chosen:
        channels = _out_ranges(model.get_layer(pair.first), weights[pair.first][0]).size
        factors = (float(spread) ** rng.uniform(0.0, 1.0, channels)).astype(np.float32)
        _apply_scale(model, weights, pair, 1.0 / factors)
    _set_weights(model, weights)
    return model


def _choose_pairs(found: list[EqualizationPair], pairs: Sequence[tuple[str, str]] | None,
                  model_name: str) -> list[EqualizationPair]:
    if not found:
        raise ValueError(f"model {model_name!r} has no pair of weight layers joined only by ReLU, "
                         "pooling, padding or flatten, so no channel can be rescaled exactly")
    if pairs is None:
        return found
    by_names = {(p.first, p.second): p for p in found}
    chosen = []
    for pair in pairs:
        key = tuple(pair)
        if key not in by_names:
            raise ValueError(f"pairs entry {key!r} is not an exact pair of model {model_name!r}; "
                             f"valid pairs: {list(by_names)}")
        chosen.append(by_names[key])
    return chosen


def max_output_difference(model: Any, other: Any, x: np.ndarray, batch_size: int = 500) -> float:
    """Largest ``|score difference|`` between two Keras models on the images ``x``."""
    a = model.predict(x, batch_size=batch_size, verbose=0)
    b = other.predict(x, batch_size=batch_size, verbose=0)
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
