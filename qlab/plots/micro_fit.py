"""Will it fit? Every integer file as a point of flash against arena, with each board's budget as a box.

The table is :func:`qlab.workbook.studies.micro.micro_study`'s (one or more models concatenated):
a file TFLM runs is a point at (its flash bytes, its smallest arena), one colour per model; a board
is the box of its model budget (flash) by its arena budget (RAM), so a point inside a box fits that
board. Files TFLM refuses have no arena: they are counted under the plot by reason. Taught in
``13_microcontrollers``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from qlab.plots.figure import new_figure

__all__ = ["fit_points", "plot_fit"]

KIB = 1024
_COLUMNS = ("model", "variant", "flash bytes", "arena bytes", "refusal")


def fit_points(table: Any) -> tuple[Any, dict[str, int]]:
    """``(the rows TFLM runs, {refusal kind: how many files})`` of a ``micro_runs`` table.

    A refusal's kind is its text up to the first colon ("float ops", "TFLM's FULLY_CONNECTED kernel
    refuses node 5", ...).
    """
    missing = [c for c in _COLUMNS if c not in getattr(table, "columns", [])]
    if missing:
        raise TypeError(f"table must be a micro_runs study DataFrame; it lacks columns {missing}")
    if table.empty:
        raise ValueError("table has no rows to draw")
    refused = table["refusal"].notna()
    kinds: dict[str, int] = {}
    for reason in table.loc[refused, "refusal"]:
        kind = str(reason).split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return table[~refused], kinds


def plot_fit(table: Any, boards: Sequence[Any]) -> Figure:
    """Flash (x) against arena (y), both in KiB on log axes, one box per board; refusals counted below.

    Args:
        table: a ``micro_runs`` study table (:func:`qlab.workbook.studies.micro.micro_study`).
        boards: :class:`qlab.conversion.micro_boards.Board` s; each draws the box of its budgets.
    """
    runs, kinds = fit_points(table)
    figure = new_figure(figsize=(9.0, 5.6))
    ax = figure.add_subplot(1, 1, 1)
    for model in dict.fromkeys(table["model"]):
        rows = runs[runs["model"] == model]
        if len(rows):
            ax.scatter(rows["flash bytes"] / KIB, rows["arena bytes"].astype(float) / KIB, label=model, s=28,
                       alpha=0.8)
    styles = ("--", ":", "-.")
    for board, style in zip(boards, styles * len(boards)):
        width, height = board.model_budget / KIB, board.arena_budget / KIB
        ax.plot([1, width, width], [height, height, 1], linestyle=style, color="black", linewidth=1.2,
                label=f"{board.name}: {width:,.0f} KiB flash, {height:,.0f} KiB arena")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("flash: the .tflite file (KiB)")
    ax.set_ylabel("RAM: the smallest tensor arena (KiB)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    _limits(ax, runs, boards)
    refused = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))
    ax.set_title(f"{len(runs)} files TFLM runs; a point inside a box fits that board", fontsize=10)
    if refused:
        figure.text(0.01, 0.01, f"refused by TFLM ({sum(kinds.values())}): {refused}", fontsize=8, wrap=True)
    figure.subplots_adjust(bottom=0.17 if refused else 0.1)
    return figure


def _limits(ax: Any, runs: Any, boards: Sequence[Any]) -> None:
    """Axes wide enough for every point and every box."""
    xs = [*(runs["flash bytes"] / KIB), *(b.model_budget / KIB for b in boards)]
    ys = [*(runs["arena bytes"].astype(float) / KIB), *(b.arena_budget / KIB for b in boards)]
    ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    ax.set_ylim(min(ys) / 1.5, max(ys) * 1.5)
    if not np.isfinite(ax.get_ylim()).all():  # pragma: no cover - every board has a positive budget
        ax.set_ylim(1, 1024)
