"""The accuracy-versus-bits picture: where post-training quantization collapses and QAT recovers.

For each (weight bits, activation bits) configuration four ways of getting there are
measured on the same 10,000 test images, each against the original float model:

- ``PTQ per-tensor``: min-max N-bit weights, one scale per tensor
  (:func:`qlab.ptq.weight_bits.fake_quantize_weights`), min-max activation ranges;
- ``PTQ per-channel MSE`` (the best PTQ here): N-bit weights with one MSE-optimal
  clipping range per output channel (:func:`qlab.ptq.weight_bits.fake_quantize_kernel_mse`), min-max
  activation ranges at 8 bits (the converter's), MSE-optimal ones below;
- ``control: float fine-tune + PTQ per-channel MSE``: the float model fine-tuned in
  float with exactly QAT's steps, images, batch size, optimizer, schedule and seed
  (:func:`qlab.qat.low_bit.float_fine_tune`), then the best PTQ. The QAT gain is measured against this,
  so "more training helped" is not counted as "QAT helped";
- ``QAT``: TFMOT's ``DefaultNBitQuantizeScheme(num_bits_weight=N, num_bits_activation=A)``
  (:func:`qlab.qat.quantize.quantize_whole_model_n_bit`), every activation range started
  from the calibration images with the best PTQ's estimator (not TFMOT's [-6, 6]),
  then fine-tuned (:func:`qlab.qat.training.n_bit_qat_from_data`).

At 8-bit activations every row goes through a real file and LiteRT: PTQ through the
converter's int8 path (the N-bit weights stored in int8, i.e. rounded once more onto
the int8 grid), QAT through :func:`qlab.conversion.converter.convert_qat`, which stores
4-, 3- and 2-bit weights as INT4. TFLite has no 4-bit activation kernels, so at 4-bit
activations the fake-quantized Keras model is evaluated and the ``evaluated`` column
says so. For PTQ that model is the BN-folded N-bit-weight model inside TFMOT's
8-bit-weight / 4-bit-activation scheme with data-set ranges
(:func:`qlab.ptq.ranges.quantize_with_ranges`): its 8-bit ``LastValueQuantizer``
re-rounds the N-bit levels onto an 8-bit grid as the file does (layers TFMOT fuses
with a following ReLU keep their N-bit weights unrounded).

The study is too slow for a lesson (one float and eight QAT fine-tunes per model) and is
recorded by ``qlab bench``. Taught in ``06_quantization_aware_training`` (the picture, the
control and the verdict).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.workbook.studies import CALIBRATION_SAMPLES
from qlab.numerics.validate import check_int
from qlab.ptq.weight_bits import fake_quantize_weights_mse
from qlab.qat.low_bit import (BATCH_SIZE, FINE_TUNE_SETTINGS, SETTINGS_DEFAULT, fine_tune_data,
                              float_fine_tune)
from qlab.qat.training import changed_codes, n_bit_qat_from_data

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["WEIGHT_BITS", "ACTIVATION_BITS", "METHODS", "bits_picture_table", "bits_picture_study",
           "low_bit_contrast", "describe_contrast", "contrast_view", "qat_verdict"]

WEIGHT_BITS: tuple[int, ...] = (8, 4, 3, 2)
ACTIVATION_BITS: tuple[int, ...] = (8, 4)
SMOKE_WEIGHT_BITS: tuple[int, ...] = (8, 2)
SMOKE_ACTIVATION_BITS: tuple[int, ...] = (8,)
PTQ_PER_TENSOR = "PTQ per-tensor"
BEST_PTQ = "PTQ per-channel MSE"
CONTROL = "control: float fine-tune + PTQ per-channel MSE"
QAT = "QAT"
FLOAT = "float (original)"
CONTROL_FLOAT = "float (control fine-tune)"
#: Row methods, in table order.
METHODS: tuple[str, ...] = (FLOAT, CONTROL_FLOAT, PTQ_PER_TENSOR, BEST_PTQ, CONTROL, QAT)
FILE, KERAS, FLOAT_KERAS = "LiteRT file", "fake-quant Keras", "float Keras"
def _check_bits(values: Any, argument: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{argument} must be a sequence of bit widths in 2..8, got {values!r}")
    checked = tuple(check_int(v, argument, 2, 8) for v in values)
    if not checked:
        raise ValueError(f"{argument} must name at least one bit width in 2..8, got {values!r}")
    return checked


def _check_learning_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"learning_rate must be a number in (0, 1), e.g. 1e-4, got {value!r}")
    return float(value)


def _storage(model_bytes: bytes) -> dict[str, Any]:
    """How the file stores its conv/dense weights, and at most how many levels a channel uses."""
    from qlab.conversion.converter import weight_types_by_op
    from qlab.conversion.tflite_file import weight_tensors

    kinds = sorted({kind for by_type in weight_types_by_op(model_bytes).values() for kind in by_type})
    return {"stored weights": ", ".join(kinds),
            "max levels per channel": int(weight_tensors(model_bytes)["levels"].max()),
            "file bytes": len(model_bytes)}


class _Scorer:
    """Scores -> a table row measured against the original float model on the same images."""

    def __init__(self, model_name: str, reference: np.ndarray, labels: np.ndarray, steps: int,
                 learning_rate: float):
        self.model_name, self.reference, self.labels = model_name, reference, labels
        self.float_correct = reference.argmax(1) == labels
        self.steps, self.learning_rate = steps, learning_rate

    def row(self, scores: np.ndarray, weight_bits: int, activation_bits: int, method: str,
            evaluated: str, start: float, **extra: Any) -> dict[str, Any]:
        from qlab.numerics.metrics import fine_metrics

        metrics = fine_metrics(self.reference, scores, self.labels)
        return {"model": self.model_name, "weight_bits": weight_bits,
                "activation_bits": activation_bits, "method": method, "evaluated": evaluated,
                **metrics, "loss vs float (points)": -100 * metrics["accuracy_delta"],
                "loss low": -100 * metrics["delta_high"], "loss high": -100 * metrics["delta_low"],
                "steps": self.steps, "learning_rate": self.learning_rate, **extra,
                "seconds": round(time.perf_counter() - start, 1)}

    def gain(self, scores: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
        """``scores``' accuracy minus ``baseline``'s (points), paired 95% interval."""
        from qlab.numerics.metrics import gain_columns

        return gain_columns(scores, baseline, self.labels, "QAT gain vs control (points)")


def _code_columns(changed: int, total: int) -> dict[str, Any]:
    return {"weights with changed code (%)": 100 * changed / total,
            "weights with changed code": changed, "kernel weights": total}


def _ptq_scores(weights_model: Any, per_channel: bool, activation_bits: int, method: str,
                x_calib: np.ndarray, x_test: np.ndarray, seed: int) -> tuple[np.ndarray, str, dict]:
    """The N-bit-weight model's test scores: int8 file at 8-bit activations, else TFMOT Keras."""
    from qlab.conversion.converter import convert
    from qlab.zoo.models import predict_keras
    from qlab.conversion.tflite import predict_tflite

    if activation_bits == 8:
        variant = "int8_per_channel" if per_channel else "int8_per_tensor"
        model_bytes = convert(weights_model, variant, x_calib, num_samples=len(x_calib))
        return predict_tflite(model_bytes, x_test), FILE, _storage(model_bytes)
    return predict_keras(_stand_in(weights_model, x_calib, activation_bits, method, seed), x_test), KERAS, {}


