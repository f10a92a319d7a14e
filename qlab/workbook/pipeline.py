"""The experiment engine: every zoo model x variant, measured the same way, in one table.

For each model: the float Keras model (trained or loaded from the cache), each
variant converted to TFLite, top-1 accuracy of the TFLite model on the test set
through the LiteRT interpreter, its file size (stored, and compressed with ``gzip -9``:
deflate, the algorithm TFMOT's pruning and clustering guides measure with ``zipfile``), and
its batch-1 latency measured in the same process and interleaved with the float32 baseline. QAT variants also
report the agreement between the Keras model and its TFLite conversion. Every
variant has a file: ``qat_4bit`` stores its conv, depthwise and dense weights as INT4, which
LiteRT unpacks and runs with its int8 kernels. The ``aeq_*`` variants are made by the LiteRT
Quantizer from the float32 file (:mod:`qlab.conversion.litert_quantizer`), calibrated on the same images
as the converter's. Every row also counts the file's ops that are not integer-only.

Every row is also compared with the float32 TFLite model's scores on the same test
images (see :func:`qlab.numerics.metrics.fine_metrics`): top-1 agreement, output
SQNR, softmax KL divergence, and the accuracy change with a 95% paired bootstrap
interval and McNemar's exact p-value, so a change of a few images can be told from noise.
"""

from __future__ import annotations

import datetime as _dt
import functools
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from qlab.conversion.converter import (AEQ_VARIANTS, CALIBRATION_SAMPLES, DC_VARIANTS,
                                      DEFAULT_CALIBRATION_SAMPLES, KERAS3_VARIANTS, QAT_VARIANTS,
                                      RefusedConversion, check_variants, convert, convert_qat,
                                      converter_refusal, export_once)
from qlab.numerics.compression import gzip_size
from qlab.numerics.metrics import fine_metrics
from qlab.numerics.validate import check_names
from qlab.zoo.models import MODELS, check_size, get_spec, known_models, predict_keras
from qlab.zoo.transformer import NAME as ENCODER
from qlab.workbook.user_data import check_dataset

#: Columns of the results table, in display order.
COLUMNS = ["model", "variant", "accuracy", "top1_agreement", "output_sqnr_db", "kl_divergence",
           "accuracy_delta", "delta_low", "delta_high", "mcnemar_p", "size_bytes", "size_ratio",
           "gzip_bytes", "gzip_ratio", "non_integer_ops", "latency_ms", "latency_ratio", "keras_accuracy",
           "keras_tflite_agreement", "keras_weight_bytes", "evaluated_with", "seconds", "note"]
#: The columns measured against the float32 TFLite model on the same images (fine_metrics' keys).
FINE_COLUMNS = ["top1_agreement", "output_sqnr_db", "kl_divergence", "accuracy_delta", "delta_low",
                "delta_high", "mcnemar_p"]
#: Latency budget per size: (timed runs, warm-up runs).
LATENCY_RUNS = {"full": (400, 50), "smoke": (20, 5)}


def check_models(models: str | Sequence[str]) -> list[str]:
    """Normalise ``"all"``, a comma list or a sequence of zoo names; raise on unknown names.

    ``"all"`` is the three CNNs every lesson uses; the Keras 3 transformer
    (:data:`qlab.zoo.transformer.NAME`) and the narrow CNNs (:data:`qlab.zoo.models.NARROW_MODELS`)
    are compared when they are named.
    """
    from qlab.zoo.transformer import NAME

    return list(MODELS) if models == "all" else check_names(models, [*known_models(), NAME], "models")


