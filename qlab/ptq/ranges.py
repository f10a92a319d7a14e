"""Range estimators on a real model's activations, deployed through TFMOT.

The TFLite converter calibrates every activation with min/max only. To try the
other estimators of :mod:`qlab.numerics.calibration` (percentile, MSE-optimal) on
a real model, this module takes TensorFlow's own route:

1. ``tfmot.quantization.keras.quantize_model`` annotates the float model: every
   activation TFLite will quantize gets a fake-quant with a ``*_min``/``*_max``
   variable pair (a ``MovingAverageQuantizer``, initialised to ``[-6, 6]``);
2. the float model runs on the calibration images and each estimator picks a range
   for each of those tensors from its real values (:func:`activation_ranges`);
3. the ranges are written into the variables, the weight quantizers take their
   ranges from the weights, and nothing is trained (:func:`quantize_with_ranges`);
4. :func:`qlab.conversion.converter.convert_qat` turns the frozen model into an int8 file
   (no representative dataset needed: the ranges are in the graph).

For activations below 8 bits (TFMOT's ``DefaultNBitQuantizeScheme``) there is no
TFLite kernel, so the fake-quantized Keras model is evaluated instead, and labelled so.

Taught in ``04_post_training_quantization``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

from qlab.numerics.calibration import mse_optimal_range, percentile_range
from qlab.numerics.metrics import sqnr_db
from qlab.numerics.quant import choose_quant_params, dequantize, quantize
from qlab.numerics.validate import check_int, check_num_bits

if TYPE_CHECKING:
    import pandas as pd

#: Range estimators, by name, with what they do.
METHODS: dict[str, str] = {
    "minmax": "the whole observed range (what the TFLite converter's calibrator does)",
    "percentile": "clip the rarest values: the (100 - p)-th to p-th percentile",
    "mse": "the clipping range with the lowest quantization MSE at num_bits",
}
#: TFMOT starts every activation range at [-6, 6] (MovingAverageQuantizer's initial values).
TFMOT_INITIAL_RANGE = (-6.0, 6.0)
DEFAULT_PERCENTILE = 99.99
#: Values per tensor kept for the percentile and MSE estimators (min and max are exact).
DEFAULT_MAX_VALUES = 2**18
INPUT = "<model input>"


def check_method(method: Any) -> str:
    """Return ``method`` if it is a known range estimator, else raise a ValueError."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def check_images(model: Any, x: Any, argument: str = "x") -> np.ndarray:
    """``x`` as a non-empty float32 batch shaped like ``model``'s input, or a clear error."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{argument} must be a numpy array of images, got {type(x).__name__}")
    expected = tuple(model.input_shape[1:])
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"{argument} is empty (shape {x.shape}); it needs at least one image")
    if tuple(x.shape[1:]) != expected:
        raise ValueError(f"{argument} has shape {x.shape}, the model {model.name!r} takes "
                         f"(batch, {', '.join(map(str, expected))})")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise ValueError(f"{argument} must hold finite float images, got dtype {x.dtype}")
    return x.astype(np.float32, copy=False)


@dataclass(frozen=True)
class ActivationQuantizer:
    """One activation fake-quant of a TFMOT model: where it sits and which float tensor it sees."""

    layer: str  # the QAT model's layer holding the range variables
    kind: str  # "input", "post_activation" or "output"
    tensor: str  # the float model's layer whose output it quantizes (INPUT for the model input)
    min_var: Any
    max_var: Any


def _range_pair(layer: Any, prefix: str) -> tuple[Any, Any]:
    """``layer``'s ``<prefix>_min`` and ``<prefix>_max`` variables (names without the layer scope)."""
    found = {v.name.split("/")[-1][:-2]: v for v in layer.weights}
    return found[f"{prefix}_min"], found[f"{prefix}_max"]


