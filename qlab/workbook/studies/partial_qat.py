"""Study ``partial_qat`` (lesson 07): partial QAT by layer type against layers chosen by measurement.

The all-Conv2D partial QAT leaves float islands in the file; mixed precision keeps the
most sensitive weight layers (:func:`qlab.qat.mixed_precision.layer_sensitivity`) at
8 bits and the rest at a low bit width, after PTQ and after QAT, with random and
largest-layer choices as controls. :func:`partial_qat_summary` is the lesson's table.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.workbook.studies import CALIBRATION_SAMPLES
from qlab.numerics.validate import check_int
from qlab.qat.mixed_precision import (check_weight_bits, float_island_counts, layer_sensitivity,
                                      mixed_precision_ptq_model, mixed_precision_qat_model,
                                      most_sensitive_layers, weight_layer_names)
from qlab.zoo.progress import say

if TYPE_CHECKING:
    import pandas as pd

#: Weight bit width of the study per model: where whole-model per-channel PTQ loses clearly
#: (weight_bits study: mobilenet_v2 39.45% and mnist_cnn 43.93% at 2 bits, against 99%+ float).
STUDY_NUM_BITS = {"mnist_cnn": 2, "mobilenet_v1": 2, "mobilenet_v2": 2}
#: Share of the weight layers the study keeps at 8 bits (at least one layer).
STUDY_KEEP_FRACTION = 0.1
#: Latency budget per size: (timed runs, warm-up runs), as in the workbook's comparison.
LATENCY_RUNS = {"full": (400, 50), "smoke": (20, 5)}
SUMMARY_COLUMNS = {"arm": "arm", "accuracy": "accuracy %", "delta_low": "Δ low (points)",
                   "delta_high": "Δ high (points)", "size_ratio": "float32 size / size",
                   "latency_ratio": "latency / float32", "float_ops": "float ops",
                   "quantize_ops": "QUANTIZE", "dequantize_ops": "DEQUANTIZE",
                   "share_of_weights_8bit": "8-bit share of weights"}
#: Images the sensitivity is measured on: the end of the training split, which the
#: fine-tunes (first 30,000) do not use and the test split never sees.
SENSITIVITY_SAMPLES = {"full": 2000, "smoke": 128}
SENSITIVITY_SAMPLES_NOTE = "the last training images (not used by the fine-tunes)"
#: Images the PTQ rows calibrate their int8 activations on (the first training images).


def _random_layers(names: Sequence[str], k: int, seed: int, exclude: Sequence[str] = ()) -> list[str]:
    """``k`` of ``names`` at random (seeded), none of them in ``exclude``, in model order."""
    pool = [name for name in names if name not in set(exclude)]
    picked = set(np.random.default_rng(seed).choice(len(pool), size=k, replace=False).tolist())
    return [name for i, name in enumerate(pool) if i in picked]


def _largest_layers(sensitivity: pd.DataFrame, k: int) -> list[str]:
    return list(sensitivity.sort_values("parameters", ascending=False, kind="stable")["layer"][:k])


def _file_row(model_bytes: bytes, scores: np.ndarray, reference: np.ndarray, labels: np.ndarray,
              **fields: Any) -> dict[str, Any]:
    from qlab.conversion.converter import weight_types_by_op
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
        from qlab.zoo.models import predict_keras
        from qlab.conversion.tflite import predict_tflite

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
        from qlab.conversion.tflite import compare_latency

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
    from qlab.conversion.converter import convert, convert_qat
    from qlab.qat.training import QAT_BUDGETS, fine_tune, load_or_fine_tune
    from qlab.qat.quantize import quantize_whole_model

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
    from qlab.conversion.converter import convert

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
    from qlab.conversion.converter import convert_qat
    from qlab.qat.training import CALIBRATED_START, QAT_BUDGETS, fine_tune
    from qlab.qat.ranges import start_from_data

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

    from qlab.zoo.models import check_size, load_or_train, mnist_for

    size = check_size(size)
    num_bits = check_weight_bits(STUDY_NUM_BITS.get(model_name, 2) if num_bits is None else num_bits)
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
