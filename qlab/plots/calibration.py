"""Pictures of calibration: the representative sets, what broken ones cost, and range estimators.

The tables come from :func:`qlab.workbook.studies.calibration_failures.calibration_failures` and
:func:`qlab.workbook.studies.range_estimators.compare_estimators` (or the studies that record them).
Taught in ``04_post_training_quantization``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from matplotlib.figure import Figure

from qlab.plots.figure import new_figure

__all__ = ["plot_representative_sets", "plot_calibration_failures", "plot_estimators"]


def _require(table: Any, columns: list[str], made_by: str) -> None:
    missing = [c for c in columns if c not in getattr(table, "columns", [])]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; pass the DataFrame of {made_by}")


def plot_representative_sets(sets: Mapping[str, np.ndarray]) -> Figure:
    """The first image of each representative set, titled with the set's value range.

    Args:
        sets: ``{name: images}``, images shaped ``(n, height, width, 1)``.
    """
    if not sets:
        raise ValueError("sets is empty; pass {name: images}")
    fig = new_figure((1.6 * len(sets), 2.2))
    for i, (name, images) in enumerate(sets.items()):
        ax = fig.add_subplot(1, len(sets), i + 1)
        images = np.asarray(images)
        # each image on its own grey scale, as an image viewer shows it: [0, 1] and [0, 255]
        # look the same, and only the value range in the title gives the bug away
        ax.imshow(images[0, ..., 0], cmap="gray", vmin=0.0, vmax=max(1.0, float(images.max())))
        ax.set_title(f"{name}\n[{images.min():.3g}, {images.max():.3g}], n={len(images)}", fontsize=8)
        ax.set_axis_off()
    fig.subplots_adjust(left=0.02, right=0.98, top=0.72, bottom=0.02, wspace=0.1)
    return fig


def plot_calibration_failures(table: Any) -> Figure:
    """Full-integer accuracy per representative set (bars), one colour per model, float32 dotted."""
    _require(table, ["model", "representative set", "accuracy", "float32_accuracy"],
             "qlab.workbook.studies.calibration_failures.calibration_failures")
    models = list(dict.fromkeys(table["model"]))
    sets = list(dict.fromkeys(table["representative set"]))
    fig = new_figure((9.0, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index("representative set").reindex(sets)
        positions = np.arange(len(sets)) + (i - (len(models) - 1) / 2) * width
        bars = ax.bar(positions, 100 * rows["accuracy"], width, label=f"{model} int8")
        ax.hlines(100 * rows["float32_accuracy"].dropna().iloc[0], -0.5, len(sets) - 0.5,
                  colors=bars.patches[0].get_facecolor(), linestyles=":", linewidth=1)
    ax.set_xticks(np.arange(len(sets)), sets, fontsize=8)
    ax.set(ylabel="test accuracy (%)", ylim=(0, 100),
           title="Full-integer accuracy by representative set (dotted: float32)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.12)
    return fig


def plot_estimators(table: Any, metric: str = "output_sqnr_db") -> Figure:
    """``metric`` against activation bit width, one panel per model, one line per range estimator."""
    _require(table, ["model", "method", "num_bits", metric], "qlab.workbook.studies.range_estimators.compare_estimators")
    models = list(dict.fromkeys(table["model"]))
    fig = new_figure((3.4 * len(models), 3.2))
    label = {"output_sqnr_db": "output SQNR vs float (dB)", "accuracy": "test accuracy"}.get(metric, metric)
    for i, model in enumerate(models):
        ax = fig.add_subplot(1, len(models), i + 1)
        rows = table[table["model"] == model]
        for method, curve in rows.groupby("method", sort=False):
            curve = curve.sort_values("num_bits")
            ax.plot(curve["num_bits"], curve[metric], "o-", label=method)
        ax.set(title=model, xlabel="activation bits", ylabel=label if i == 0 else "")
        ax.set_xticks(sorted(set(rows["num_bits"])))
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.16, wspace=0.3)
    return fig
