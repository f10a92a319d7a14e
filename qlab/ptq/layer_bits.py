"""Low-bit weights in some layers, 8 bits in the rest: where a transformer breaks, and what keeping a part at 8 bits repairs.

At 8 bits, and even at 4, post-training quantization costs the zoo's transformer
(:mod:`qlab.zoo.transformer`) less than a point. The break is at 2-bit weights. Which part
of the encoder it comes from is measured by lowering the weights of one group of layers at a
time (the attention projections, the feed-forward layers, ...) while the rest keep 8 bits,
all through the LiteRT Quantizer's dynamic-range recipes (int8 or lower weights with one
scale per output channel, float activations). The repair is the mixed recipe that keeps the
sensitive part at 8 bits; :func:`layer_bits_table` reports the share of the break it recovers.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

#: The encoder's layer groups, as regular expressions over the float file's op scopes.
ENCODER_GROUPS: dict[str, str] = {
    "attention (query, key, value, output)": r".*_attention_1/.*",
    "feed-forward": r".*_ff[12]_1/.*",
}


def layer_bits_table(model: Any, x_test: np.ndarray, y_test: np.ndarray, low_bits: int = 2,
                     groups: Mapping[str, str] = ENCODER_GROUPS, float_file: bytes | None = None) -> "pd.DataFrame":
    """Accuracy with ``low_bits`` weights in every group, in each group alone, and in none.

    Rows: ``8-bit weights`` (the baseline), ``all groups at N bits`` (the break), then each
    group alone at N bits with the others at 8 - which is keeping the other groups at 8 bits.
    Columns: the fine metrics against the float file (:func:`qlab.numerics.metrics.fine_metrics`),
    the file's bytes, and ``recovered`` with its 95% paired interval: the accuracy each row wins
    back over the break, as a share of the break's loss against the 8-bit file.
    ``float_file``: ``model``'s float ``.tflite`` if already converted (``convert(model, "float32")``);
    None converts it here. Taught in the transformer lesson.
    """
    import pandas as pd

    from qlab.conversion.converter import convert
    from qlab.conversion.litert_quantizer import mixed_weight_recipe, quantize
    from qlab.conversion.tflite import predict_tflite
    from qlab.conversion.tflite_file import read_flatbuffer
    from qlab.numerics.metrics import fine_metrics, gain_columns

    if not groups:
        raise ValueError("groups must name at least one group of layers (name -> scope regex)")
    y_test = np.asarray(y_test)
    float_bytes = convert(model, "float32") if float_file is None else float_file
    read_flatbuffer(float_bytes, "float_file")  # given bytes that are not a .tflite fail here, named
    reference = predict_tflite(float_bytes, x_test)
    everything = "|".join(f"(?:{regex})" for regex in groups.values())
    settings = {"8-bit weights": None, f"all groups at {low_bits} bits": everything,
                **{f"{name} at {low_bits} bits, the rest 8": regex for name, regex in groups.items()}}
    scores, rows = {}, []
    for label, scopes in settings.items():
        model_bytes = quantize(float_bytes, mixed_weight_recipe(float_bytes, low_bits, scopes))
        scores[label] = predict_tflite(model_bytes, x_test)
        rows.append({"weights": label, **fine_metrics(reference, scores[label], y_test),
                     "file bytes": len(model_bytes)})
    table = pd.DataFrame(rows)
    broken = scores[f"all groups at {low_bits} bits"]
    loss = 100 * (table.loc[0, "accuracy"] - table.loc[1, "accuracy"])
    for i, label in enumerate(settings):
        gain = gain_columns(scores[label], broken, y_test, "gain over the break (points)")
        for key, value in gain.items():
            table.loc[i, key] = value
        table.loc[i, "recovered"] = gain["gain over the break (points)"] / loss if loss > 0 else np.nan
    table.attrs["break (points)"] = loss
    return table
