"""Pictures of QAT activation ranges: how each range travels during fine-tuning.

The table comes from :class:`qlab.qat.ranges.RangeTrajectory` (or
:func:`qlab.workbook.studies.range_start.range_start_study`'s ``trajectory``).
Taught in ``06_quantization_aware_training``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlab.plots.figure import new_figure

__all__ = ["plot_range_trajectories"]

_COLUMNS = ["step", "quantizer", "min", "max", "data_min", "data_max"]


def plot_range_trajectories(trajectory: Any) -> Figure:
    """One panel per quantizer: its ``[min, max]`` against the training step, the data range dashed.

    With a ``start`` column (several fine-tunes), each start gets its own colour.

    Args:
        trajectory: the tidy DataFrame of ``RangeTrajectory.table()``.
    """
    missing = [c for c in _COLUMNS if c not in getattr(trajectory, "columns", [])]
    if missing:
        raise ValueError(f"trajectory lacks column(s) {missing}; pass RangeTrajectory(...).table()")
    if len(trajectory) == 0:
        raise ValueError("trajectory is empty; record at least one step")
    quantizers = list(dict.fromkeys(trajectory["quantizer"]))
    fig = new_figure((3.2 * len(quantizers), 2.8))
    starts = list(dict.fromkeys(trajectory["start"])) if "start" in trajectory.columns else [None]
    for i, name in enumerate(quantizers):
        ax = fig.add_subplot(1, len(quantizers), i + 1)
        part = trajectory[trajectory["quantizer"] == name]
        for j, start in enumerate(starts):
            rows = part if start is None else part[part["start"] == start]
            rows = rows.sort_values("step")
            colour = f"C{j}"
            ax.plot(rows["step"], rows["max"], color=colour, label=start or "range", zorder=3)
            ax.plot(rows["step"], rows["min"], color=colour, zorder=3)
        # the data range is the same for every start: draw it once, under the ranges that meet it
        for column in ("data_min", "data_max"):
            value = float(part[column].iloc[0])
            if np.isfinite(value):
                ax.axhline(value, color="0.4", linestyle="--", linewidth=1, zorder=1,
                           label="data" if column == "data_max" else None)
        ax.set_title(name)
        ax.set_xlabel("training step")
        if i == 0:
            ax.set_ylabel("range end")
            ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig
