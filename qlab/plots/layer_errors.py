"""Per-layer quantization error of a real model, from TFLite's QuantizationDebugger.

The table is :func:`qlab.ptq.debug.layer_error_table`'s; :func:`layer_error_profile`
puts it back in graph order, and the two draw functions show it: on its own
(:func:`draw_layer_profile`, the error-accumulation widget's lower panel) or against
the rounding-noise floor (:func:`plot_layer_errors`, taught in ``08_compare_and_debug``).
Lesson 08 also draws the error by depth of :func:`qlab.ptq.depth_error.error_by_depth`
against the debugger's same-input error (:func:`plot_error_by_depth`), and what keeping
layers in float wins back for its KB (:func:`plot_float_layer_recovery`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from qlab.numerics.metrics import ROUNDING_NOISE
from qlab.plots.figure import fresh_axes, new_figure, set_yscale

__all__ = ["ERROR_COLUMNS", "DEPTH_CURVES", "layer_error_profile", "draw_layer_profile",
           "plot_layer_errors", "depth_error_curves", "draw_depth_curves", "draw_depth_profile",
           "plot_error_by_depth", "plot_float_layer_recovery"]

#: The error columns of the debugger's table, the first one drawn unless another is chosen.
ERROR_COLUMNS: tuple[str, ...] = ("rmse/scale", "max_abs_error", "mean_error")

#: Relative errors below this are float rounding (an op that passes int8 values through): not drawn.
EXACT_BELOW = 1e-6

#: Columns of :func:`qlab.ptq.depth_error.error_by_depth` drawn as curves, with their legends.
DEPTH_CURVES: dict[str, str] = {
    "relative_rmse": "int8 model against float at each depth (error accumulates)",
    "same_input_relative_rmse": "debugger: each layer from the same input (its own error only)",
}


def layer_error_profile(table: Any, error_column: str | None = None
                        ) -> tuple[list[str], np.ndarray, str]:
    """Layer names and one error column, in graph order.

    Args:
        table: the DataFrame of :func:`qlab.ptq.debug.layer_error_table` (rows are
            put back in ``op_index`` order, ``keras_layer`` names them), or a
            ``{layer: error}`` dict.
        error_column: one of :data:`ERROR_COLUMNS`; ``None`` is ``"rmse/scale"``,
            the error in units of the output's quantization step.
    """
    if isinstance(table, Mapping):
        return [str(k) for k in table], np.asarray(list(table.values()), dtype=np.float64), "error"
    columns = list(getattr(table, "columns", []))
    if "op_index" not in columns or "keras_layer" not in columns:
        raise TypeError("table must be the DataFrame of qlab.ptq.debug.layer_error_table "
                        f"or a {{layer: error}} dict, got {type(table).__name__} "
                        f"with columns {columns}")
    error_column = ERROR_COLUMNS[0] if error_column is None else error_column
    if error_column not in ERROR_COLUMNS:
        raise ValueError(f"error_column {error_column!r} is not an error column of the table; "
                         f"choose from {list(ERROR_COLUMNS)}")
    ordered = table.sort_values("op_index")
    return ([str(name) for name in ordered["keras_layer"]],
            np.asarray(ordered[error_column], dtype=np.float64), error_column)


def draw_profile_bars(ax: Any, names: Sequence[str], values: np.ndarray, error_name: str) -> None:
    """Bars of one error per layer, named on the x axis."""
    ax.bar(np.arange(len(values)), values, color="tab:purple")
    ax.set_xticks(np.arange(len(values)), names, rotation=60, ha="right", fontsize=6)
    ax.set_xlim(-0.7, len(values) - 0.3)
    ax.set_ylabel(error_name.replace("_", " "))
    ax.set_title("int8 TFLite model: per-layer error against float", fontsize=10)


def draw_layer_profile(table: Any, error_column: str | None = None,
                       fig: Figure | None = None) -> Figure:
    """Draw a real model's per-layer error profile on its own (see :func:`layer_error_profile`)."""
    names, values, column = layer_error_profile(table, error_column)
    fig = new_figure((9.0, 3.0)) if fig is None else fig
    (ax,) = fresh_axes(fig, "layer_profile", 1, bottom=0.32)
    draw_profile_bars(ax, names, values, column)
    return fig


def plot_layer_errors(errors: Any) -> Figure:
    """rmse/scale of every quantized layer in graph order, from :func:`qlab.ptq.debug.layer_error_table`.

    The dashed line is pure rounding noise (1/sqrt(12) of a step). Taught in
    ``08_compare_and_debug``.
    """
    names, values, _ = layer_error_profile(errors)
    fig = new_figure((max(6, 0.35 * len(values)), 4))
    ax = fig.add_subplot()
    ax.bar(np.arange(len(values)), values, color="tab:orange")
    ax.axhline(ROUNDING_NOISE, color="black", linestyle="--", linewidth=0.8,
               label="rounding noise only (1/sqrt(12))")
    ax.set_xticks(np.arange(len(values)), names, rotation=90, fontsize=7)
    ax.set(ylabel="RMSE / scale (quantization steps)", title="per-layer int8 error")
    ax.legend()
    fig.tight_layout()
    return fig


