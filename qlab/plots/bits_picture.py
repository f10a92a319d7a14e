"""The accuracy-versus-bits picture: PTQ collapsing, the float control, QAT recovering.

One panel per (activation bits, model): test accuracy against weight bits for each
method, with 95% paired intervals (against the original float model) as error bars,
the float model as a dashed line and the weight bit widths where the best PTQ loses
5 points or more shaded. The table is
:func:`qlab.workbook.studies.bits_picture.bits_picture_table`'s (one or more models concatenated).
Taught in ``06_quantization_aware_training``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlab.plots.figure import new_figure

__all__ = ["METHOD_STYLES", "plot_bits_picture"]

#: Method -> (colour, marker, label in the legend).
METHOD_STYLES: dict[str, tuple[str, str, str]] = {
    "PTQ per-tensor": ("tab:red", "o", "PTQ per-tensor"),
    "PTQ per-channel MSE": ("tab:orange", "s", "best PTQ (per-channel MSE)"),
    "control: float fine-tune + PTQ per-channel MSE": ("tab:gray", "^", "float fine-tune + best PTQ"),
    "QAT": ("tab:blue", "D", "QAT"),
}
_FLOAT = "float (original)"
_BEST = "PTQ per-channel MSE"
_COLUMNS = ("model", "weight_bits", "activation_bits", "method", "evaluated", "accuracy",
            "accuracy_delta", "delta_low", "delta_high")
COLLAPSE_POINTS = 5.0


def _check_table(table: Any) -> None:
    missing = [c for c in _COLUMNS if c not in getattr(table, "columns", [])]
    if missing:
        raise TypeError(f"table must be a bits_picture_table DataFrame; it lacks columns {missing}")
    if not table["method"].isin(list(METHOD_STYLES)).any():
        raise ValueError(f"table has no rows of the methods {list(METHOD_STYLES)} to draw")


def _draw_method(ax: Any, rows: Any, method: str, position: dict[int, int]) -> None:
    colour, marker, label = METHOD_STYLES[method]
    rows = rows.sort_values("weight_bits")
    x = [position[int(b)] for b in rows["weight_bits"]]
    accuracy = 100 * rows["accuracy"].to_numpy()
    # the interval is on the difference to float; shift it to the accuracy
    low = 100 * (rows["accuracy_delta"] - rows["delta_low"]).to_numpy()
    high = 100 * (rows["delta_high"] - rows["accuracy_delta"]).to_numpy()
    ax.errorbar(x, accuracy, yerr=np.vstack([low, high]), color=colour, marker=marker,
                capsize=3, linewidth=1.2, markersize=5, label=label)


def _shade_collapse(ax: Any, rows: Any, float_accuracy: float, position: dict[int, int]) -> None:
    best = rows[rows["method"] == _BEST]
    collapsed = best[100 * (float_accuracy - best["accuracy"]) >= COLLAPSE_POINTS]["weight_bits"]
    for bits in collapsed:
        ax.axvspan(position[int(bits)] - 0.5, position[int(bits)] + 0.5, color="tab:red",
                   alpha=0.08, linewidth=0)
    if len(collapsed):
        first = min(position[int(b)] for b in collapsed)
        ax.text(first - 0.42, 50, "best PTQ loses >= 5 points", rotation=90, ha="left",
                va="center", fontsize=7, color="tab:red")


def _draw_panel(ax: Any, rows: Any, float_accuracy: float | None, activation_bits: int) -> None:
    # evenly spaced, most bits on the left: the collapse is at the right
    bits = sorted({int(b) for b in rows["weight_bits"]}, reverse=True)
    position = {b: i for i, b in enumerate(bits)}
    for method in METHOD_STYLES:
        cells = rows[rows["method"] == method]
        if not cells.empty:
            _draw_method(ax, cells, method, position)
    if float_accuracy is not None:
        ax.axhline(100 * float_accuracy, color="black", linestyle="--", linewidth=1, label="float")
        _shade_collapse(ax, rows, float_accuracy, position)
    how = ", ".join(sorted(set(rows["evaluated"])))
    ax.set_xlabel(f"weight bits ({activation_bits}-bit activations; {how})", fontsize=8)
    ax.set_xticks(range(len(bits)), [str(b) for b in bits])
    ax.set_xlim(-0.6, len(bits) - 0.4)
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)


def plot_bits_picture(table: Any) -> Figure:
    """Accuracy (%) against weight bits per method: a column per model, a row per activation width.

    Error bars are the 95% paired intervals against the original float model; the
    dashed line is that model; shaded are the weight bit widths where the best PTQ
    loses 5 points or more. Taught in ``06_quantization_aware_training``.
    """
    _check_table(table)
    cells = table[table["method"].isin(list(METHOD_STYLES))]
    models = list(dict.fromkeys(cells["model"]))
    widths = sorted(set(int(a) for a in cells["activation_bits"]), reverse=True)
    fig = new_figure((3.8 * len(models) + 0.6, 3.4 * len(widths) + 0.8))
    for i, activation_bits in enumerate(widths):
        for j, model in enumerate(models):
            ax = fig.add_subplot(len(widths), len(models), i * len(models) + j + 1)
            rows = cells[(cells["model"] == model) & (cells["activation_bits"] == activation_bits)]
            floats = table[(table["model"] == model) & (table["method"] == _FLOAT)]["accuracy"]
            _draw_panel(ax, rows, float(floats.iloc[0]) if len(floats) else None, activation_bits)
            ax.set_title(model, fontsize=10)
            if j == 0:
                ax.set_ylabel("test accuracy (%)")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.1 + 0.08 / len(widths), hspace=0.45, wspace=0.25)
    return fig
