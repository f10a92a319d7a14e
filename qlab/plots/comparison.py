"""Figures of the experiment pipeline: accuracy vs size, latency per variant, per-layer error.

Each function takes a table from :mod:`qlab.workbook.pipeline` or :mod:`qlab.lite.debug` and returns a
matplotlib Figure (nothing is shown or saved here). The widgets' figures live in
:mod:`qlab.lite.widget_figures`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _table(result: Any) -> pd.DataFrame:
    table = getattr(result, "table", result)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a ComparisonResult or DataFrame, got {type(result).__name__}")
    return table


def plot_accuracy_vs_size(result: Any) -> Any:
    """Top-1 accuracy against file size, one marker per variant, one panel per model."""
    import matplotlib.pyplot as plt

    table = _table(result).dropna(subset=["size_bytes"])
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        rows = table[table["model"] == model]
        for _, row in rows.iterrows():
            ax.scatter(row["size_bytes"] / 1024, 100 * row["accuracy"], s=40)
            ax.annotate(row["variant"], (row["size_bytes"] / 1024, 100 * row["accuracy"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set(xscale="log", xlabel="TFLite file size (KB, log)", ylabel="top-1 accuracy (%)",
               title=model)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_latency(result: Any) -> Any:
    """Batch-1 latency relative to float32 per variant (bars), one group per model."""
    import matplotlib.pyplot as plt

    table = _table(result).dropna(subset=["latency_ratio"])
    pivot = table.pivot(index="variant", columns="model", values="latency_ratio")
    pivot = pivot.reindex([v for v in dict.fromkeys(table["variant"]) if v in pivot.index])
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(pivot.columns), 1)
    positions = np.arange(len(pivot.index))
    for i, model in enumerate(pivot.columns):
        ax.bar(positions + i * width, pivot[model], width, label=model)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(positions + width * (len(pivot.columns) - 1) / 2, pivot.index, rotation=30,
                  ha="right")
    ax.set(yscale="log", ylabel="latency / float32 latency (log)",
           title="batch-1 latency, 1 thread, relative to float32 (lower is faster)")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_layer_errors(errors: pd.DataFrame) -> Any:
    """rmse/scale of every quantized layer in graph order, from :func:`qlab.lite.debug.layer_error_table`.

    The dashed line is pure rounding noise (1/sqrt(12) of a step).
    """
    import matplotlib.pyplot as plt

    from qlab.lite.debug import ROUNDING_NOISE

    if "rmse/scale" not in errors:
        raise ValueError("errors must be a table from qlab.lite.debug.layer_error_table "
                         f"(with an 'rmse/scale' column), got columns {list(errors.columns)}")
    ordered = errors.sort_values("op_index")
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(ordered)), 4))
    ax.bar(np.arange(len(ordered)), ordered["rmse/scale"], color="tab:orange")
    ax.axhline(ROUNDING_NOISE, color="black", linestyle="--", linewidth=0.8,
               label="rounding noise only (1/sqrt(12))")
    ax.set_xticks(np.arange(len(ordered)), ordered["keras_layer"], rotation=90, fontsize=7)
    ax.set(ylabel="RMSE / scale (quantization steps)", title="per-layer int8 error")
    ax.legend()
    fig.tight_layout()
    return fig