def _stand_in(weights_model: Any, x_calib: np.ndarray, activation_bits: int, method: str,
              seed: int) -> Any:
    """The N-bit-weight model in TFMOT's 8-bit-weight, ``activation_bits`` scheme, data ranges set."""
    from qlab.ptq.ranges import quantize_with_ranges

    return quantize_with_ranges(weights_model, x_calib, method, activation_bits, seed=seed).qat_model


def _simulation_agreement(weights_model: Any, file_scores: np.ndarray, x_calib: np.ndarray,
                          x_test: np.ndarray, seed: int, images: int = 2000) -> float:
    """Top-1 agreement of the 4-bit-activation stand-in (TFMOT Keras, data ranges) run at 8 bits
    with the int8 file, on the first ``images`` test images: how faithful the stand-in is."""
    from qlab.zoo.models import predict_keras
    from qlab.numerics.metrics import top1_agreement

    simulated = _stand_in(weights_model, x_calib, 8, "minmax", seed)
    return top1_agreement(file_scores[:images], predict_keras(simulated, x_test[:images]))


def _qat_scores(qat_model: Any, activation_bits: int, x_test: np.ndarray
                ) -> tuple[np.ndarray, str, dict]:
    from qlab.conversion.converter import try_convert_qat
    from qlab.zoo.models import predict_keras
    from qlab.conversion.tflite import predict_tflite

    if activation_bits == 8:
        model_bytes, reason = try_convert_qat(qat_model, int8_io=True)
        if model_bytes is not None:
            return predict_tflite(model_bytes, x_test), FILE, _storage(model_bytes)
        return predict_keras(qat_model, x_test), KERAS, {"converter refused": reason}
    return predict_keras(qat_model, x_test), KERAS, {}


