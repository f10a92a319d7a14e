"""Accuracy against weight bit width, one line per scheme and one panel per model.

The table is :func:`qlab.workbook.studies.weight_bits.weight_bits_study`'s (one or more models
concatenated). Taught in ``05_per_channel``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from qlab.plots.figure import new_figure

__all__ = ["SCHEME_STYLES", "accuracy_by_bits", "plot_weight_bits"]

#: Scheme -> (colour, marker) of its line.
SCHEME_STYLES: dict[str, tuple[str, str]] = {
    "per-tensor": ("tab:red", "o"),
    "per-channel": ("tab:blue", "s"),
    "per-tensor + CLE": ("tab:green", "^"),
    "per-tensor + CLE + bias corr.": ("tab:olive", "v"),
}
_COLUMNS = ("model", "num_bits", "scheme", "accuracy")


def accuracy_by_bits(table: Any) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{model: {scheme: (bits, accuracy %)}}`` from a weight-bits study table (float rows dropped)."""
    missing = [c for c in _COLUMNS if c not in getattr(table, "columns", [])]
    if missing:
        raise TypeError(f"table must be a weight_bits_study DataFrame; it lacks columns {missing}")
    cells = table[table["num_bits"] < 32]
    if cells.empty:
        raise ValueError("table has no quantized rows (num_bits < 32) to draw")
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for (model, scheme), rows in cells.groupby(["model", "scheme"], sort=False):
        rows = rows.sort_values("num_bits")
        curves.setdefault(model, {})[scheme] = (rows["num_bits"].to_numpy(),
                                                100 * rows["accuracy"].to_numpy())
    return curves


def plot_weight_bits(table: Any, schemes: Sequence[str] | None = None) -> Figure:
    """Test accuracy (%) against weight bits for each scheme, one panel per model, float as a dashed line."""
    curves = accuracy_by_bits(table)
    fig = new_figure((3.6 * len(curves) + 1.0, 3.8))
    floats = table[table["scheme"] == "float"].set_index("model")["accuracy"]
    for i, (model, by_scheme) in enumerate(curves.items()):
        ax = fig.add_subplot(1, len(curves), i + 1)
        for scheme, (bits, accuracy) in by_scheme.items():
            if schemes is not None and scheme not in schemes:
                continue
            colour, marker = SCHEME_STYLES.get(scheme, ("tab:gray", "."))
            ax.plot(bits, accuracy, color=colour, marker=marker, label=scheme)
        if model in floats:
            ax.axhline(100 * floats[model], color="black", linestyle="--", linewidth=1, label="float")
        ax.set_title(model)
        ax.set_xlabel("weight bits (8-bit activations)")
        ax.set_ylim(0, 102)
        ax.invert_xaxis()
        if i == 0:
            ax.set_ylabel("test accuracy (%)")
    fig.axes[-1].legend(loc="lower left", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
    return fig