def activation_quantizers(qat_model: Any) -> list[ActivationQuantizer]:
    """Every activation range of a TFMOT model, mapped to the float tensor it quantizes.

    A ``QuantizeLayer`` quantizes the model input; a ``QuantizeWrapperV2`` quantizes its
    wrapped layer's output, either after the activation function (``post_activation``)
    or as an output quantizer (``output``). Both are that layer's output in the float
    model, which has the same layer names. Taught in ``04_post_training_quantization``.
    """
    found = []
    for layer in qat_model.layers:
        names = {v.name.split("/")[-1][:-2] for v in layer.weights}
        if type(layer).__name__ == "QuantizeLayer":
            found.append(ActivationQuantizer(layer.name, "input", INPUT, *_range_pair(layer, layer.name)))
            continue
        if "pre_activation_min" in names:
            raise ValueError(f"layer {layer.name!r} quantizes before its activation function; "
                             "that tensor is not a layer output, so its range cannot be set here")
        for kind in ("post_activation", "output"):
            if f"{kind}_min" in names:
                found.append(ActivationQuantizer(layer.name, kind, layer.layer.name,
                                                 *_range_pair(layer, kind)))
    return found


@dataclass
class TensorSample:
    """One activation tensor over the calibration images: exact min/max and a value sample."""

    tensor: str
    count: int
    minimum: float
    maximum: float
    sample: np.ndarray  # random values plus the two extremes


def _sample_batch(values: np.ndarray, keep: int, rng: np.random.Generator) -> np.ndarray:
    flat = values.reshape(-1)
    return flat if flat.size <= keep else rng.choice(flat, keep, replace=False)


def collect_activations(model: Any, tensors: Sequence[str], x: np.ndarray,
                        max_values: int = DEFAULT_MAX_VALUES, batch_size: int = 100,
                        seed: int = 0) -> dict[str, TensorSample]:
    """Run the float ``model`` on ``x`` and keep each named layer output's range and a sample.

    The minimum and maximum are exact over all images; for the percentile and MSE
    estimators at most ``max_values`` values per tensor are kept (a uniform random
    sample, plus the two extremes), which bounds memory on the MobileNets.
    """
    from qlab.zoo.keras2 import keras

    x = check_images(model, x)
    max_values = check_int(max_values, "max_values", 1000, 2**26)
    layers = [name for name in dict.fromkeys(tensors) if name != INPUT]
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in layers])
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in [INPUT, *layers]}
    lows = {name: np.inf for name in parts}
    highs = {name: -np.inf for name in parts}
    counts = {name: 0 for name in parts}
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        outputs = probe(batch, training=False) if layers else []
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, value in zip([INPUT, *layers], [batch, *outputs]):
            value = np.asarray(value, dtype=np.float32)
            keep = math.ceil(max_values * len(batch) / len(x))
            parts[name].append(_sample_batch(value, keep, rng))
            lows[name], highs[name] = min(lows[name], value.min()), max(highs[name], value.max())
            counts[name] += value.size
    return {name: TensorSample(name, counts[name], float(lows[name]), float(highs[name]),
                               np.concatenate([*parts[name], [lows[name], highs[name]]]).astype(np.float32))
            for name in parts if name in tensors}