def _say(verbose: bool, row: dict[str, Any]) -> None:
    if verbose:
        print(f"{row['model']} W{row['weight_bits']}A{row['activation_bits']} {row['method']}: "
              f"{100 * row['accuracy']:.2f}% ({row['evaluated']}, {row['seconds']:.0f} s)", flush=True)


def _configuration_rows(ctx: _Scorer, data: dict[str, np.ndarray], model: Any, control: Any,
                        weight_bits: int, activation_bits: int, epochs: int, seed: int,
                        verbose: bool, tuned_qat: Any = None) -> list[dict[str, Any]]:
    """The four rows (PTQ per-tensor, best PTQ, control, QAT) of one configuration.

    ``tuned_qat``: a QAT model already fine-tuned with this budget (the cached one of
    :func:`qlab.qat.low_bit.load_or_fine_tune_low_bit`); None fine-tunes one here.
    """
    from qlab.qat.training import fine_tune
    from qlab.ptq.weight_bits import fake_quantize_weights

    x_calib, x_test = data["x_calib"], data["x_test"]
    range_method = "minmax" if activation_bits == 8 else "mse"
    rows, scores = [], {}
    start = time.perf_counter()
    qat_model = tuned_qat if tuned_qat is not None else \
        n_bit_qat_from_data(model, x_calib, weight_bits, activation_bits, range_method, seed)
    control_codes = _code_columns(*changed_codes(qat_model, model, control))
    for method, source in ((PTQ_PER_TENSOR, model), (BEST_PTQ, model), (CONTROL, control)):
        start = time.perf_counter()
        per_channel = method != PTQ_PER_TENSOR
        weights_model = fake_quantize_weights_mse(source, weight_bits) if per_channel else \
            fake_quantize_weights(source, weight_bits, per_channel=False)
        scores[method], evaluated, extra = _ptq_scores(
            weights_model, per_channel, activation_bits, "mse" if per_channel else "minmax",
            x_calib, x_test, seed)
        if method == BEST_PTQ and activation_bits == 8 and tuned_qat is None:
            extra["Keras stand-in agreement with file"] = _simulation_agreement(
                weights_model, scores[method], x_calib, x_test, seed)
        if method == CONTROL:
            extra.update(control_codes)
        rows.append(ctx.row(scores[method], weight_bits, activation_bits, method, evaluated, start,
                            **extra))
        _say(verbose, rows[-1])
    start = time.perf_counter()
    tuned = {}
    if tuned_qat is None:
        info = fine_tune(qat_model, data["x_train"], data["y_train"], epochs, BATCH_SIZE,
                         ctx.learning_rate, seed, verbose=0)
        if info["steps"] != ctx.steps:
            raise RuntimeError(f"QAT ran {info['steps']} steps, the control {ctx.steps}")
        tuned["fine-tune seconds"] = info["fine_tune_seconds"]
    qat_codes = _code_columns(*changed_codes(qat_model, model))
    qat_scores, evaluated, extra = _qat_scores(qat_model, activation_bits, x_test)
    rows.append(ctx.row(qat_scores, weight_bits, activation_bits, QAT, evaluated, start,
                        **ctx.gain(qat_scores, scores[CONTROL]), **qat_codes, **extra, **tuned))
    _say(verbose, rows[-1])
    return rows


