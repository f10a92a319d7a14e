"""Studies ``keras3_quantization``, ``layer_bits`` and ``keras3_qat`` (lesson 11): the zoo's Keras 3 transformer.

- keras3_quantization: Keras 3's own ``model.quantize`` modes, in Keras and through the
  converter (:func:`qlab.ptq.keras3_quantize.keras3_quantization_table`);
- layer_bits: the 2-bit weight break, and what keeping a group of layers at 8 bits wins
  back (:func:`qlab.ptq.layer_bits.layer_bits_table`);
- keras3_qat: QAT written in Keras 3 against a float fine-tune of the same length, at 2-bit
  weights (:func:`qlab.qat.keras3_qat.keras3_qat_contrast`).

Each study runs the technique function on the zoo's encoder (:mod:`qlab.zoo.transformer`)
and all its test images. :func:`layer_bits_figures` and :func:`keras3_qat_figures` reduce a
table to the few numbers the benchmark's goals check (``qlab bench`` stores them in
``benchmarks/results.json`` under ``study_figures``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: Weight bits of the break (layer_bits) and of the QAT contrast (keras3_qat): where post-training
#: quantization of the encoder first loses clearly (8 and 4 bits cost it less than a point).
BREAK_BITS = 2


def _encoder(model_name: str, size: str, seed: int) -> tuple[Any, Any]:
    """``(trained encoder, its data)``; ``model_name`` must be the zoo's transformer."""
    from qlab.zoo import transformer

    if model_name != transformer.NAME:
        raise ValueError(f"this study applies to {transformer.NAME!r} (the zoo's Keras 3 transformer), "
                         f"not {model_name!r}")
    return transformer.load_or_train_encoder(size, seed, verbose=0), transformer.encoder_data(size)


def keras3_quantization_study(model_name: str, size: str = "full", seed: int = 0,
                              verbose: bool = False) -> "pd.DataFrame":
    """:func:`~qlab.ptq.keras3_quantize.keras3_quantization_table` on the encoder, its default modes."""
    from qlab.ptq.keras3_quantize import keras3_quantization_table

    model, (_, (x_test, y_test)) = _encoder(model_name, size, seed)
    return keras3_quantization_table(model, x_test, y_test)


def layer_bits_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = False) -> "pd.DataFrame":
    """:func:`~qlab.ptq.layer_bits.layer_bits_table` on the encoder at :data:`BREAK_BITS`."""
    from qlab.ptq.layer_bits import layer_bits_table

    model, (_, (x_test, y_test)) = _encoder(model_name, size, seed)
    return layer_bits_table(model, x_test, y_test, low_bits=BREAK_BITS)


def keras3_qat_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = False) -> "pd.DataFrame":
    """:func:`~qlab.qat.keras3_qat.keras3_qat_contrast` on the encoder at :data:`BREAK_BITS`, its default budget."""
    from qlab.qat.keras3_qat import keras3_qat_contrast

    model, data = _encoder(model_name, size, seed)
    return keras3_qat_contrast(model, data, num_bits=BREAK_BITS, seed=seed)


def layer_bits_figures(table: "pd.DataFrame") -> dict[str, Any]:
    """The break and its best repair, from a :func:`layer_bits_study` table.

    ``break_points``: the 8-bit file's accuracy minus the all-low-bit file's, in points;
    ``best_repair``: the row (one group at low bits, the rest at 8) that wins back the largest
    share of it, ``recovered`` that share (1 = all of it) and ``recovered_low`` / ``recovered_high``
    its gain's 95% interval over the same loss. ``accuracy`` of each of the three files.
    """
    rows = table.to_dict(orient="records")
    if len(rows) < 3:
        raise ValueError(f"table must hold the 8-bit row, the break and at least one repair, got {len(rows)} rows")
    baseline, broken, repairs = rows[0], rows[1], rows[2:]
    loss = 100 * (baseline["accuracy"] - broken["accuracy"])
    best = max(repairs, key=lambda r: r["gain over the break (points)"])

    def share(points: float) -> float | None:
        return float(points / loss) if loss > 0 else None

    return {"baseline": baseline["weights"], "break": broken["weights"], "best_repair": best["weights"],
            "baseline_accuracy": float(baseline["accuracy"]), "break_accuracy": float(broken["accuracy"]),
            "repair_accuracy": float(best["accuracy"]), "break_points": float(loss),
            "recovered": share(best["gain over the break (points)"]),
            "recovered_low": share(best["gain low"]), "recovered_high": share(best["gain high"])}


def keras3_qat_figures(table: "pd.DataFrame") -> dict[str, Any]:
    """QAT against its control, from a :func:`keras3_qat_study` table.

    ``gain_points`` (QAT's file minus the control's, in points) with its 95% interval
    ``gain_low`` / ``gain_high``; each file's ``accuracy``; ``keras_file_agreement``: the
    share of test images on which the fake-quantized Keras model and its LiteRT file pick the
    same class.
    """
    rows = table.to_dict(orient="records")
    if len(rows) != 3:
        raise ValueError(f"table must hold the PTQ, control and QAT rows, got {len(rows)} rows")
    ptq, control, qat = rows
    return {"ptq_accuracy": float(ptq["accuracy"]), "control_accuracy": float(control["accuracy"]),
            "qat_accuracy": float(qat["accuracy"]), "gain_points": float(qat["QAT gain vs control (points)"]),
            "gain_low": float(qat["gain low"]), "gain_high": float(qat["gain high"]),
            "keras_file_agreement": float(qat["Keras-file agreement"]), "steps": int(qat["steps"])}
