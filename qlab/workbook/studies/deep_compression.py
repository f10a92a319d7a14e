"""Study ``deep_compression`` (lesson 09): every Deep Compression stage of a zoo model, measured.

Loads each stage of :mod:`qlab.compression.deep_compression` (pruned, clustered, both,
int8 by PTQ and by PQAT/CQAT/PCQAT, and a fine-tuned float control), converts it and
reports accuracy, stored and compressed bytes; :func:`best_pipeline` and
:func:`claims_table` set the measured ratios beside the paper's claims.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qlab.compression.deep_compression import byte_shares, load_stage, stage_file
from qlab.conversion.converter import DC_BARS as BARS

if TYPE_CHECKING:
    import pandas as pd

#: The rows of :func:`deep_compression_study`: (row name, stage or None for the float model, how it is stored).
STUDY_ROWS = (
    ("float32", None, "float32"),
    ("float32 fine-tuned as long (control)", "tuned", "float32"),
    ("pruned", "pruned", "float32"),
    ("pruned, int8 PTQ", "pruned", "int8"),
    ("clustered", "clustered", "float32"),
    ("clustered, int8 PTQ", "clustered", "int8"),
    ("pruned + clustered", "pruned_clustered", "float32"),
    ("pruned + clustered, int8 PTQ", "pruned_clustered", "int8"),
    ("PCQAT int8", "pcqat", "int8"),
)
#: Published ratios and the study row measured the same way: (who, what they compressed, x smaller, row).
CLAIMS = (
    ("TFMOT pruning guide", "pruned float", 3.0, "pruned"),
    ("TFMOT pruning guide", "pruned + int8 PTQ", 10.0, "pruned, int8 PTQ"),
    ("TFMOT clustering guide", "clustered float", 6.0, "clustered"),
    ("TFMOT clustering guide", "clustered + int8 PTQ", 8.0, "clustered, int8 PTQ"),
    ("Han et al. 2016, AlexNet", "pruned, clustered, Huffman-coded", 35.0, "PCQAT int8"),
    ("Han et al. 2016, VGG-16", "pruned, clustered, Huffman-coded", 49.0, "PCQAT int8"),
)


def deep_compression_study(model_name: str, size: str = "full", seed: int = 0,
                           verbose: bool = False) -> "pd.DataFrame":
    """Deep Compression stage by stage on a zoo model: accuracy, stored and compressed size.

    One row per :data:`STUDY_ROWS` (float32, the fine-tuned control, then pruned, clustered
    and both, each as a float32 and an int8 PTQ file, and PCQAT int8). Columns:
    ``accuracy`` on the test images, its difference from float32 and from the control in
    points with 95% paired bootstrap intervals, ``bytes``, ``gzip bytes`` (``gzip -9``),
    ``zip bytes`` (TFMOT's measure), ``gzip ratio`` and ``zip ratio`` (float32 compressed /
    compressed), ``zeros kept`` (the least share of a pruned kernel's zeros still zero in the
    file), ``values per channel`` (the most distinct values in an output channel of a conv
    or dense weight) and ``values sha256`` of the stage's weights. A recorded study
    (:mod:`qlab.workbook.studies`) for ``09_deep_compression``.
    """
    import pandas as pd

    from qlab.compression.cluster import tflite_unique_values
    from qlab.conversion.converter import DEFAULT_CALIBRATION_SAMPLES, convert
    from qlab.zoo.models import load_or_train, mnist_for
    from qlab.compression.prune import zeros_kept_in_file
    from qlab.zoo.shipped import values_sha256
    from qlab.conversion.tflite import predict_tflite
    from qlab.numerics.compression import compressed_sizes
    from qlab.numerics.metrics import gain_columns

    (x, _), (x_test, y_test) = mnist_for(model_name, size)
    models = {None: load_or_train(model_name, size, seed, verbose=0)}
    rows, scores = [], {}
    for row, stage, stored in STUDY_ROWS:
        if stage not in models:
            models[stage] = load_stage(model_name, stage, size, seed, verbose=0)
        model = models[stage]
        if stored == "float32":
            model_bytes = convert(model, "float32")
        else:
            model_bytes = stage_file(stage, model, x, DEFAULT_CALIBRATION_SAMPLES)
        if verbose:
            print(f"  {model_name}: {row}", flush=True)
        scores[row] = predict_tflite(model_bytes, x_test)
        sizes, shares = compressed_sizes(model_bytes), byte_shares(model_bytes)
        rows.append({"model": model_name, "stage": row, "bytes": sizes["bytes"], "gzip bytes": sizes["gzip9"],
                     "zip bytes": sizes["zip_deflate"],
                     "zeros kept": float(zeros_kept_in_file(models["pruned"], model_bytes)["kept"].min())
                     if stage in ("pruned", "pruned_clustered", "pcqat") else None,
                     "values per channel": int(tflite_unique_values(model_bytes)
                                               .query("op != 'DEPTHWISE_CONV_2D'")["unique_per_channel_max"].max()),
                     "untouched bytes": int(shares["bytes"].iloc[-1]),
                     "untouched gzip bytes": int(shares["gzip bytes"].iloc[-1]),
                     "values sha256": values_sha256(model)})
    for row in rows:
        own = scores[row["stage"]]
        row["accuracy"] = float((own.argmax(1) == y_test).mean())
        row.update(gain_columns(own, scores["float32"], y_test, "vs float32 (points)", "vs float32 low",
                                "vs float32 high"))
        row.update(gain_columns(own, scores[STUDY_ROWS[1][0]], y_test, "vs control (points)", "vs control low",
                                "vs control high"))
        row["gzip ratio"] = rows[0]["gzip bytes"] / row["gzip bytes"]
        row["zip ratio"] = rows[0]["zip bytes"] / row["zip bytes"]
    return pd.DataFrame(rows)


def best_pipeline(stages: "pd.DataFrame") -> "pd.DataFrame":
    """Per model of a :func:`deep_compression_study` table: its smallest compressed file within the accuracy bar.

    The bar is :data:`BARS` (a model you bring: 0.5 points); the row kept is the highest ``gzip ratio``
    among the stages losing at most that many points against float32 (none: the most accurate of
    the int8 rows). Columns: ``model``, ``stage``, ``gzip ratio``, ``zip ratio``, the loss against
    float32 and against the control with their intervals, the bar, and ``meets bar``. Taught in
    ``09_deep_compression``.
    """
    import pandas as pd

    rows = []
    for model, table in stages.groupby("model", sort=False):
        ratio_bar, points_bar = BARS.get(model, (8.0, 0.5))
        within = table[-table["vs float32 (points)"] <= points_bar + 1e-9]
        best = (within if len(within) else table).sort_values("gzip ratio", ascending=False).iloc[0]
        rows.append({"model": model, "stage": best["stage"], "gzip ratio": best["gzip ratio"],
                     "zip ratio": best["zip ratio"], "accuracy": best["accuracy"],
                     "loss vs float32 (points)": -best["vs float32 (points)"],
                     "loss vs float32, 95% CI": (-best["vs float32 high"], -best["vs float32 low"]),
                     "loss vs control (points)": -best["vs control (points)"],
                     "loss vs control, 95% CI": (-best["vs control high"], -best["vs control low"]),
                     "bar: gzip ratio >=": ratio_bar, "bar: points lost <=": points_bar,
                     "meets bar": bool(best["gzip ratio"] >= ratio_bar and len(within))})
    return pd.DataFrame(rows)


def claims_table(stages: "pd.DataFrame") -> "pd.DataFrame":
    """:data:`CLAIMS` beside the ``zip ratio`` (TFMOT's measure) of the same stage in each model's study.

    Columns: ``claim``, ``claimed`` ("3x"), ``stage``, ``model``, ``measured here (zip)`` and
    ``measured here (gzip -9)``. Taught in ``09_deep_compression``.
    """
    import pandas as pd

    by_stage = stages.set_index(["model", "stage"])
    rows = [{"claim": f"{who}: {what}", "claimed": f"{ratio:g}x", "stage": stage, "model": model,
             "measured here (zip)": by_stage.loc[(model, stage), "zip ratio"],
             "measured here (gzip -9)": by_stage.loc[(model, stage), "gzip ratio"]}
            for who, what, ratio, stage in CLAIMS for model in dict.fromkeys(stages["model"])]
    return pd.DataFrame(rows)