def bits_picture_table(model_name: str, size: str = "full", seed: int = 0, verbose: bool = True,
                       weight_bits: Sequence[int] | None = None,
                       activation_bits: Sequence[int] | None = None,
                       learning_rate: float | None = None, epochs: int | None = None
                       ) -> "pd.DataFrame":
    """Accuracy of PTQ per-tensor, the best PTQ, the float control and QAT at each bit width.

    Args:
        model_name, size, seed: the zoo model (:func:`qlab.zoo.models.load_or_train`).
        weight_bits, activation_bits: the configurations (default :data:`WEIGHT_BITS` x
            :data:`ACTIVATION_BITS`; smoke size (8, 2) x (8,)).
        learning_rate, epochs: the fine-tune budget of QAT and the control alike
            (default :data:`FINE_TUNE_SETTINGS`; one epoch is ``QAT_BUDGETS``' images).

    Returns:
        One row per (configuration, method) plus the two float rows (bits 32): ``evaluated``
        (``LiteRT file`` / ``fake-quant Keras`` / ``float Keras``), the fine metrics against
        the original float model, ``loss vs float (points)`` with ``loss low``/``loss high``
        (95% paired), ``QAT gain vs control (points)`` with ``gain low``/``gain high`` (QAT
        rows), the kernel weights whose integer code fine-tuning changed (QAT and control
        rows), the file's ``stored weights`` and ``max levels per channel``, ``steps``,
        ``learning_rate`` and ``seconds``. Taught in ``06_quantization_aware_training``.
    """
    import pandas as pd

    from qlab.zoo.models import check_size, get_spec, load_or_train, mnist_for, predict_keras
    from qlab.qat.training import QAT_BUDGETS

    get_spec(model_name)
    size = check_size(size)
    seed = check_int(seed, "seed", 0, 2**31 - 1)
    smoke = size != "full"
    weight_bits = _check_bits(weight_bits or (SMOKE_WEIGHT_BITS if smoke else WEIGHT_BITS), "weight_bits")
    activation_bits = _check_bits(activation_bits or (SMOKE_ACTIVATION_BITS if smoke else ACTIVATION_BITS),
                                  "activation_bits")
    default_rate, default_epochs = FINE_TUNE_SETTINGS.get(model_name, SETTINGS_DEFAULT)
    learning_rate = _check_learning_rate(default_rate if learning_rate is None else learning_rate)
    epochs = check_int(default_epochs if epochs is None else epochs, "epochs", 1, 100)
    model = load_or_train(model_name, size, seed, verbose=0)
    data = fine_tune_data(model_name, size)
    ctx, rows = _float_row(model_name, model, data, epochs, learning_rate)
    x_test = data["x_test"]
    start = time.perf_counter()
    control, info = float_fine_tune(model, data["x_train"], data["y_train"], epochs, learning_rate, seed)
    rows.append(ctx.row(predict_keras(control, x_test), 32, 32, CONTROL_FLOAT, FLOAT_KERAS, start,
                        **{"fine-tune seconds": info["fine_tune_seconds"]}))
    for row in rows:
        _say(verbose, row)
    for bits_a in activation_bits:
        for bits_w in weight_bits:
            rows += _configuration_rows(ctx, data, model, control, bits_w, bits_a, epochs, seed, verbose)
    return pd.DataFrame(rows)


def _float_row(model_name: str, model: Any, data: dict[str, np.ndarray], epochs: int,
               learning_rate: float) -> tuple[_Scorer, list[dict[str, Any]]]:
    """The scorer against the float model's test scores, and the float row."""
    from qlab.zoo.models import predict_keras

    start = time.perf_counter()
    reference = predict_keras(model, data["x_test"])
    steps = epochs * math.ceil(len(data["x_train"]) / BATCH_SIZE)
    ctx = _Scorer(model_name, reference, np.asarray(data["y_test"]), steps, learning_rate)
    return ctx, [ctx.row(reference, 32, 32, FLOAT, FLOAT_KERAS, start)]


