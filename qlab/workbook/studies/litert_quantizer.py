"""Studies ``litert_quantizer_routes`` and ``litert_quantizer_4bit`` (lesson 10).

- routes: the LiteRT Quantizer's static int8 beside the converter's, one difference
  taken away at a time (calibration, then the kernels), with the share of identical
  stored outputs and the first tensor that differs;
- 4 bits: the Quantizer's 4-bit recipes with min-max, MSE and OCTAV weights, per
  tensor and per channel, against TFMOT's 4-bit QAT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qlab.conversion.file_diff import first_difference, stored_outputs
from qlab.conversion.litert_quantizer import (ALGORITHMS, quantize, quantize_variant,
                                              static_4bit_recipe)
from qlab.conversion.tflite_file import count_non_integer_ops

if TYPE_CHECKING:
    import pandas as pd

#: The routes study's pairs: (Quantizer variant, the converter variant it is set beside).
ROUTE_PAIRS = (("aeq_int8_per_channel", "int8_per_channel"), ("aeq_int8_per_tensor", "int8_per_tensor"))
#: The routes study's calibrations, one difference from the converter's removed at a time:
#: label -> (calibration, XNNPACK kernels).
ROUTE_CALIBRATIONS = {"moving average": ("moving_average", True), "min/max": ("min_max", True),
                      "min/max, builtin kernels": ("min_max", False)}
#: The 4-bit study's rows: (label, how the file is made, weight algorithm).
FOUR_BIT_ROWS = tuple((f"{name} ({algorithm})", name, algorithm)
                      for name in ("static per-tensor", "static per-channel", "weight-only per-channel")
                      for algorithm in ALGORITHMS) + (("QAT 4-bit (converter)", "qat_4bit", "min_max"),)


def route_rows(float_bytes: bytes, converter_bytes: bytes, variant: str, x: np.ndarray, x_test: np.ndarray,
               y_test: np.ndarray, num_samples: int) -> list[dict[str, Any]]:
    """The Quantizer's ``variant`` made with each of :data:`ROUTE_CALIBRATIONS`, set beside the converter's file.

    One row per calibration: both files' accuracy on ``x_test``, size and ops that are not
    integer-only (:func:`count_non_integer_ops`), the share of identical stored output values and
    of images whose every score is identical, top-1 agreement, and the first tensor where the
    files differ (:func:`first_difference` on 50 test images), with the tensors of the
    Quantizer's file that carry the converter's parameters when those differ.
    """
    from qlab.conversion.tflite import predict_tflite

    their_scores = predict_tflite(converter_bytes, x_test)
    theirs_stored = stored_outputs(converter_bytes, their_scores)
    rows = []
    for label, (calibration, xnnpack) in ROUTE_CALIBRATIONS.items():
        ours = quantize_variant(float_bytes, variant, x, num_samples, calibration=calibration, xnnpack=xnnpack)
        scores = predict_tflite(ours, x_test)
        first = first_difference(ours, converter_bytes, x_test[:50])
        same = stored_outputs(ours, scores) == theirs_stored
        rows.append({"quantizer": variant, "calibration": label,
                     "quantizer accuracy": float((scores.argmax(1) == y_test).mean()),
                     "converter accuracy": float((their_scores.argmax(1) == y_test).mean()),
                     "quantizer bytes": len(ours), "converter bytes": len(converter_bytes),
                     "quantizer non-integer ops": count_non_integer_ops(ours),
                     "converter non-integer ops": count_non_integer_ops(converter_bytes),
                     "identical values": float(same.mean()), "identical images": float(same.all(axis=1).mean()),
                     "top1 agreement": float((scores.argmax(1) == their_scores.argmax(1)).mean()),
                     "first difference": "none" if first["identical"] else first["what"],
                     "op index": first.get("op_index"), "op": first.get("op"), "tensor": first.get("tensor"),
                     "quantizer side": first.get("a"), "converter side": first.get("b"),
                     "converter parameters found at": "; ".join(first.get("b_parameters_in_a", [])),
                     "differing share": first.get("differing")})
    return rows


def routes_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = False) -> "pd.DataFrame":
    """The Quantizer's static int8 beside the converter's, same model, images and granularity.

    :func:`route_rows` for each of :data:`ROUTE_PAIRS`, with the converter's file converted
    from the same float model and calibrated on the same images. A recorded study for
    ``10_litert_quantizer``.
    """
    import pandas as pd

    from qlab.conversion.converter import DEFAULT_CALIBRATION_SAMPLES, convert
    from qlab.zoo.models import load_or_train, mnist_for

    (x, _), (x_test, y_test) = mnist_for(model_name, size)
    model = load_or_train(model_name, size, seed, verbose=0)
    float_bytes, rows = convert(model, "float32"), []
    for variant, converter_variant in ROUTE_PAIRS:
        if verbose:
            print(f"  {model_name}: {variant} against {converter_variant}", flush=True)
        theirs = convert(model, converter_variant, x, DEFAULT_CALIBRATION_SAMPLES)
        rows += [{"model": model_name, "converter": converter_variant, **row}
                 for row in route_rows(float_bytes, theirs, variant, x, x_test, y_test, DEFAULT_CALIBRATION_SAMPLES)]
    return pd.DataFrame(rows)


def four_bit_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = False) -> "pd.DataFrame":
    """4-bit weights after training (the Quantizer) and with training (TFMOT QAT, the converter).

    Rows: float32, then :data:`FOUR_BIT_ROWS`: the layered static recipe with per-tensor and
    per-channel INT4 weights and ``aeq_int4_weight_only``, each with the min-max, MSE and OCTAV
    weight algorithms, and the zoo's ``qat_4bit`` file. Columns: ``accuracy``, its change from
    float32 in points with a 95% paired bootstrap interval, ``bytes``, ``size ratio`` (float32
    / file) and ``non-integer ops``. A recorded study for ``10_litert_quantizer``.
    """
    import pandas as pd

    from qlab.conversion.converter import DEFAULT_CALIBRATION_SAMPLES, convert, convert_qat
    from qlab.zoo.models import load_or_train, mnist_for
    from qlab.qat.training import load_or_fine_tune
    from qlab.conversion.tflite import predict_tflite
    from qlab.numerics.metrics import gain_columns

    (x, _), (x_test, y_test) = mnist_for(model_name, size)
    float_bytes = convert(load_or_train(model_name, size, seed, verbose=0), "float32")
    files = {"float32": float_bytes}
    for label, how, algorithm in FOUR_BIT_ROWS:
        if verbose:
            print(f"  {model_name}: {label}", flush=True)
        if how == "qat_4bit":
            files[label] = convert_qat(load_or_fine_tune(model_name, "qat_4bit", size, seed, verbose=0))
        elif how == "weight-only per-channel":
            files[label] = quantize_variant(float_bytes, "aeq_int4_weight_only", algorithm=algorithm)
        else:
            files[label] = quantize(float_bytes, static_4bit_recipe(float_bytes, how == "static per-tensor",
                                                                     algorithm), x, DEFAULT_CALIBRATION_SAMPLES)
    scores = {label: predict_tflite(b, x_test) for label, b in files.items()}
    rows = []
    for label, model_bytes in files.items():
        row = {"model": model_name, "file": label, "accuracy": float((scores[label].argmax(1) == y_test).mean()),
               "bytes": len(model_bytes), "size ratio": len(float_bytes) / len(model_bytes),
               "non-integer ops": count_non_integer_ops(model_bytes)}
        row.update(gain_columns(scores[label], scores["float32"], y_test, "vs float32 (points)",
                                "vs float32 low", "vs float32 high"))
        rows.append(row)
    return pd.DataFrame(rows)


def four_bit_recovery(table: "pd.DataFrame") -> "pd.DataFrame":
    """What wins back the loss of per-tensor 4-bit weights after training, per model, from :func:`four_bit_study`.

    The break is the layered static recipe with per-tensor min-max INT4 weights. Beside it, in
    points from float32: the same recipe with the MSE and with the OCTAV weight algorithm,
    per-channel min-max weights, and 4-bit QAT. ``recovered`` columns are the share of the
    break's loss each wins back (1 = all of it, negative = worse); None when there is no loss.
    """
    import pandas as pd

    arms = {"per-tensor min-max": "static per-tensor (min_max)", "per-tensor MSE": "static per-tensor (mse)",
            "per-tensor OCTAV": "static per-tensor (octav)", "per-channel min-max": "static per-channel (min_max)",
            "QAT 4-bit": "QAT 4-bit (converter)"}
    rows = []
    for model_name, group in table.groupby("model", sort=False):
        points = dict(zip(group["file"], group["vs float32 (points)"]))
        high = dict(zip(group["file"], group["vs float32 high"]))
        loss = -points[arms["per-tensor min-max"]]
        row = {"model": model_name, "break: loss (points)": loss,
               "break measurable": bool(high[arms["per-tensor min-max"]] < 0)}
        for arm, file in list(arms.items())[1:]:
            row[f"{arm} (points)"] = points[file]
            row[f"{arm} recovered"] = None if loss <= 0 else (points[file] + loss) / loss
        rows.append(row)
    return pd.DataFrame(rows)
