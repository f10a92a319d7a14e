"""Partial QAT chosen by measurement: which layers to keep at 8 bits when the rest go lower.

Quantizing "all Conv2D" and leaving the rest float (the ``qat_partial`` variant) is an
anti-pattern on a converter like TFLite's: every float layer between int8 layers becomes
a float island behind a DEQUANTIZE and a QUANTIZE, so the file is bigger and slower than
whole-model QAT and no more accurate. :func:`float_island_counts` counts those borders.

A partial QAT that earns its place is mixed precision with no float islands: every
layer is quantized (int8 activations throughout), most weight layers at ``num_bits``
(2 to 7), and the few layers that measurement says are most sensitive keep 8-bit weights.

- :func:`layer_sensitivity`: each weight layer alone at ``num_bits`` (per channel, batch norm
  folded, everything else float) and the accuracy / output SQNR it costs.
- :func:`mixed_precision_qat_model`: TFMOT's ``DefaultNBitQuantizeScheme`` with a registry
  that gives the named layers 8-bit weights. The scheme's layout transforms still run, so
  batch norm is handled as in whole-model QAT; a ``quantize_annotate_layer(quantize_config=...)``
  on a conv would switch those transforms off for it (TFMOT skips a conv/BN pattern whose
  layers carry a custom config) and put a FakeQuant between the conv and its batch norm.
- :func:`weight_bits_by_layer`: the weight bit width of every layer of a QAT model.
- :func:`partial_qat_study`: all of it for a zoo model (study ``partial_qat``);
  :func:`partial_qat_summary` is the part of its table a lesson shows.

On this stack the converter stores weights of 4 bits and fewer as INT4 (2-bit ones too:
there is no smaller type, so 2-bit files are the size of 4-bit ones), and LiteRT runs
INT4 ops outside XNNPACK, slower than float32: low-bit mixed precision buys file size,
not speed. Compare latency only as ratios measured in one run.

Taught in ``07_custom_quantization`` (``06_quantization_aware_training`` shows the anti-pattern).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.lite.introspect import WEIGHT_LAYER_TYPES
from qlab.lite.keras2 import require_keras2_model, tfmot
from qlab.lite.progress import say
from qlab.numerics.validate import check_int

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["weight_layer_names", "layer_sensitivity", "most_sensitive_layers",
           "MixedPrecisionQuantizeScheme", "mixed_precision_qat_model", "weight_bits_by_layer",
           "mixed_precision_ptq_model", "float_island_counts", "partial_qat_study",
           "partial_qat_summary",
           "STUDY_NUM_BITS", "STUDY_KEEP_FRACTION"]

#: Weight bit width of the study per model: where whole-model per-channel PTQ loses clearly
#: (weight_bits study: mobilenet_v2 39.45% and mnist_cnn 43.93% at 2 bits, against 99%+ float).
STUDY_NUM_BITS = {"mnist_cnn": 2, "mobilenet_v1": 2, "mobilenet_v2": 2}
#: Share of the weight layers the study keeps at 8 bits (at least one layer).
STUDY_KEEP_FRACTION = 0.1
#: Images the sensitivity is measured on: the end of the training split, which the
#: fine-tunes (first 30,000) do not use and the test split never sees.
SENSITIVITY_SAMPLES = {"full": 2000, "smoke": 128}
SENSITIVITY_SAMPLES_NOTE = "the last training images (not used by the fine-tunes)"
#: Images the PTQ rows calibrate their int8 activations on (the first training images).
CALIBRATION_SAMPLES = {"full": 500, "smoke": 100}
#: Latency budget per size: (timed runs, warm-up runs), as in the workbook's comparison.
LATENCY_RUNS = {"full": (400, 50), "smoke": (20, 5)}


def _check_weight_bits(num_bits: Any, argument: str = "num_bits") -> int:
    # 8 is the width the kept layers already have; TFMOT's quantizers go down to 2
    return check_int(num_bits, argument, 2, 7)


def weight_layer_names(model: Any) -> list[str]:
    """Names of the Conv2D, DepthwiseConv2D and Dense layers of ``model``, in model order."""
    return [layer.name for layer in model.layers if type(layer).__name__ in WEIGHT_LAYER_TYPES]


def _check_layer_names(model: Any, names: Any, argument: str) -> list[str]:
    if isinstance(names, str) or not isinstance(names, (list, tuple, set, frozenset)):
        raise TypeError(f"{argument} must be a list of layer names, got {names!r}")
    valid = weight_layer_names(model)
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ValueError(f"{argument} has names that are not weight layers of model "
                         f"{model.name!r}: {unknown}; valid: {valid}")
    return list(dict.fromkeys(names))


def layer_sensitivity(model: Any, x: np.ndarray, y: np.ndarray, num_bits: int = 2,
                      per_channel: bool = True, verbose: bool = False) -> pd.DataFrame:
    """How much each weight layer alone costs at ``num_bits`` weights, most sensitive first.

    Batch norm is folded first (as the converter does); then, one layer at a time, that
    layer's kernel is rounded to ``num_bits`` symmetric narrow-range levels (per output
    channel by default) while every other layer and all activations stay float, and the
    float Keras model is run on ``x``. Fake-quantized Keras, not a file: it isolates the
    weight rounding of one layer.

    Returns:
        One row per weight layer: ``layer``, ``class``, ``parameters`` (kernel size),
        ``accuracy`` on ``(x, y)``, ``accuracy_drop`` (float minus it, points),
        ``output_sqnr_db`` against the float model's scores and ``rank`` (1 = most
        sensitive: lowest output SQNR, the finer of the two measures).
    """
    import pandas as pd

    from qlab.lite.equalize import fold_batch_norm
    from qlab.lite.models import predict_keras
    from qlab.lite.weight_bits import fake_quantize_kernel, round_layer_kernel
    from qlab.numerics.metrics import output_sqnr_db

    num_bits = _check_weight_bits(num_bits)
    y = np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must hold the same, non-zero number of samples, got {len(x)} and {len(y)}")
    folded = fold_batch_norm(require_keras2_model(model))
    reference = predict_keras(folded, x)
    float_accuracy = float(np.mean(reference.argmax(1) == y))
    rows = []
    for name in weight_layer_names(folded):
        layer = folded.get_layer(name)
        saved = layer.get_weights()
        kernel = saved[0]
        round_layer_kernel(layer, lambda k: fake_quantize_kernel(k, num_bits, per_channel))
        scores = predict_keras(folded, x)
        layer.set_weights(saved)  # back to float: one layer at a time
        accuracy = float(np.mean(scores.argmax(1) == y))
        rows.append({"layer": name, "class": type(layer).__name__, "parameters": int(kernel.size),
                     "accuracy": accuracy, "accuracy_drop": 100 * (float_accuracy - accuracy),
                     "output_sqnr_db": output_sqnr_db(reference, scores)})
        if verbose:
            print(f"  {name} at {num_bits} bits: {accuracy:.4f}, "
                  f"{rows[-1]['output_sqnr_db']:.1f} dB", flush=True)
    table = pd.DataFrame(rows).sort_values("output_sqnr_db", ignore_index=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def most_sensitive_layers(sensitivity: pd.DataFrame, k: int) -> list[str]:
    """The ``k`` layers of a :func:`layer_sensitivity` table with the lowest output SQNR."""
    k = check_int(k, "k", 0, len(sensitivity))
    return list(sensitivity.sort_values("output_sqnr_db")["layer"][:k])


class _MixedPrecisionRegistry(
        tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeRegistry):
    """The n-bit registry, with 8-bit weights for the layers named in ``keep_8bit``."""

    def __init__(self, keep_8bit: Sequence[str], num_bits_weight: int, num_bits_activation: int,
                 disable_per_axis: bool):
        super().__init__(disable_per_axis, num_bits_weight, num_bits_activation)
        self._keep_8bit = frozenset(keep_8bit)

    def get_quantize_config(self, layer: Any) -> Any:
        registry = tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeRegistry
        bits = 8 if layer.name in self._keep_8bit else self._num_bits_weight
        # a fresh registry per layer: TFMOT's registries share their per-class bit
        # widths (class-level _QuantizeInfo objects), so the last one built wins for
        # Dense and friends; a config made right after its registry has the right ones
        fresh = registry(self._disable_per_axis, bits, self._num_bits_activation)
        return fresh.get_quantize_config(layer)


class MixedPrecisionQuantizeScheme(
        tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeScheme):
    """``DefaultNBitQuantizeScheme`` whose named layers keep 8-bit weights.

    Its layout transforms (batch norm after a conv, ReLU fusion, the input layer) are the
    n-bit scheme's; only the registry's choice of weight bits changes, layer by layer.
    Taught in ``07_custom_quantization``.
    """

    def __init__(self, keep_8bit_layers: Sequence[str], num_bits_weight: int = 4,
                 num_bits_activation: int = 8, disable_per_axis: bool = False):
        super().__init__(disable_per_axis, num_bits_weight, num_bits_activation)
        self.keep_8bit_layers = tuple(keep_8bit_layers)

    def get_quantize_registry(self) -> Any:
        return _MixedPrecisionRegistry(self.keep_8bit_layers, self._num_bits_weight,
                                       self._num_bits_activation, self._disable_per_axis)


def mixed_precision_qat_model(model: Any, keep_8bit_layers: Sequence[str],
                              num_bits_weight: int = 4, num_bits_activation: int = 8) -> Any:
    """A QAT model with every layer quantized: ``keep_8bit_layers`` at 8-bit weights, the rest lower.

    ``quantize_annotate_model`` + ``quantize_apply`` with :class:`MixedPrecisionQuantizeScheme`,
    so no layer stays float and batch norm is handled as in whole-model QAT. Fine-tune it
    with :func:`qlab.lite.qat.fine_tune`, convert it with :func:`qlab.lite.conversion.convert_qat`
    (2- and 4-bit weights measured: stored as INT4). Taught in ``07_custom_quantization``.

    Raises:
        TypeError: ``model`` is a Keras 3 model, or ``keep_8bit_layers`` is not a list of names.
        ValueError: a name is not a weight layer of ``model``, or a bit width is out of range.
    """
    from qlab.lite.qat import UnsupportedLayerError

    model = require_keras2_model(model)
    keep = _check_layer_names(model, keep_8bit_layers, "keep_8bit_layers")
    num_bits_weight = _check_weight_bits(num_bits_weight, "num_bits_weight")
    num_bits_activation = check_int(num_bits_activation, "num_bits_activation", 2, 8)
    qkeras = tfmot.quantization.keras
    scheme = MixedPrecisionQuantizeScheme(keep, num_bits_weight, num_bits_activation)
    try:
        annotated = qkeras.quantize_annotate_model(model)
        with qkeras.quantize_scope():
            return qkeras.quantize_apply(annotated, scheme=scheme)
    except (RuntimeError, ValueError) as exc:
        raise UnsupportedLayerError(f"TFMOT's n-bit scheme cannot quantize model {model.name!r}: {exc}. "
                                    f"Keep such a layer in float with qlab.lite.qat.quantize_partial, "
                                    f"or replace it with a supported layer.") from exc


def weight_bits_by_layer(qat_model: Any) -> dict[str, int]:
    """``{original layer name: weight bits}`` for every weight-quantizing layer of a TFMOT model."""
    bits = {}
    for layer in qat_model.layers:
        config = getattr(layer, "quantize_config", None)
        inner = getattr(layer, "layer", None)
        if config is None or inner is None or type(inner).__name__ not in WEIGHT_LAYER_TYPES:
            continue
        settings = config.get_config()
        bits[inner.name] = int(settings.get("num_bits_weight", settings.get("num_bits", 8)))
    return bits


def mixed_precision_ptq_model(model: Any, keep_8bit_layers: Sequence[str], num_bits: int,
                              per_channel: bool = True) -> Any:
    """Post-training counterpart: batch norm folded, every weight layer not kept rounded to ``num_bits``.

    Convert it with ``int8_per_channel`` (the kept layers get the converter's 8-bit
    weights; the others keep their ``num_bits`` levels on the int8 grid, see
    :mod:`qlab.lite.weight_bits`).
    """
    from qlab.lite.weight_bits import fake_quantize_kernel, rounded_weights_model

    model = require_keras2_model(model)
    keep = _check_layer_names(model, keep_8bit_layers, "keep_8bit_layers")
    num_bits = _check_weight_bits(num_bits)
    return rounded_weights_model(model, lambda kernel: fake_quantize_kernel(kernel, num_bits, per_channel),
                                 keep=keep)


#: TFLite ops that do the arithmetic of a layer (what is float in a float island).
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "MEAN",
               "AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "RELU", "RELU6", "SOFTMAX")


def float_island_counts(model_bytes: bytes) -> dict[str, int]:
    """Ops of a TFLite file by what they compute in, from :func:`qlab.lite.tflite.op_table`.

    ``float_ops`` (compute ops reading float32), ``int8_ops`` (compute ops reading int8),
    ``quantize_ops`` and ``dequantize_ops`` (the borders of every float island) and ``ops``.
    """
    from qlab.lite.tflite import op_table

    ops = op_table(model_bytes)
    compute = ops[ops["op"].isin(COMPUTE_OPS)]
    first_input = compute["input dtypes"].str.split(",").str[0].str.strip()
    return {"ops": int(len(ops)), "float_ops": int((first_input == "float32").sum()),
            "int8_ops": int((first_input == "int8").sum()),
            "quantize_ops": int((ops["op"] == "QUANTIZE").sum()),
            "dequantize_ops": int((ops["op"] == "DEQUANTIZE").sum())}


# --------------------------------------------------------------------------- the study


def _random_layers(names: Sequence[str], k: int, seed: int, exclude: Sequence[str] = ()) -> list[str]:
    """``k`` of ``names`` at random (seeded), none of them in ``exclude``, in model order."""
    pool = [name for name in names if name not in set(exclude)]
    picked = set(np.random.default_rng(seed).choice(len(pool), size=k, replace=False).tolist())
    return [name for i, name in enumerate(pool) if i in picked]


def _largest_layers(sensitivity: pd.DataFrame, k: int) -> list[str]:
    return list(sensitivity.sort_values("parameters", ascending=False, kind="stable")["layer"][:k])


def _file_row(model_bytes: bytes, scores: np.ndarray, reference: np.ndarray, labels: np.ndarray,
              **fields: Any) -> dict[str, Any]:
    from qlab.lite.conversion import weight_types_by_op
    from qlab.numerics.metrics import fine_metrics

    stored: dict[str, int] = {}
    for kinds in weight_types_by_op(model_bytes).values():
        for kind, count in kinds.items():
            stored[kind] = stored.get(kind, 0) + count
    return {**fields, **fine_metrics(reference, scores, labels), "size_bytes": len(model_bytes),
            **float_island_counts(model_bytes), "evaluated_with": "litert",
            "int4_weight_tensors": stored.get("INT4", 0), "int8_weight_tensors": stored.get("INT8", 0),
            "float_weight_tensors": stored.get("FLOAT32", 0)}


def _sensitivity_rows(model_name: str, sensitivity: pd.DataFrame, num_bits: int,
                      selections: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = []
    for row in sensitivity.to_dict(orient="records"):
        rows.append({"model": model_name, "part": "sensitivity",
                     "arm": f"{row['layer']} alone at {num_bits} bits", "num_bits": num_bits, **row,
                     **{f"in {name} pick": row["layer"] in layers for name, layers in selections.items()},
                     "evaluated_with": f"keras, fake-quant weights, {SENSITIVITY_SAMPLES_NOTE}"})
    return rows



class _Arms:
    """The files of one study run, their rows and test scores; latency is measured at the end."""

    def __init__(self, model_name: str, x_test: np.ndarray, y_test: np.ndarray, verbose: bool):
        self.model_name, self.x_test, self.y_test, self.verbose = model_name, x_test, y_test, verbose
        self.files: dict[str, bytes] = {}
        self.scores: dict[str, np.ndarray] = {}
        self.rows: dict[str, dict[str, Any]] = {}

    def add(self, key: str, model_bytes: bytes, keras_model: Any = None, **fields: Any) -> None:
        from qlab.lite.models import predict_keras
        from qlab.lite.tflite import predict_tflite

        start = time.perf_counter()
        scores = predict_tflite(model_bytes, self.x_test)
        reference = self.scores.get("float32", scores)
        row = _file_row(model_bytes, scores, reference, self.y_test, model=self.model_name, **fields)
        if keras_model is not None:
            keras_top1 = predict_keras(keras_model, self.x_test).argmax(1)
            row["keras_accuracy"] = float(np.mean(keras_top1 == self.y_test))
            row["keras_tflite_agreement"] = float(np.mean(keras_top1 == scores.argmax(1)))
        row["evaluate_seconds"] = round(time.perf_counter() - start, 1)
        self.files[key], self.scores[key], self.rows[key] = model_bytes, scores, row
        say(self.verbose, f"{self.model_name} {row['arm']}: {row['accuracy']:.4f}, "
                           f"{len(model_bytes) / 1024:.0f} KB, {row['float_ops']} float ops")

    def gain(self, key: str, baseline: str, prefix: str) -> None:
        from qlab.numerics.metrics import gain_columns

        self.rows[key].update(gain_columns(self.scores[key], self.scores[baseline], self.y_test,
                                           f"{prefix} (points)", f"{prefix} low", f"{prefix} high"))

    def measure_latency(self, runs: tuple[int, int]) -> None:
        from qlab.lite.tflite import compare_latency

        stats = compare_latency(self.files, runs=runs[0], warmup=runs[1])
        for key, row in self.rows.items():
            row["latency_ms"] = stats[key].median_ms
            row["latency_ratio"] = stats[key].median_ms / stats["float32"].median_ms
            row["size_ratio"] = len(self.files["float32"]) / row["size_bytes"]


def _anti_pattern(arms: _Arms, model: Any, model_name: str, size: str, seed: int,
                  data: tuple[np.ndarray, np.ndarray]) -> None:
    """float32, the cached ``qat_partial`` (Conv2D + Dense annotated, the rest float) and whole-model QAT.

    The whole-model 8-bit QAT is fine-tuned here like ``qat_partial`` was (same budget,
    TFMOT's [-6, 6] activation start), so the two differ only in what is quantized.
    """
    from qlab.lite.conversion import convert, convert_qat
    from qlab.lite.qat import QAT_BUDGETS, fine_tune, load_or_fine_tune, quantize_whole_model

    arms.add("float32", convert(model, "float32"), part="anti-pattern", arm="float32", stage="float")
    partial = load_or_fine_tune(model_name, "qat_partial", size, seed, verbose=0)
    # partial QAT leaves float layers, so its input and output stay float
    arms.add("qat_partial", convert_qat(partial, int8_io=False), partial, part="anti-pattern",
             arm="qat_partial: Conv2D + Dense quantized, the rest float", stage="QAT", num_bits=8)
    epochs, samples = QAT_BUDGETS[size]
    whole = quantize_whole_model(model)
    budget = fine_tune(whole, data[0][:samples], data[1][:samples], epochs, seed=seed, verbose=0)
    arms.add("qat_int8", convert_qat(whole), whole, part="anti-pattern", stage="QAT", num_bits=8,
             arm="whole-model QAT, 8-bit (TFMOT default scheme)", **budget)


def _selection_fields(model: Any, keep: Sequence[str], selection: str, num_bits: int) -> dict[str, Any]:
    sizes = {layer.name: int(layer.get_weights()[0].size) for layer in model.layers
             if layer.name in weight_layer_names(model)}
    return {"selection": selection, "k": len(keep), "num_bits": num_bits,
            "keep_8bit": ", ".join(keep),
            "share_of_weights_8bit": sum(sizes[name] for name in keep) / sum(sizes.values())}


def _ptq_arms(arms: _Arms, model: Any, selections: dict[str, list[str]], num_bits: int,
              x_calib: np.ndarray) -> None:
    from qlab.lite.conversion import convert

    for selection, keep in {"none": [], **selections}.items():
        start = time.perf_counter()
        candidate = mixed_precision_ptq_model(model, keep, num_bits)
        model_bytes = convert(candidate, "int8_per_channel", x_calib, num_samples=len(x_calib))
        arm = (f"PTQ, all weights at {num_bits} bits" if not keep else
               f"PTQ, {num_bits} bits, {len(keep)} layers at 8 ({selection})")
        arms.add(f"ptq {selection}", model_bytes, part="mixed precision", arm=arm, stage="PTQ",
                 note=f"{num_bits}-bit levels stored in INT8 tensors (the PTQ converter's width)",
                 convert_seconds=round(time.perf_counter() - start, 1),
                 **_selection_fields(model, keep, selection, num_bits))


def _qat_arms(arms: _Arms, model: Any, selections: dict[str, list[str]], num_bits: int,
              data: tuple[np.ndarray, np.ndarray], size: str, seed: int) -> None:
    from qlab.lite.conversion import convert_qat
    from qlab.lite.qat import CALIBRATED_START, QAT_BUDGETS, fine_tune
    from qlab.lite.qat_ranges import start_from_data

    epochs, samples = QAT_BUDGETS[size]
    x, y = data[0][:samples], data[1][:samples]
    for selection, keep in {"none": [], **selections}.items():
        qat_model = mixed_precision_qat_model(model, keep, num_bits)
        # from the data's activation ranges, like the zoo's whole-model QAT variants
        start_from_data(qat_model, model, x[:CALIBRATED_START["qat_int8"]])
        budget = fine_tune(qat_model, x, y, epochs, seed=seed, verbose=0)
        arm = (f"QAT, all weights at {num_bits} bits" if not keep else
               f"QAT, {num_bits} bits, {len(keep)} layers at 8 ({selection})")
        arms.add(f"qat {selection}", convert_qat(qat_model), qat_model, part="mixed precision",
                 arm=arm, stage="QAT", **budget, **_selection_fields(model, keep, selection, num_bits))


def partial_qat_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = True,
                      num_bits: int | None = None, k: int | None = None) -> pd.DataFrame:
    """Why "all Conv2D" partial QAT is an anti-pattern, and a partial QAT chosen by measurement.

    One flat table, rows told apart by ``part``:

    - ``anti-pattern``: float32, ``qat_partial`` (the cached zoo fine-tune) and whole-model
      8-bit QAT fine-tuned here with the same budget and start: accuracy, size, latency
      and the op counts of :func:`float_island_counts`.
    - ``sensitivity``: :func:`layer_sensitivity` at ``num_bits`` (default
      :data:`STUDY_NUM_BITS`), with the layers each selection keeps at 8 bits.
    - ``mixed precision``: every layer quantized, int8 activations, weights at
      ``num_bits`` except ``k`` layers at 8 bits (default: :data:`STUDY_KEEP_FRACTION`
      of the weight layers), picked by ``sensitivity`` (lowest output SQNR), at
      ``random`` (seeded) or, PTQ only, the ``largest``; and ``none`` (the whole model at
      ``num_bits``). PTQ rows fake-quantize the weights and convert with
      ``int8_per_channel``; QAT rows fine-tune :func:`mixed_precision_qat_model` with the
      ``qat_*`` variants' budget and start (the data's activation ranges) and convert
      with ``convert_qat`` (weights below 5 bits stored as INT4). ``gain vs whole`` compares with ``none`` of the same stage,
      ``gain vs random`` the sensitivity pick with the random one.

    Accuracy is LiteRT on the test split except in sensitivity rows (see
    ``evaluated_with``); latency is batch-1, interleaved with float32 in one run: read the
    ratios. Taught in ``07_custom_quantization`` (via ``run_study``).
    """
    import pandas as pd

    from qlab.lite.models import check_size, load_or_train, mnist_for

    size = check_size(size)
    num_bits = _check_weight_bits(STUDY_NUM_BITS.get(model_name, 2) if num_bits is None else num_bits)
    model = load_or_train(model_name, size, seed, verbose=0)
    names = weight_layer_names(model)
    k = max(1, math.ceil(STUDY_KEEP_FRACTION * len(names))) if k is None else k
    k = check_int(k, "k", 1, len(names) // 2)  # the random pick needs k other layers
    (x_train, y_train), (x_test, y_test) = mnist_for(model_name, size)
    arms = _Arms(model_name, x_test, y_test, verbose)
    _anti_pattern(arms, model, model_name, size, seed, (x_train, y_train))
    held_out = SENSITIVITY_SAMPLES[size]
    sensitivity = layer_sensitivity(model, x_train[-held_out:], y_train[-held_out:], num_bits)
    chosen = most_sensitive_layers(sensitivity, k)
    selections = {"sensitivity": chosen, "random": _random_layers(names, k, seed, exclude=chosen)}
    say(verbose, f"{model_name}: {k} of {len(names)} layers at 8 bits; most sensitive at "
                  f"{num_bits} bits: {selections['sensitivity']}; random: {selections['random']}")
    _ptq_arms(arms, model, {**selections, "largest": _largest_layers(sensitivity, k)}, num_bits,
              x_train[:CALIBRATION_SAMPLES[size]])
    _qat_arms(arms, model, selections, num_bits, (x_train, y_train), size, seed)
    for stage in ("ptq", "qat"):
        for selection in ("sensitivity", "random", "largest"):
            if f"{stage} {selection}" in arms.rows:
                arms.gain(f"{stage} {selection}", f"{stage} none", "gain vs whole")
        arms.gain(f"{stage} sensitivity", f"{stage} random", "gain vs random")
    arms.gain("qat_partial", "qat_int8", "gain vs whole")
    arms.measure_latency(LATENCY_RUNS[size])
    rows = list(arms.rows.values()) + _sensitivity_rows(model_name, sensitivity, num_bits, selections)
    return pd.DataFrame(rows)


SUMMARY_COLUMNS = {"arm": "arm", "accuracy": "accuracy %", "delta_low": "Δ low (points)",
                   "delta_high": "Δ high (points)", "size_ratio": "float32 size / size",
                   "latency_ratio": "latency / float32", "float_ops": "float ops",
                   "quantize_ops": "QUANTIZE", "dequantize_ops": "DEQUANTIZE",
                   "share_of_weights_8bit": "8-bit share of weights"}


def partial_qat_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The file rows of a :func:`partial_qat_study` table in readable units (accuracy in %).

    One row per file (the sensitivity rows are left out): accuracy and its 95% interval
    against float32 in points, size and latency ratios, float islands and the share of
    the weights kept at 8 bits. Taught in ``07_custom_quantization``.
    """
    missing = [column for column in ("part", *SUMMARY_COLUMNS) if column not in table.columns]
    if missing:
        raise ValueError(f"table is not a partial_qat_study table: it lacks {missing}")
    rows = table[table["part"] != "sensitivity"]
    summary = rows[list(SUMMARY_COLUMNS)].rename(columns=SUMMARY_COLUMNS).reset_index(drop=True)
    summary["accuracy %"] = (100 * summary["accuracy %"]).round(2)
    for column in ("Δ low (points)", "Δ high (points)"):
        summary[column] = (100 * summary[column]).round(2)
    return summary.round({"float32 size / size": 2, "latency / float32": 2, "8-bit share of weights": 3})