def depth_error_curves(table: Any) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(column, depth, values)`` for each of :data:`DEPTH_CURVES` present in ``table``."""
    columns = list(getattr(table, "columns", []))
    if "depth" not in columns or "relative_rmse" not in columns:
        raise TypeError("table must be the DataFrame of qlab.ptq.depth_error.error_by_depth "
                        f"(columns depth, relative_rmse, ...), got {type(table).__name__} "
                        f"with columns {columns}")
    ordered = table.sort_values("depth")
    depth = np.asarray(ordered["depth"], dtype=np.float64)
    return [(c, depth, np.asarray(ordered[c], dtype=np.float64)) for c in DEPTH_CURVES
            if c in columns]


def draw_depth_curves(ax: Any, table: Any) -> None:
    """The accumulated error (and the debugger's same-input error) against depth, log scale."""
    styles = {"relative_rmse": ("o-", "tab:red"), "same_input_relative_rmse": ("s--", "tab:gray")}
    lowest, highest = np.inf, 0.0
    for column, depth, values in depth_error_curves(table):
        # a pass-through op (pooling a 1x1 map, a reshape) has no error worth a log decade
        shown = np.where(values > EXACT_BELOW, values, np.nan)
        marker, color = styles[column]
        ax.plot(depth, shown, marker, color=color, markersize=3, linewidth=1.2,
                label=DEPTH_CURVES[column])
        if np.any(np.isfinite(shown)):
            lowest, highest = min(lowest, np.nanmin(shown)), max(highest, np.nanmax(shown))
    set_yscale(ax, "log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=12))
    if np.isfinite(lowest):
        ax.set_ylim(lowest / 4, highest * 1.5)  # room under the curves for the legend
    ax.set_xlabel("depth (op in graph order)")
    ax.set_ylabel("relative RMSE")
    ax.set_title("real model: error against float by depth", fontsize=10)
    ax.legend(fontsize=8, loc="lower right", ncol=2)
    ax.grid(alpha=0.3, which="major")


def draw_depth_profile(table: Any, fig: Figure | None = None) -> Figure:
    """The by-depth curves on their own (the error-accumulation widget's lower panel)."""
    depth_error_curves(table)  # fail before clearing the figure
    fig = new_figure((9.0, 3.0)) if fig is None else fig
    (ax,) = fresh_axes(fig, "depth_profile", 1, bottom=0.18)
    draw_depth_curves(ax, table)
    return fig


def plot_error_by_depth(table: Any) -> Figure:
    """Error against float by depth, with the debugger's same-input error on the same axes.

    Taught in ``08_compare_and_debug``; ``table`` is
    :func:`qlab.ptq.depth_error.error_by_depth`'s.
    """
    curves = depth_error_curves(table)
    fig = new_figure((9.0, 4.0))
    (ax,) = fresh_axes(fig, "error_by_depth", 1, bottom=0.14)
    draw_depth_curves(ax, table)
    if curves:
        ax.set_xlim(0, curves[0][1].max() + 1)
    return fig


def _check_recovery_table(table: Any) -> None:
    needed = {"k", "accuracy", "kb_added", "float32_accuracy"}
    columns = set(getattr(table, "columns", []))
    if not needed <= columns:
        raise TypeError("table must be the DataFrame of qlab.ptq.debug.float_layer_recovery "
                        f"(columns {sorted(needed)}, ...), got {type(table).__name__} with "
                        f"columns {sorted(columns)}")


def plot_float_layer_recovery(table: Any) -> Figure:
    """Accuracy against KB added as layers are kept in float one at a time, one line per order.

    Taught in ``08_compare_and_debug``; ``table`` is
    :func:`qlab.ptq.debug.float_layer_recovery`'s (several orders concatenated are fine).
    """
    _check_recovery_table(table)
    fig = new_figure((8.0, 4.2))
    (ax,) = fresh_axes(fig, "recovery", 1, bottom=0.13)
    orders = table["order"].unique() if "order" in table.columns else [None]
    styles = [("o-", "tab:blue", 7), ("s--", "tab:orange", 4), ("^:", "tab:green", 4)]
    labelled: set[tuple[float, float]] = set()
    for order, (marker, color, size) in zip(orders, styles):
        rows = table if order is None else table[table["order"] == order]
        rows = rows.sort_values("k")
        # identical orders overlap: the first is drawn larger so both stay visible
        ax.plot(rows["kb_added"], 100 * rows["accuracy"], marker, color=color, markersize=size,
                label=f"{order} order" if order else "kept in float")
        for _, row in rows.iloc[1:].iterrows():
            point = (round(float(row["kb_added"]), 1), round(100 * float(row["accuracy"]), 2))
            if point not in labelled:  # an order that reaches the same point adds no new label
                labelled.add(point)
                ax.annotate(f"+{row.get('keras_layer', row['k'])}", (point[0], point[1]),
                            textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)
    ax.axhline(100 * float(table["float32_accuracy"].iloc[0]), color="black", linestyle="--",
               linewidth=0.8, label="float32")
    ax.set(xlabel="KB added to the all-int8 file", ylabel="test accuracy (%)",
           title="keeping layers in float, one at a time")
    ax.margins(x=0.12)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig
