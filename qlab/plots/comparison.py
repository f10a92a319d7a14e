"""The comparison table as pictures: accuracy against file size, latency, the accuracy change per variant.

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

__all__ = ["plot_accuracy_vs_size", "plot_latency", "plot_accuracy_delta"]


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


def plot_accuracy_delta(result: Any) -> Figure:
    """Each variant's accuracy change against float32 with its 95% paired bootstrap interval.

    One panel per model, one bar per variant (float32 itself, the reference, is left out);
    a filled marker is a change whose interval excludes 0. Taught in ``08_compare_and_debug``.
    """
    table = _table(result)
    needed = ["accuracy_delta", "delta_low", "delta_high"]
    if not set(needed) <= set(table.columns) or table[needed].isna().all().all():
        raise ValueError(f"the table has no {', '.join(needed)} (results saved before qlab measured "
                         f"them); run qlab.compare again")
    table = table[table["variant"] != "float32"].dropna(subset=needed)
    models = list(dict.fromkeys(table["model"]))
    variants = max(len(table) // max(len(models), 1), 1)
    fig = new_figure((5 * len(models), 1.8 + 0.35 * variants))
    axes = fig.subplots(1, len(models), squeeze=False)
    for ax, model in zip(axes[0], models):
        _draw_deltas(ax, table[table["model"] == model])
        ax.set_title(model)
    fig.tight_layout()
    return fig


def _draw_deltas(ax: Any, rows: pd.DataFrame) -> None:
    """Horizontal interval bars in points, a line at no change."""
    y = np.arange(len(rows))[::-1]
    delta, low, high = (100 * rows[c].to_numpy(float) for c in ("accuracy_delta", "delta_low", "delta_high"))
    significant = (low > 0) | (high < 0)
    ax.errorbar(delta, y, xerr=[delta - low, high - delta], fmt="none", ecolor="tab:blue", capsize=3)
    ax.scatter(delta[significant], y[significant], color="tab:red", zorder=3, label="interval excludes 0")
    ax.scatter(delta[~significant], y[~significant], facecolor="white", edgecolor="tab:blue", zorder=3,
               label="within noise")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(y, rows["variant"])
    ax.set(xlabel="accuracy - float32 accuracy (points, 95% interval)", ylim=(-0.8, len(rows) - 0.2))
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="best")