def estimate_activation_range(sample: TensorSample, method: str, num_bits: int = 8,
                              percentile: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    """The range ``method`` picks for one tensor, widened to contain 0.

    TensorFlow's fake-quant slides a range that excludes 0 until 0 is on the grid
    (notebook ``01_buckets``), so every estimator's range is widened to contain it,
    as TFMOT's ``MovingAverageQuantizer`` and the converter's calibrator do.
    """
    check_method(method)
    if method == "minmax":
        lo, hi = sample.minimum, sample.maximum
    elif method == "percentile":
        lo, hi = percentile_range(sample.sample, percentile)
    elif sample.minimum == sample.maximum == 0.0:
        lo, hi = 0.0, 0.0  # an all-zero tensor has no clipping trade-off
    else:
        lo, hi = mse_optimal_range(sample.sample, num_bits=num_bits)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if lo == hi:  # a tensor that is always 0 still needs a non-empty range
        hi = lo + 1e-6
    return lo, hi


def _quality(sample: np.ndarray, lo: float, hi: float, num_bits: int) -> tuple[float, float]:
    """(share of the sample clipped, SQNR dB of the sample quantized to [lo, hi])."""
    params = choose_quant_params(np.float32(lo), np.float32(hi), num_bits)
    restored = dequantize(quantize(sample, params), params)
    clipped = float(np.mean((sample < lo) | (sample > hi)))
    return clipped, sqnr_db(sample, restored) if np.any(sample) else float("nan")


def _ranges_table(quantizers: Sequence[ActivationQuantizer], samples: dict[str, TensorSample],
                  method: str, num_bits: int, percentile: float) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for q in quantizers:
        s = samples[q.tensor]
        lo, hi = estimate_activation_range(s, method, num_bits, percentile)
        clipped, quality = _quality(s.sample, lo, hi, num_bits)
        rows.append({"quantizer": q.layer, "kind": q.kind, "tensor": q.tensor, "method": method,
                     "num_bits": num_bits, "values": s.count, "observed min": s.minimum,
                     "observed max": s.maximum, "range min": lo, "range max": hi,
                     "clipped %": 100 * clipped, "SQNR dB": quality})
    return pd.DataFrame(rows)


def quantization_aware_model(model: Any, num_bits: int = 8) -> Any:
    """``quantize_model(model)`` at 8 bits, or TFMOT's ``DefaultNBitQuantizeScheme`` below.

    ``num_bits`` is the activations' bit width; weights stay 8-bit. Taught in
    ``04_post_training_quantization``.
    """
    from qlab.zoo.keras2 import require_keras2_model, tfmot
    from qlab.qat.quantize import quantize_whole_model

    num_bits = check_num_bits(num_bits, high=8)  # TFMOT's n-bit scheme stops at 8
    if num_bits == 8:
        return quantize_whole_model(model)
    qkeras = tfmot.quantization.keras
    annotated = qkeras.quantize_annotate_model(require_keras2_model(model))
    scheme = qkeras.experimental.default_n_bit.DefaultNBitQuantizeScheme(
        num_bits_weight=8, num_bits_activation=num_bits)
    return qkeras.quantize_apply(annotated, scheme=scheme)


def activation_ranges(model: Any, x: np.ndarray, method: str = "minmax", num_bits: int = 8,
                      percentile: float = DEFAULT_PERCENTILE, max_values: int = DEFAULT_MAX_VALUES,
                      qat_model: Any = None, seed: int = 0) -> pd.DataFrame:
    """The range ``method`` picks for every activation TFLite quantizes, from ``model``'s real outputs.

    Taught in ``04_post_training_quantization``.

    Args:
        model: the trained float Keras 2 model.
        x: calibration images (float32, shaped like the model input).
        method: a key of :data:`METHODS`.
        num_bits: activation bit width (2..8; the MSE estimator depends on it).
        percentile: for ``method="percentile"``.
        max_values: values kept per tensor for percentile/MSE (see :func:`collect_activations`).
        qat_model: the TFMOT model whose quantizers to list (default: made from ``model``).
        seed: seeds the sample kept for percentile/MSE (see :func:`collect_activations`).

    Returns:
        One row per activation quantizer: ``quantizer``, ``kind``, ``tensor``, the observed
        ``observed min``/``observed max``, the chosen ``range min``/``range max``, the share of
        values ``clipped %`` and the ``SQNR dB`` of the values quantized to that range.
    """
    check_method(method)
    num_bits = check_num_bits(num_bits, high=8)
    x = check_images(model, x)
    qat_model = quantization_aware_model(model, num_bits) if qat_model is None else qat_model
    quantizers = activation_quantizers(qat_model)
    samples = collect_activations(model, [q.tensor for q in quantizers], x, max_values, seed=seed)
    return _ranges_table(quantizers, samples, method, num_bits, percentile)


def set_weight_ranges(qat_model: Any) -> int:
    """Give every weight quantizer its range from its weights (what one training step would do).

    Runs each ``LastValueQuantizer`` once in training mode on its own weight, which
    assigns its ``kernel_min``/``kernel_max``; calling the whole model in training mode
    would also move the batch-norm statistics. Returns the number of weights set.
    """
    count = 0
    for layer in qat_model.layers:
        # QuantizeWrapperV2 keeps (weight, quantizer, variables) triples; no public accessor
        for weight, quantizer, variables in getattr(layer, "_weight_vars", []):
            quantizer(weight, True, weights=variables)
            count += 1
    return count


def set_activation_ranges(qat_model: Any, ranges: pd.DataFrame) -> int:
    """Write the ``range min``/``range max`` of :func:`activation_ranges` into ``qat_model``."""
    rows = {(q, k): (lo, hi) for q, k, lo, hi in
            zip(ranges["quantizer"], ranges["kind"], ranges["range min"], ranges["range max"])}
    quantizers = activation_quantizers(qat_model)
    missing = [q.layer for q in quantizers if (q.layer, q.kind) not in rows]
    if missing:
        raise ValueError(f"ranges has no row for quantizer(s) {missing}; make it with "
                         "activation_ranges(model, x, qat_model=qat_model)")
    for q in quantizers:
        lo, hi = rows[(q.layer, q.kind)]
        q.min_var.assign(float(lo))
        q.max_var.assign(float(hi))
    return len(quantizers)


def initial_ranges_left(qat_model: Any) -> list[str]:
    """The quantizers (``layer/prefix``) whose range is still TFMOT's initial one.

    That is ``[-6, 6]`` for weights and activations, ``[0, 0]`` for the input's
    ``QuantizeLayer``. Checked as pairs: a ReLU6 output really does reach 6, but never
    down to -6, so only a ``*_min`` at -6 with its ``*_max`` at 6 (same channel) is left over.
    A weight channel at ``[0, 0]`` is a set range (all its weights are zero, as low-bit
    rounding can make them), not an initial one.
    """
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for variable in qat_model.weights:
        name = variable.name[:-2]
        if name.endswith(("_min", "_max")):
            pairs.setdefault(name[:-4], {})[name[-3:]] = np.asarray(variable.numpy())

    def initial(prefix: str) -> tuple[tuple[float, float], ...]:
        weight = prefix.rsplit("/", 1)[-1] in ("kernel", "depthwise_kernel")
        return (TFMOT_INITIAL_RANGE,) if weight else (TFMOT_INITIAL_RANGE, (0.0, 0.0))

    return [prefix for prefix, pair in pairs.items()
            if any(np.any((pair.get("min") == low) & (pair.get("max") == high))
                   for low, high in initial(prefix))]


class RangeCalibratedModel(NamedTuple):
    """A TFMOT model whose ranges were set by an estimator (not trained), and those ranges."""

    qat_model: Any
    ranges: Any  # pandas.DataFrame of activation_ranges


def quantize_with_ranges(model: Any, x_calib: np.ndarray, method: str = "minmax", num_bits: int = 8,
                         percentile: float = DEFAULT_PERCENTILE,
                         max_values: int = DEFAULT_MAX_VALUES, seed: int = 0) -> RangeCalibratedModel:
    """A quantization-aware copy of ``model`` with every range set from ``x_calib``, nothing trained.

    Activation ranges come from ``method`` applied to each tensor's real values;
    weight ranges from the weights. At 8 bits, :func:`qlab.conversion.converter.convert_qat`
    makes the int8 file. Raises a RuntimeError if any range is left at TFMOT's initial
    ``[-6, 6]`` (see :func:`initial_ranges_left`). ``seed`` seeds the sample the
    percentile and MSE estimators read (:func:`collect_activations`).
    Taught in ``04_post_training_quantization``.
    """
    qat_model = quantization_aware_model(model, num_bits)
    return RangeCalibratedModel(qat_model, set_ranges_from_data(
        qat_model, model, x_calib, method, num_bits, percentile, max_values, seed))


def set_ranges_from_data(qat_model: Any, model: Any, x_calib: np.ndarray, method: str = "minmax",
                         num_bits: int = 8, percentile: float = DEFAULT_PERCENTILE,
                         max_values: int = DEFAULT_MAX_VALUES, seed: int = 0) -> pd.DataFrame:
    """Set every range of ``qat_model`` (made from the float ``model``, any TFMOT scheme) from data.

    Activation ranges: :func:`activation_ranges` with ``method`` on ``x_calib``; weight ranges:
    the weights' own (:func:`set_weight_ranges`). Returns the activation ranges. Raises a
    RuntimeError if a range is left at TFMOT's initial one (:func:`initial_ranges_left`).
    """
    ranges = activation_ranges(model, x_calib, method, num_bits, percentile, max_values, qat_model,
                               seed=seed)
    set_weight_ranges(qat_model)
    set_activation_ranges(qat_model, ranges)
    left = initial_ranges_left(qat_model)
    if left:
        raise RuntimeError(f"ranges still at TFMOT's initial values: {left}")
    return ranges


def _activation_params(model_bytes: bytes) -> list[tuple[float, int]]:
    """Sorted (scale, zero point) of a file's per-tensor int8 activations (weights left out)."""
    from qlab.conversion.tflite import make_interpreter
    from qlab.conversion.tflite_file import weight_tensors

    weights = set(weight_tensors(model_bytes)["tensor"])
    params = []
    for detail in make_interpreter(model_bytes).get_tensor_details():
        scales = detail["quantization_parameters"]["scales"]
        if detail["dtype"] == np.int8 and len(scales) == 1 and detail["name"] not in weights:
            params.append((float(scales[0]), int(detail["quantization_parameters"]["zero_points"][0])))
    return sorted(params)


def matching_activation_params(model_bytes: bytes, reference_bytes: bytes) -> tuple[int, int]:
    """How many of ``reference_bytes``' int8 activations ``model_bytes`` quantizes the same way.

    Returns ``(matching, total)``: tensors are paired by (scale within 1e-6 relative, zero
    point), since two converters name them differently. Taught in ``04_post_training_quantization``.
    """
    reference = _activation_params(reference_bytes)
    return _matching(_activation_params(model_bytes), reference), len(reference)


def minmax_agreement(model: Any, x_calib: np.ndarray, x_test: np.ndarray) -> dict[str, Any]:
    """How closely the min-max estimator through TFMOT matches the converter's own int8 calibration.

    Both files are int8 with int8 input and output, calibrated on the same images.
    Returns ``top1_agreement`` (share of test images with the same top class),
    ``output_sqnr_db`` of our file's scores against the converter's, and how many of
    the converter's ``activation_tensors`` our file quantizes with the same scale (to
    1e-6 relative) and zero point (``matching_activation_params``; the names differ).
    Taught in ``04_post_training_quantization``.
    """
    from qlab.conversion.converter import convert, convert_qat
    from qlab.conversion.tflite import predict_tflite
    from qlab.numerics.metrics import output_sqnr_db, top1_agreement

    x_calib, x_test = check_images(model, x_calib, "x_calib"), check_images(model, x_test, "x_test")
    ours = convert_qat(quantize_with_ranges(model, x_calib, "minmax").qat_model, int8_io=True)
    converter = convert(model, "int8_per_channel", x_calib, len(x_calib))
    a, b = predict_tflite(converter, x_test), predict_tflite(ours, x_test)
    matching, total = matching_activation_params(ours, converter)
    return {"top1_agreement": top1_agreement(a, b), "output_sqnr_db": output_sqnr_db(a, b),
            "matching_activation_params": matching, "activation_tensors": total}


def _matching(ours: list[tuple[float, int]], theirs: list[tuple[float, int]]) -> int:
    """How many of ``theirs`` have a partner in ``ours`` (same zero point, scale within 1e-6)."""
    unused, count = list(ours), 0
    for scale, zero_point in theirs:
        match = next((i for i, (s, z) in enumerate(unused)
                      if z == zero_point and abs(s - scale) <= 1e-6 * scale), None)
        if match is not None:
            unused.pop(match)
            count += 1
    return count
