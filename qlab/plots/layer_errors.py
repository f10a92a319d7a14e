"""Per-layer quantization error of a real model, from TFLite's QuantizationDebugger.

The table is :func:`qlab.lite.debug.layer_error_table`'s; :func:`layer_error_profile`
puts it back in graph order, and the two draw functions show it: on its own
(:func:`draw_layer_profile`, the error-accumulation widget's lower panel) or against
the rounding-noise floor (:func:`plot_layer_errors`, taught in ``08_compare_and_debug``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from qlab.numerics.metrics import ROUNDING_NOISE
from qlab.plots.figure import fresh_axes, new_figure

__all__ = ["ERROR_COLUMNS", "layer_error_profile", "draw_layer_profile", "plot_layer_errors"]

#: The error columns of the debugger's table, the first one drawn unless another is chosen.
ERROR_COLUMNS: tuple[str, ...] = ("rmse/scale", "max_abs_error", "mean_error")


def layer_error_profile(table: Any, error_column: str | None = None
                        ) -> tuple[list[str], np.ndarray, str]:
    """Layer names and one error column, in graph order.

    Args:
        table: the DataFrame of :func:`qlab.lite.debug.layer_error_table` (rows are
            put back in ``op_index`` order, ``keras_layer`` names them), or a
            ``{layer: error}`` dict.
        error_column: one of :data:`ERROR_COLUMNS`; ``None`` is ``"rmse/scale"``,
            the error in units of the output's quantization step.
    """
    if isinstance(table, Mapping):
        return [str(k) for k in table], np.asarray(list(table.values()), dtype=np.float64), "error"
    columns = list(getattr(table, "columns", []))
    if "op_index" not in columns or "keras_layer" not in columns:
        raise TypeError("table must be the DataFrame of qlab.lite.debug.layer_error_table "
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
    """rmse/scale of every quantized layer in graph order, from :func:`qlab.lite.debug.layer_error_table`.

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
