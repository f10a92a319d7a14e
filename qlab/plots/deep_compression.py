"""Deep Compression stage by stage: how much smaller each stage's compressed file is, and what it costs.

Two panels per model, from :func:`qlab.workbook.studies.deep_compression.deep_compression_study`'s table
(one or more models concatenated): bars of float32's ``gzip -9`` size over each stage's
(stored size over float32's as a hatched bar behind it: pruning alone does not move it), and
the accuracy change from float32 in points with its 95% paired interval. Taught in
``09_deep_compression``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlab.plots.figure import new_figure

__all__ = ["plot_stages"]

_COLUMNS = ("model", "stage", "bytes", "gzip ratio", "vs float32 (points)", "vs float32 low", "vs float32 high")


def _check_table(table: Any) -> None:
    missing = [c for c in _COLUMNS if c not in getattr(table, "columns", [])]
    if missing:
        raise TypeError(f"table must be a deep_compression_study DataFrame; it lacks columns {missing}")
    if table.empty:
        raise ValueError("table has no rows to draw")


def _draw_model(size_ax: Any, accuracy_ax: Any, rows: Any) -> None:
    y = np.arange(len(rows))[::-1]
    stored = rows["bytes"].iloc[0] / rows["bytes"].to_numpy()
    size_ax.barh(y, stored, color="none", edgecolor="tab:gray", hatch="//", label="stored (.tflite)")
    size_ax.barh(y, rows["gzip ratio"], color="tab:blue", alpha=0.8, height=0.5, label="gzip -9")
    for yi, ratio in zip(y, rows["gzip ratio"]):
        size_ax.text(ratio, yi, f" {ratio:.1f}x", va="center", fontsize=8)
    size_ax.set_yticks(y, rows["stage"], fontsize=8)
    size_ax.set_xlabel("float32 size / size (x smaller)", fontsize=8)
    size_ax.set_xlim(0, 1.2 * max(rows["gzip ratio"].max(), stored.max()))
    delta = rows["vs float32 (points)"].to_numpy()
    error = np.vstack([delta - rows["vs float32 low"].to_numpy(), rows["vs float32 high"].to_numpy() - delta])
    accuracy_ax.errorbar(delta, y, xerr=error, fmt="o", color="tab:red", capsize=3)
    accuracy_ax.axvline(0, color="black", linestyle="--", linewidth=1)
    accuracy_ax.set_yticks(y, [""] * len(y))
    accuracy_ax.set_xlabel("accuracy vs float32 (points, 95% CI)", fontsize=8)
    for ax in (size_ax, accuracy_ax):
        ax.grid(alpha=0.3, axis="x")


def plot_stages(table: Any) -> Figure:
    """One row of two panels per model: compression ratios per stage, and the accuracy they cost.

    Taught in ``09_deep_compression``.
    """
    _check_table(table)
    models = list(dict.fromkeys(table["model"]))
    stages = table["stage"].nunique()
    height = (0.3 * stages + 1.0) * len(models) + 0.6
    fig = new_figure((10.0, height))
    for i, model in enumerate(models):
        size_ax = fig.add_subplot(len(models), 2, 2 * i + 1)
        accuracy_ax = fig.add_subplot(len(models), 2, 2 * i + 2)
        _draw_model(size_ax, accuracy_ax, table[table["model"] == model].reset_index(drop=True))
        size_ax.set_title(model, fontsize=10, loc="left")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.3, right=0.97, top=1 - 0.3 / height, bottom=0.75 / height, hspace=0.45, wspace=0.08)
    return fig