def low_bit_contrast(model_name: str = "mobilenet_v1", weight_bits: int = 3, size: str = "full",
                     seed: int = 0, verbose: bool = False) -> "pd.DataFrame":
    """One configuration of the picture, live: ``weight_bits``-bit weights, 8-bit activations.

    The float rows (the original and the control's float fine-tune), then PTQ per-tensor, the best PTQ, the control and QAT as in
    :func:`bits_picture_table`, every one a LiteRT file run on all test images. The two
    fine-tunes are the cached ones of :func:`qlab.qat.low_bit.load_or_fine_tune_low_bit` (the
    QAT one shipped for ``mobilenet_v1``): seconds once they are cached.
    Taught in ``06_quantization_aware_training`` (the break, the repair and the control).
    """
    import pandas as pd

    from qlab.qat.low_bit import load_or_fine_tune_low_bit
    from qlab.zoo.models import check_size, get_spec, load_or_train, predict_keras

    get_spec(model_name)
    size = check_size(size)
    weight_bits = check_int(weight_bits, "weight_bits", 2, 8)
    learning_rate, epochs = FINE_TUNE_SETTINGS.get(model_name, SETTINGS_DEFAULT)
    model = load_or_train(model_name, size, seed, verbose=0)
    control, qat = (load_or_fine_tune_low_bit(model_name, weight_bits, kind, size, seed, verbose=0)
                    for kind in ("control", "qat"))
    data = fine_tune_data(model_name, size)
    ctx, rows = _float_row(model_name, model, data, epochs, learning_rate)
    start = time.perf_counter()
    rows.append(ctx.row(predict_keras(control, data["x_test"]), 32, 32, CONTROL_FLOAT, FLOAT_KERAS, start))
    rows += _configuration_rows(ctx, data, model, control, weight_bits, 8, epochs, seed, verbose,
                                tuned_qat=qat)
    return pd.DataFrame(rows)


def describe_contrast(table: "pd.DataFrame") -> str:
    """One sentence on a :func:`low_bit_contrast` table: the break, the control, QAT's gain beyond it."""
    rows = table.set_index("method")
    missing = {BEST_PTQ, CONTROL, QAT} - set(rows.index)
    if missing:
        raise ValueError(f"table must be a low_bit_contrast table; it lacks the rows {sorted(missing)}")
    best, control, qat = rows.loc[BEST_PTQ], rows.loc[CONTROL], rows.loc[QAT]
    loss, gain = best["loss vs float (points)"], qat["QAT gain vs control (points)"]
    beyond_both = 100 * (qat["accuracy"] - max(control["accuracy"], best["accuracy"]))
    won_back = (f"Counted from the better of the control and the best PTQ, QAT wins back {beyond_both / loss:.0%} "
                f"of the best PTQ's loss." if loss > 0 else "The best PTQ lost nothing: there was nothing to win back.")
    return (f"{best['model']}, {int(best['weight_bits'])}-bit weights: the best PTQ loses {loss:.1f} points "
            f"(95% interval {best['loss low']:.1f} to {best['loss high']:.1f}), the control "
            f"{control['loss vs float (points)']:.1f}, QAT {qat['loss vs float (points)']:.1f}. QAT - control = "
            f"{gain:+.1f} points (95% interval {qat['gain low']:+.1f} to {qat['gain high']:+.1f}). {won_back}")


def contrast_view(table: "pd.DataFrame") -> "pd.DataFrame":
    """A :func:`low_bit_contrast` table to read: accuracy in %, the loss with its interval, the file."""
    import pandas as pd

    rows = table.set_index("method")
    view = pd.DataFrame({"accuracy (%)": (100 * rows["accuracy"]).round(2),
                         "loss vs float (points)": rows["loss vs float (points)"].round(2),
                         "95% interval": [f"{low:.2f} to {high:.2f}" for low, high in
                                          zip(rows["loss low"], rows["loss high"])],
                         "weights stored as": rows.get("stored weights"),
                         "file bytes": rows.get("file bytes")})
    return view.fillna({"weights stored as": "float32 (Keras)", "file bytes": 0}).astype({"file bytes": int})


def bits_picture_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = True
                       ) -> "pd.DataFrame":
    """:func:`bits_picture_table` at :data:`FINE_TUNE_SETTINGS` (the ``bits_picture`` study).

    Recorded by ``qlab bench``; ``07_custom_quantization`` loads it through
    :func:`qlab.workbook.studies.run_study` and draws it with
    :func:`qlab.plots.bits_picture.plot_bits_picture`.
    """
    return bits_picture_table(model_name, size, seed, verbose)


