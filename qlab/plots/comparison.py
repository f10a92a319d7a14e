"""The comparison table as pictures: accuracy against file size, latency per variant.

Each function takes the table of :func:`qlab.workbook.pipeline.compare` (or its
``ComparisonResult``) and returns a Figure that shows itself when a notebook cell
ends with it (nothing is saved here). Taught in ``08_compare_and_debug``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.plots.figure import new_figure

__all__ = ["plot_accuracy_vs_size", "plot_latency"]


def _table(result: Any) -> pd.DataFrame:
    table = getattr(result, "table", result)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a ComparisonResult or DataFrame, got {type(result).__name__}")
    return table


def plot_accuracy_vs_size(result: Any) -> Figure:
    """Top-1 accuracy against file size, one marker per variant, one panel per model.

    Taught in ``08_compare_and_debug``.
    """
    table = _table(result).dropna(subset=["size_bytes"])
    models = list(dict.fromkeys(table["model"]))
    fig = new_figure((5 * len(models), 4))
    axes = fig.subplots(1, len(models), squeeze=False)
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


def plot_latency(result: Any) -> Figure:
    """Batch-1 latency relative to float32 per variant (bars), one group per model.

    Taught in ``08_compare_and_debug``.
    """
    table = _table(result).dropna(subset=["latency_ratio"])
    pivot = table.pivot(index="variant", columns="model", values="latency_ratio")
    pivot = pivot.reindex([v for v in dict.fromkeys(table["variant"]) if v in pivot.index])
    fig = new_figure((8, 4))
    ax = fig.add_subplot()
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