@dataclass
class ComparisonResult:
    """The results table of :func:`compare`, the environment it was measured on, and where it is saved.

    Returned by :func:`compare` and :func:`compare_keras_model`. Taught in ``03_float_baselines``.
    """

    table: pd.DataFrame
    environment: dict[str, str]
    config: dict[str, Any]
    path: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """The table as JSON-able dicts (NaN -> None; the float32 row's infinite SQNR -> None too)."""
        frame = self.table.astype(object).where(self.table.notna(), None)
        return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]

    def to_json(self) -> dict[str, Any]:
        """What is persisted: environment, config and rows."""
        return {"environment": self.environment, "config": self.config, "rows": self.rows(),
                **self.extras}

    def display_table(self) -> pd.DataFrame:
        """The table with readable units: accuracy in %, size in KB, ratios as 'x'."""
        t = self.table
        return pd.DataFrame({
            "model": t["model"], "variant": t["variant"],
            "accuracy %": (100 * t["accuracy"]).round(2),
            "Δ acc. points [95% CI]": [_delta_text(*r) for r in zip(t["accuracy_delta"], t["delta_low"],
                                                                    t["delta_high"])],
            "McNemar p": t["mcnemar_p"].map(lambda p: None if pd.isna(p) else f"{p:.2g}"),
            "agreement %": (100 * t["top1_agreement"]).round(2),
            "output SQNR dB": t["output_sqnr_db"].replace([np.inf, -np.inf], np.nan).round(1),
            "KL": t["kl_divergence"].map(lambda kl: None if pd.isna(kl) else f"{kl:.2g}"),
            "size KB": (t["size_bytes"] / 1024).round(1),
            "float32 size / size": t["size_ratio"].round(2),
            "gzip -9 KB": (t["gzip_bytes"] / 1024).round(1),
            "float32 gzip / gzip": t["gzip_ratio"].round(2),
            "ops not integer-only": t["non_integer_ops"].astype("Int64"),
            "latency ms": t["latency_ms"].round(3),
            "latency / float32": t["latency_ratio"].round(2),
            "Keras-TFLite agreement %": (100 * t["keras_tflite_agreement"]).round(2),
            **({"Keras accuracy %": (100 * t["keras_accuracy"]).round(2),
                "Keras weights KB": (t["keras_weight_bytes"] / 1024).round(1)}
               if t["keras_weight_bytes"].notna().any() else {}),
            "evaluated with": t["evaluated_with"],
        })

    def notes(self) -> list[str]:
        """``"model variant, variant: note"`` for the rows with a note (a variant the converter refused, ...)."""
        noted = self.table[self.table["note"].notna() & (self.table["note"] != "")]
        grouped = noted.groupby(["model", "note"], sort=False)["variant"].agg(", ".join)
        return [f"{model} {variants}: {note}" for (model, note), variants in grouped.items()]

    def __repr__(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            text = self.display_table().to_string(index=False, na_rep="-")
        where = f"\nsaved to {self.path}" if self.path else ""
        notes = "".join(f"\n{note}" for note in self.notes())
        return f"{text}{notes}\n({self.config['size']} size, seed {self.config['seed']}){where}"

    def _repr_html_(self) -> str:
        html = self.display_table().to_html(index=False, na_rep="-")
        notes = "".join(f"<li>{note}</li>" for note in self.notes())
        where = f"<p>saved to <code>{self.path}</code></p>" if self.path else ""
        return (f"{html}{f'<ul>{notes}</ul>' if notes else ''}<p>{self.config['size']} size, "
                f"seed {self.config['seed']}</p>{where}")


def _json_value(value: Any) -> Any:
    """A table cell as JSON can hold it: numpy scalars as Python ones, infinities as None."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _delta_text(delta: Any, low: Any, high: Any) -> str | None:
    """``+0.12 [-0.05, +0.30]``: an accuracy change and its interval, in percentage points."""
    if any(pd.isna(v) for v in (delta, low, high)):
        return None
    return f"{100 * delta:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"


def zoo_tflite_dir(name: str, size: str, seed: int) -> Path:
    """Where :func:`compare_model` keeps the .tflite files of one zoo model, size and seed."""
    from qlab.files.paths import artifacts_dir

    return artifacts_dir() / "tflite" / f"{name}-{size}-s{seed}"


def _variant_model(name: str, variant: str, float_model: Any, x_calib: np.ndarray, size: str,
                   seed: int, calibration_samples: int, verbose: Any,
                   float_file: Callable[[], bytes], exported: Callable[[], str | None]) -> tuple[bytes, Any]:
    """``(tflite bytes, the Keras QAT model or None)`` for one variant (``float_file``: the float32 file, made
    once; ``exported``: the float model's export, shared by its post-training variants)."""
    from qlab.qat.training import load_or_fine_tune

    if variant == "float32":
        return float_file(), None
    if variant in AEQ_VARIANTS:
        return _aeq_variant(variant, float_file(), x_calib, calibration_samples), None
    if variant in DC_VARIANTS:
        from qlab.compression.deep_compression import VARIANT_STAGES, load_stage

        return _dc_variant(variant, load_stage(name, VARIANT_STAGES[variant], size, seed, verbose),
                           x_calib, calibration_samples)
    if variant not in QAT_VARIANTS:
        return convert(float_model, variant, x_calib, calibration_samples, exported=exported()), None
    return _qat_variant(variant, load_or_fine_tune(name, variant, size, seed, verbose))


def _aeq_variant(variant: str, float_file: bytes, x_calib: np.ndarray, calibration_samples: int) -> bytes:
    """A LiteRT Quantizer variant: the float32 file quantized with its recipe, calibrated on the
    converter's images."""
    from qlab.conversion.litert_quantizer import quantize_variant

    return quantize_variant(float_file, variant, x_calib, calibration_samples)


def _float_file_once(model: Any, exported: Callable[[], str | None]) -> Callable[[], bytes]:
    """``model``'s float32 file, converted on the first call: the baseline and every LiteRT Quantizer variant."""
    return functools.cache(lambda: convert(model, "float32", exported=exported()))


def _qat_variant(variant: str, qat_model: Any) -> tuple[bytes, Any]:
    """``(tflite bytes, qat_model)`` for a fine-tuned QAT variant."""
    # partial QAT leaves float layers, so its input and output stay float; qat_int8 and
    # qat_4bit quantize every layer, so like int8_per_channel they take and give int8
    return convert_qat(qat_model, int8_io=(variant != "qat_partial")), qat_model


def _dc_variant(variant: str, stage_model: Any, x_calib: np.ndarray,
                calibration_samples: int) -> tuple[bytes, Any]:
    """``(tflite bytes, the Keras QAT model or None)`` for a Deep Compression variant."""
    from qlab.compression.deep_compression import QAT_STAGES, VARIANT_STAGES, variant_file

    keras_model = stage_model if VARIANT_STAGES[variant] in QAT_STAGES else None
    return variant_file(variant, stage_model, x_calib, calibration_samples), keras_model


def _predict_in_background(pool: ThreadPoolExecutor, model_bytes: bytes, x: np.ndarray) -> Future:
    """Start the TFLite predictions for ``x``; the future gives ``(scores, seconds)``."""
    from qlab.conversion.tflite import predict_tflite

    def run() -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        return predict_tflite(model_bytes, x, workers=1), time.perf_counter() - start

    return pool.submit(run)


def measure_variants(float_model: Any, name: str, variants: Sequence[str], data: Any,
                     variant_model: Callable[[str], tuple[bytes, Any]],
                     latency_runs: tuple[int, int] | None, tflite_dir: Path | None = None,
                     verbose: Any = 0) -> list[dict[str, Any]]:
    """Rows of the results table for one float model and its variants.

    Args:
        float_model: the trained float Keras model (float32 is converted from it as the
            baseline of the size and latency ratios, and its scores are the reference of the
            fine metrics, whether or not ``"float32"`` is among ``variants``).
        name: the ``model`` column.
        variants: variant names, in order.
        data: ``((x_train, y_train), (x_test, y_test))``; accuracy is on the test part.
        variant_model: ``variant -> (tflite bytes, the variant's Keras model or None)``; also asked for
            ``"float32"``, the baseline (a Keras 3 model converts differently from a tf_keras one). A
            Keras model (QAT, or Keras 3's ``model.quantize``) gives the row its Keras accuracy and
            agreement with the file; a Keras 3 one, its weight bytes in memory. A converter refusal is a
            row with ``evaluated_with`` "refused" and the converter's reason; one that carries the Keras
            model (:class:`qlab.conversion.converter.RefusedConversion`) keeps its Keras columns.
        latency_runs: ``(runs, warmup)`` for interleaved latency, or None to skip it.
        tflite_dir: where to keep each variant's ``.tflite`` file (None: not kept).

    A model the converter refuses even in float32 - so no variant can be made - raises a ValueError
    naming the layer the converter stopped at.

    Each file is evaluated on a background thread while the next variant converts (the
    interpreter releases the GIL, conversion is mostly Python): the slow 16x8 reference
    kernels then cost almost no extra time on a 2-core machine.
    """
    from qlab.conversion.tflite import compare_latency

    (_, _), (x_test, y_test) = data
    y_test = np.asarray(y_test)
    files = {"float32": _float_baseline(float_model, name, variant_model)}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qlab-evaluate") as pool:
        predictions = {"float32": _predict_in_background(pool, files["float32"], x_test)}
        rows, keras_scores = _convert_variants(name, variants, x_test, variant_model, files, predictions,
                                               pool, tflite_dir, verbose)
        reference, _ = predictions["float32"].result()
        for variant, row in rows.items():
            keras_top1 = keras_scores[variant].argmax(axis=1) if variant in keras_scores else None
            if keras_top1 is not None:
                row["keras_accuracy"] = float(np.mean(keras_top1 == y_test))
            if variant not in predictions:  # refused: no file to measure
                continue
            scores, seconds = predictions[variant].result()
            row["seconds"] += seconds
            row.update(fine_metrics(reference, scores, y_test))
            if keras_top1 is not None:
                row["keras_tflite_agreement"] = float(np.mean(scores.argmax(axis=1) == keras_top1))
    rows = [{**rows[variant], "seconds": round(rows[variant]["seconds"], 1)} for variant in variants]
    if "float32" in variants and set(variants) & set(KERAS3_VARIANTS):  # the keras_* rows' in-memory baseline
        rows[list(variants).index("float32")]["keras_weight_bytes"] = _keras_weight_bytes(float_model)
    if latency_runs:
        stats = compare_latency(files, runs=latency_runs[0], warmup=latency_runs[1])
        for row in rows:
            if row["variant"] in stats:
                row["latency_ms"] = stats[row["variant"]].median_ms
                row["latency_ratio"] = stats[row["variant"]].median_ms / stats["float32"].median_ms
    return rows


def _convert_variants(name: str, variants: Sequence[str], x_test: np.ndarray,
                      variant_model: Callable[[str], tuple[bytes, Any]], files: dict[str, bytes],
                      predictions: dict[str, Future], pool: ThreadPoolExecutor, tflite_dir: Path | None,
                      verbose: Any) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """``(rows by variant, Keras scores of the QAT variants)``; starts each file's evaluation."""
    from qlab.files.io import write_bytes_atomic
    from qlab.conversion.tflite_file import count_non_integer_ops
    from qlab.zoo.progress import progress_iter

    rows, keras_scores = {}, {}
    float_gzip = gzip_size(files["float32"])
    # int16x8 first: its reference kernels take longest to evaluate in the background
    ordered = sorted(variants, key=lambda v: v != "int16x8")
    for variant in progress_iter(ordered, f"{name}: variants", unit="variant"):
        if verbose:
            print(f"  {name}: {variant}", flush=True)
        start = time.perf_counter()
        model_bytes, keras_model = files.get(variant), None
        if model_bytes is None:
            try:
                model_bytes, keras_model = variant_model(variant)
            except Exception as exc:  # the converter refusing this model is a result, not a failure
                reason = converter_refusal(exc)
                if reason is None:
                    raise
                rows[variant] = {"model": name, "variant": variant, "evaluated_with": "refused",
                                 "note": f"the converter refused: {reason}"}
                if isinstance(exc, RefusedConversion):  # the variant's Keras model exists: measure it
                    rows[variant].update(_keras_columns(exc.keras_model, variant, x_test, keras_scores))
                rows[variant]["seconds"] = time.perf_counter() - start
                continue
        row = {"model": name, "variant": variant, "evaluated_with": "litert"}
        if keras_model is not None:
            row.update(_keras_columns(keras_model, variant, x_test, keras_scores))
        files[variant] = model_bytes
        if variant not in predictions:
            predictions[variant] = _predict_in_background(pool, model_bytes, x_test)
        row.update(size_bytes=len(model_bytes), size_ratio=len(files["float32"]) / len(model_bytes),
                   gzip_bytes=gzip_size(model_bytes), non_integer_ops=count_non_integer_ops(model_bytes))
        row["gzip_ratio"] = float_gzip / row["gzip_bytes"]
        if tflite_dir is not None:
            write_bytes_atomic(tflite_dir / f"{variant}.tflite", model_bytes)
        row["seconds"] = time.perf_counter() - start  # convert (+ fine-tune) (+ evaluate, later)
        rows[variant] = row
    return rows, keras_scores


def _keras_columns(keras_model: Any, variant: str, x_test: np.ndarray,
                   keras_scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """Store the Keras model's scores on ``x_test``; its weight bytes in memory if it is a Keras 3 model."""
    keras_scores[variant] = predict_keras(keras_model, x_test)
    return {"keras_weight_bytes": _keras_weight_bytes(keras_model)} if _is_keras3(keras_model) else {}


def _keras_weight_bytes(model: Any) -> int:
    from qlab.ptq.keras3_quantize import weight_bytes

    return sum(weight_bytes(model).values())


def _float_baseline(float_model: Any, name: str, variant_model: Callable[[str], tuple[bytes, Any]]) -> bytes:
    """The float32 file, however the model converts; a model the converter refuses is a ValueError naming
    the layer it stopped at, since no variant can be made."""
    from qlab.conversion.converter import refused_layer

    try:
        return variant_model("float32")[0]
    except Exception as exc:
        reason = converter_refusal(exc)
        if reason is None:
            raise
        layer = refused_layer(exc, [layer.name for layer in float_model.layers])
        where = "" if layer is None else (
            f" at layer {layer!r} ({type(float_model.get_layer(layer)).__name__})")
        raise ValueError(
            f"the TFLite converter cannot convert model {name!r} even without quantization, so no variant "
            f"can be made: it stopped{where}: {reason}. Replace that layer's ops with ones LiteRT has built "
            f"in (https://ai.google.dev/edge/litert/models/ops_compatibility)") from exc


def compare_encoder(variants: Sequence[str], size: str = "full", seed: int = 0, latency: bool = True,
                    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES, verbose: Any = 0,
                    save_tflite: bool = True) -> list[dict[str, Any]]:
    """Rows of the results table for the zoo's Keras 3 transformer (:mod:`qlab.zoo.transformer`).

    Measured as any Keras 3 model you bring (:func:`compare_keras_model`): the post-training,
    LiteRT Quantizer and Keras 3 ``model.quantize`` variants are measured; the QAT and Deep
    Compression ones, which need a tf_keras rebuild its attention and position embedding do not
    allow, get a "not applicable" row whose note names the layers. Each file is kept in
    :func:`zoo_tflite_dir`, as :func:`compare_model` keeps a CNN's (``qlab bench`` times them again there).
    """
    from qlab.zoo import transformer

    if verbose:
        print(f"{ENCODER} (a 2-block BERT-style encoder in Keras 3, MNIST as 16 patch tokens)", flush=True)
    model = transformer.load_or_train_encoder(size, seed, verbose)
    data = transformer.encoder_data(size)
    qat_base, _, why_not = _model_for_qat(model, variants, data[0][0])
    return _keras_model_rows(model, ENCODER, variants, data, qat_base, why_not,
                             LATENCY_RUNS[size] if latency else None, calibration_samples,
                             len(data[0][0]), seed, verbose,
                             zoo_tflite_dir(ENCODER, size, seed) if save_tflite else None)


def compare_model(name: str, variants: Sequence[str], size: str = "full", seed: int = 0,
                  latency: bool = True, calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
                  verbose: Any = 0, save_tflite: bool = True) -> list[dict[str, Any]]:
    """Rows of the results table for one zoo model (see :func:`compare`)."""
    from qlab.zoo.models import load_or_train, mnist_for

    float_model = load_or_train(name, size, seed, verbose)
    data = mnist_for(name, size)
    x_train = data[0][0]
    with tempfile.TemporaryDirectory(prefix="qlab-export-") as directory:
        exported = export_once(float_model, directory)
        return measure_variants(
            float_model, name, variants, data,
            functools.partial(_variant_model, name, float_model=float_model, x_calib=x_train, size=size,
                              seed=seed, calibration_samples=calibration_samples, verbose=verbose,
                              float_file=_float_file_once(float_model, exported), exported=exported),
            LATENCY_RUNS[size] if latency else None,
            zoo_tflite_dir(name, size, seed) if save_tflite else None, verbose)


def compare_keras_model(model: Any, data: Any, variants: str | Sequence[str] = "all",
                        name: str | None = None, latency: bool = True,
                        calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
                        fine_tune_samples: int = 10_000, seed: int = 0, save: bool = True,
                        verbose: Any = 0,
                        input_range: tuple[float, float] | None = None) -> ComparisonResult:
    """:func:`compare` for a model you bring: every variant of one trained Keras model.

    Taught in ``12_your_own_model``.

    Args:
        model: a trained float classifier that outputs class scores: a Keras 3 model
            (``import keras``), a tf_keras model, or the path of a saved one
            (:func:`qlab.zoo.models.load_keras_model`).
        data: ``((x_train, y_train), (x_test, y_test))`` (or a mapping with those keys, such
            as ``np.load("data.npz")``), images float32 shaped like the model input, integer
            labels; calibration and QAT fine-tuning use the train part.
        variants: as for :func:`compare`; QAT variants fine-tune one epoch on
            ``fine_tune_samples`` training examples (not cached), the whole-model ones
            starting from the activation ranges of the first training images. The Deep
            Compression variants prune and cluster on as many examples
            (:func:`qlab.compression.deep_compression.user_budget`, the default recipe).
            A Keras 3 model also has Keras 3's own ``model.quantize`` modes
            (:data:`qlab.conversion.converter.KERAS3_VARIANTS`: ``keras_int8``, ``keras_int4``,
            ``keras_int4_per_channel``), in its ``"all"`` too; naming one for a tf_keras model is a
            ValueError. Their rows add the quantized Keras model's accuracy (``keras_accuracy``) and
            weight bytes in memory (``keras_weight_bytes``, the float32 row has the float model's), then
            the converted file as for any variant, or a "refused" row with the converter's reason.
        name: the ``model`` column (default: the model's name).
        input_range: ``(low, high)`` the model was trained on, e.g. ``(0, 1)``; image values
            outside it are an error (qlab knows [0, 1] for its own models).

    The post-training variants convert the model as given (a Keras 3 model goes straight
    through the TFLite converter). The QAT and Deep Compression variants need TFMOT, hence
    tf_keras: a Keras 3 model is rebuilt in tf_keras (:func:`qlab.zoo.keras3.rebuild_in_tf_keras`,
    outputs checked on training images; ``result.config["keras3_rebuild"]`` says how closely they
    match) before any conversion. A model it cannot rebuild - a transformer's MultiHeadAttention,
    a custom layer - gets a "not applicable" row for each of those variants, whose note names the
    layer and why; if they are all that was asked for (besides float32), the
    :class:`qlab.zoo.keras3.Keras3RebuildError` is raised instead, naming the layer and what still works.
    A model the converter cannot take even in float32 is a ValueError naming the layer it stopped at.

    Before any conversion, :func:`qlab.workbook.user_data.check_dataset` checks the data
    against the model and raises a one-line ValueError naming the array and the problem:
    NaN or inf images, labels outside the model's classes, a wrong dtype, shape, length or
    value range, an empty array, or a model output that is not one score per class.
    """
    from qlab.compression.deep_compression import user_budget
    from qlab.zoo.environment import environment_report

    model = _user_model(model)
    variants = check_variants(variants, keras3=_is_keras3(model), model=f"model {model.name!r}")
    if set(variants) & set(TF_KERAS_VARIANTS):  # a bad sample count fails now, not at the first fine-tune
        user_budget(fine_tune_samples)
    data = check_dataset(model, data, input_range)
    qat_model, rebuild, why_not = _model_for_qat(model, variants, data[0][0])
    if why_not is not None and all(v in TF_KERAS_VARIANTS for v in variants if v != "float32"):
        raise why_not  # nothing asked for but what the rebuild stops: say which layer, and what works
    name = name or model.name
    rows = _keras_model_rows(model, name, variants, data, qat_model, why_not,
                             LATENCY_RUNS["full"] if latency else None, calibration_samples,
                             fine_tune_samples, seed, verbose)
    config = {"models": [name], "variants": variants, "size": "custom", "seed": seed,
              "latency": latency, "calibration_samples": calibration_samples,
              "fine_tune_samples": fine_tune_samples, "num_threads": 1,
              "keras": "3" if _is_keras3(model) else "2"}
    if rebuild is not None:
        config["keras3_rebuild"] = {"max_abs_diff": rebuild.max_abs_diff,
                                    "tolerance": rebuild.tolerance, "samples": rebuild.samples}
    result = ComparisonResult(pd.DataFrame(rows).reindex(columns=COLUMNS), environment_report(),
                              config)
    if save:
        result.path = save_result(result)
    return result


#: Training images a Keras 3 model's tf_keras rebuild is checked on.
REBUILD_CHECK_SAMPLES = 256
#: Variants made with TFMOT, hence from a tf_keras model (a Keras 3 model's rebuild).
TF_KERAS_VARIANTS = (*QAT_VARIANTS, *DC_VARIANTS)


def _is_keras3(model: Any) -> bool:
    from qlab.zoo.keras3 import is_keras3_model

    return is_keras3_model(model)


def _user_model(model: Any) -> Any:
    """A Keras 3 or tf_keras model; a path is loaded (:func:`qlab.zoo.models.load_keras_model`), the zoo
    transformer's own layers known (a saved ``patch_encoder`` loads too)."""
    from qlab.zoo import transformer
    from qlab.zoo.keras2 import require_keras2_model
    from qlab.zoo.keras3 import keras3_module
    from qlab.zoo.models import load_keras_model

    if isinstance(model, (str, Path)):
        if keras3_module() is not None:
            transformer.custom_objects()
        return load_keras_model(model)
    return model if _is_keras3(model) else require_keras2_model(model)


def _model_for_qat(model: Any, variants: Sequence[str], x_train: np.ndarray) -> tuple[Any, Any, Any]:
    """``(tf_keras model for the QAT and Deep Compression variants, the Keras 3 rebuild or None,
    the Keras3RebuildError that stops them or None)``; the model is None when the rebuild failed."""
    if not _is_keras3(model) or not set(variants) & set(TF_KERAS_VARIANTS):
        return model, None, None
    from qlab.zoo.keras3 import Keras3RebuildError, rebuild_in_tf_keras

    try:
        rebuild = rebuild_in_tf_keras(model, x_train[:REBUILD_CHECK_SAMPLES])
    except Keras3RebuildError as exc:
        return None, None, exc
    return rebuild.model, rebuild, None


def _keras_model_rows(model: Any, name: str, variants: Sequence[str], data: Any, qat_base: Any,
                      why_not: Any, latency_runs: tuple[int, int] | None, calibration_samples: int,
                      fine_tune_samples: int, seed: int, verbose: Any,
                      tflite_dir: Path | None = None) -> list[dict[str, Any]]:
    """Rows of one Keras model's variants, in order: measured, or "not applicable" for the TFMOT ones
    when ``why_not`` (the :class:`qlab.zoo.keras3.Keras3RebuildError` of its tf_keras rebuild) stops them.
    ``tflite_dir``: where to keep each variant's file (None: not kept)."""
    measured, rows = [v for v in variants if why_not is None or v not in TF_KERAS_VARIANTS], {}
    with tempfile.TemporaryDirectory(prefix="qlab-export-") as directory:
        variant_model = _user_variant_model(model, qat_base, data, calibration_samples, fine_tune_samples,
                                            seed, verbose, export_once(model, directory))
        if measured:
            rows = {row["variant"]: row for row in measure_variants(model, name, measured, data, variant_model,
                                                                   latency_runs, tflite_dir, verbose)}
    note = None if why_not is None else (
        f"not applicable: TFMOT's quantization-aware training, pruning and clustering need a tf_keras model, "
        f"and {why_not.reason}")
    return [rows.get(v) or {"model": name, "variant": v, "evaluated_with": "not applicable", "note": note}
            for v in variants]


def _user_variant_model(model: Any, qat_base: Any, data: Any, calibration_samples: int,
                        fine_tune_samples: int | None, seed: int, verbose: Any,
                        exported: Callable[[], str | None]) -> Callable[[str], tuple[bytes, Any]]:
    """``variant -> (tflite bytes, the variant's Keras model or None)`` for :func:`compare_keras_model`
    (``qat_base``: the tf_keras model the QAT and Deep Compression variants start from)."""
    from qlab.compression.deep_compression import VARIANT_STAGES, stage_runner, user_budget
    from qlab.ptq.keras3_quantize import keras3_variant
    from qlab.qat.training import CALIBRATED_START, QAT_BUILDERS, fine_tune
    from qlab.qat.ranges import start_from_data

    (x_train, y_train), _ = data
    float_file = _float_file_once(model, exported)
    # checked when a fine-tune first runs: a caller whose variants fine-tune nothing may pass None
    budget = functools.cache(lambda: user_budget(fine_tune_samples))
    stages = stage_runner(qat_base, x_train, y_train, budget=budget, seed=seed, verbose=verbose)

    def variant_model(variant: str) -> tuple[bytes, Any]:
        if variant in DC_VARIANTS:
            return _dc_variant(variant, stages(VARIANT_STAGES[variant]), x_train, calibration_samples)
        if variant == "float32":
            return float_file(), None
        if variant in AEQ_VARIANTS:
            return _aeq_variant(variant, float_file(), x_train, calibration_samples), None
        if variant in KERAS3_VARIANTS:
            return keras3_variant(model, variant)
        if variant not in QAT_VARIANTS:
            return convert(model, variant, x_train, calibration_samples, exported=exported()), None
        samples = budget().qat_samples  # fine_tune_samples, checked before any work
        qat_model = QAT_BUILDERS[variant](qat_base)
        if variant in CALIBRATED_START:  # as the zoo's fine-tunes: from the data's ranges
            start_from_data(qat_model, qat_base, x_train[:CALIBRATED_START[variant]])
        fine_tune(qat_model, x_train[:samples], y_train[:samples], seed=seed, verbose=verbose,
                  description=f"QAT fine-tuning {variant}")
        return _qat_variant(variant, qat_model)

    return variant_model


def compare(models: str | Sequence[str] = "all", variants: str | Sequence[str] = "all",
            size: str = "full", seed: int = 0, latency: bool = True,
            calibration_samples: int | None = None, save: bool = True,
            verbose: Any = 0) -> ComparisonResult:
    """Measure every model x variant and return (and save) the results table.

    Taught in ``03_float_baselines``; used again in ``04_post_training_quantization``,
    ``05_per_channel``, ``06_quantization_aware_training`` and ``08_compare_and_debug``.

    Args:
        models: zoo names (:data:`qlab.zoo.models.MODELS`, :data:`~qlab.zoo.models.NARROW_MODELS`, the
            transformer), a comma list, or ``"all"`` (the three CNNs).
        variants: variant names (:data:`qlab.conversion.converter.VARIANTS`), a comma list, or ``"all"``;
            the Keras 3 transformer also has :data:`qlab.conversion.converter.KERAS3_VARIANTS` (in its
            ``"all"`` too), which the tf_keras CNNs do not: naming one with a CNN is a ValueError.
        size: ``"full"`` (all 60,000/10,000 images) or ``"smoke"`` (a few hundred, for tests).
        seed: training seed; the same seed and config give identical accuracies.
        latency: measure batch-1, single-thread latency (interleaved with float32).
        calibration_samples: representative images for the full-integer variants
            (default 500, 100 for smoke).
        save: write the table with the environment to ``artifacts/results/`` (atomically).
        verbose: print progress and show Keras progress bars when training.

    Returns:
        A :class:`ComparisonResult`; ``.table`` is a DataFrame with the columns
        :data:`COLUMNS`. accuracy is a fraction in [0, 1], size in bytes, latency in ms;
        the ratios are ``float32 size / size`` and ``latency / float32 latency``.
    """
    from qlab.zoo.environment import environment_report
    from qlab.zoo.progress import progress_iter

    models = check_models(models)
    by_model = {name: check_variants(variants, keras3=name == ENCODER, model=f"zoo model {name!r}")
                for name in models}
    check_size(size)
    if calibration_samples is None:
        calibration_samples = CALIBRATION_SAMPLES[size]
    rows = []
    for name in progress_iter(models, "compare: models", unit="model"):
        if name == ENCODER:
            rows += compare_encoder(by_model[name], size, seed, latency, calibration_samples, verbose)
            continue
        if verbose:
            print(f"{name} ({get_spec(name).description})", flush=True)
        rows += compare_model(name, by_model[name], size, seed, latency, calibration_samples, verbose)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    variants = list(dict.fromkeys(v for names in by_model.values() for v in names))
    config = {"models": models, "variants": variants, "size": size, "seed": seed,
              "latency": latency, "calibration_samples": calibration_samples,
              "latency_runs": LATENCY_RUNS[size][0], "num_threads": 1}
    result = ComparisonResult(table, environment_report(), config)
    if save:
        result.path = save_result(result)
    return result


def save_result(result: ComparisonResult, path: str | Path | None = None) -> Path:
    """Write ``result`` (rows, config, environment) as JSON, atomically; return the path.

    By default ``artifacts/results/compare-<size>-<UTC time>.json``.
    """
    from qlab.files.io import write_json_atomic
    from qlab.files.paths import artifacts_dir

    if path is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = artifacts_dir() / "results" / f"compare-{result.config['size']}-{stamp}.json"
    return write_json_atomic(path, result.to_json())


def load_result(path: str | Path) -> ComparisonResult:
    """A :class:`ComparisonResult` read back from the JSON that :func:`save_result` wrote."""
    import json

    path = Path(path)
    data = json.loads(path.read_text())
    table = _numeric_columns(pd.DataFrame(data["rows"]).reindex(columns=COLUMNS))
    extras = {k: v for k, v in data.items() if k not in ("environment", "config", "rows")}
    return ComparisonResult(table, data["environment"], data["config"], path, extras)


def _numeric_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Measured columns as floats (missing -> NaN), and the SQNR that JSON stored as null as ``inf``.

    JSON has no infinity, so :meth:`ComparisonResult.rows` saves the SQNR of a row whose
    scores equal float32's (the float32 row itself) as null; a row with the other fine
    metrics but no SQNR is such a row. Results saved before the fine metrics existed keep NaN.
    """
    text = {"model", "variant", "evaluated_with", "note"}
    for column in (c for c in COLUMNS if c not in text):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    identical = table["output_sqnr_db"].isna() & table["top1_agreement"].notna()
    table.loc[identical, "output_sqnr_db"] = np.inf
    return table


def latest_result(size: str = "full", since: float = 0.0) -> ComparisonResult | None:
    """The most complete results table saved under ``artifacts/results/`` after ``since``.

    Among the ``compare-<size>-*.json`` files modified at or after ``since`` (a
    ``time.time()`` value), the one with the most rows, newest first on a tie; None if
    there is none. ``qlab run`` prints it after the notebooks.
    """
    from qlab.files.paths import artifacts_dir

    candidates = [p for p in (artifacts_dir() / "results").glob(f"compare-{size}-*.json")
                  if p.stat().st_mtime >= since]
    results = [load_result(p) for p in sorted(candidates, key=lambda p: p.stat().st_mtime)]
    return max(reversed(results), key=lambda r: len(r.table), default=None)