#: The issue's bar: the best PTQ "collapses" when it loses this many points against float...
COLLAPSE_POINTS = 5.0
#: ...and QAT earns its place when it recovers at least this share of that loss beyond the control.
RECOVERY_BAR = 0.5


def _collapse_bits(t: "pd.DataFrame") -> int | None:
    """The highest weight bit width (8-bit activations) where the best PTQ loses >= 5 points."""
    best = t[(t["method"] == BEST_PTQ) & (t["activation_bits"] == 8)].sort_values(
        "weight_bits", ascending=False)
    collapsed = best[best["loss vs float (points)"] >= COLLAPSE_POINTS]
    return None if collapsed.empty else int(collapsed["weight_bits"].iloc[0])


def qat_verdict(table: "pd.DataFrame") -> "pd.DataFrame":
    """One row per model: does QAT recover at least half of the best PTQ's collapse beyond the control?

    At the highest weight bit width where the best PTQ (8-bit activations) first loses
    5 points or more against float (``collapses`` True): that loss with its interval, the
    control's and QAT's accuracies with their losses' intervals, QAT's gain over the
    control with its paired interval, ``share recovered`` = (QAT - control) / (float - best
    PTQ), and ``meets bar`` (share >= 0.5); ``share recovered beyond control and best PTQ``
    credits QAT only above the better of the two (a control that fine-tuned the weights into
    a worse PTQ starting point inflates the first share). A model whose best PTQ never loses 5 points gets
    the same figures at its lowest weight bit width, ``collapses`` False and ``meets bar``
    None: there is nothing for QAT to recover. Taught in ``06_quantization_aware_training``.
    """
    import pandas as pd

    missing = [c for c in ("model", "weight_bits", "activation_bits", "method", "accuracy",
                           "loss vs float (points)") if c not in getattr(table, "columns", [])]
    if missing:
        raise ValueError(f"table must be a bits_picture_table; it lacks columns {missing}")
    return pd.DataFrame([_verdict_row(model, t) for model, t in table.groupby("model", sort=False)])


def _verdict_row(model: str, t: "pd.DataFrame") -> dict[str, Any]:
    collapse = _collapse_bits(t)
    eight = t[(t["activation_bits"] == 8) & (t["weight_bits"] < 32)]
    bits = collapse if collapse is not None else int(eight["weight_bits"].min())
    cell = eight[eight["weight_bits"] == bits].set_index("method")
    floats = t.set_index("method")
    row = {"model": model, "weight_bits": bits, "collapses": collapse is not None,
           "float accuracy": float(floats.loc[FLOAT, "accuracy"]),
           "control float accuracy": float(floats.loc[CONTROL_FLOAT, "accuracy"])}
    if not {BEST_PTQ, CONTROL, QAT} <= set(cell.index):
        return row
    for label, method in (("best PTQ", BEST_PTQ), ("control", CONTROL), ("QAT", QAT)):
        row.update({f"{label} accuracy": float(cell.loc[method, "accuracy"]),
                    f"{label} loss (points)": float(cell.loc[method, "loss vs float (points)"]),
                    f"{label} loss low": float(cell.loc[method, "loss low"]),
                    f"{label} loss high": float(cell.loc[method, "loss high"])})
    qat = cell.loc[QAT]
    ptq_loss = row["float accuracy"] - row["best PTQ accuracy"]
    share = (row["QAT accuracy"] - row["control accuracy"]) / ptq_loss if ptq_loss > 0 else float("nan")
    # a control below the best PTQ inflates the share; this one credits QAT only above both
    stricter = (row["QAT accuracy"] - max(row["control accuracy"], row["best PTQ accuracy"])) / ptq_loss \
        if ptq_loss > 0 else float("nan")
    row.update({"QAT gain vs control (points)": float(qat["QAT gain vs control (points)"]),
                "gain low": float(qat["gain low"]), "gain high": float(qat["gain high"]),
                "share recovered": share, "share recovered beyond control and best PTQ": stricter,
                "meets bar": bool(share >= RECOVERY_BAR) if collapse is not None else None,
                "steps": int(qat["steps"]), "learning_rate": float(qat["learning_rate"])})
    return row
