"""The workbook's pyplot-free Figure, its PNG, and the axes helpers that keep redraws fast.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot, so
nothing is left open in pyplot's global figure list and a widget can redraw into
the same Figure on every change.
"""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

__all__ = ["FIGSIZE", "DPI", "WorkbookFigure", "new_figure", "figure_png", "fresh_axes",
           "remove_artists", "set_yscale", "few_ticks"]

FIGSIZE = (9.0, 6.4)
DPI = 72


class WorkbookFigure(Figure):
    """A Figure that shows itself as a PNG when a notebook cell ends with it.

    Figures made without pyplot are not known to the inline backend until
    pyplot is imported; ``_repr_png_`` makes the ``static_*()`` figures of :mod:`qlab.plots`
    display in any notebook, executed or not.
    """

    def _repr_png_(self) -> bytes:
        return figure_png(self)


def new_figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    """A pyplot-free Figure with an Agg canvas, for drawing into again and again."""
    # A fixed layout: constrained_layout would cost hundreds of ms on every redraw.
    fig = WorkbookFigure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def fresh_axes(fig: Figure, kind: str, rows: int, hspace: float = 0.4,
                bottom: float = 0.08, height_ratios: Sequence[float] | None = None) -> list:
    """``rows`` empty stacked axes in ``fig``, reusing the ones a previous draw of ``kind`` made.

    Emptying existing axes is several times cheaper than rebuilding them (their
    tick objects survive), which is what keeps a widget update under 100 ms.
    """
    if getattr(fig, "_qlab_kind", None) == kind and len(fig.axes) == rows:
        axes = list(fig.axes)
        for ax in axes:
            remove_artists(ax)
        for text in list(fig.texts):
            text.remove()
        return axes
    fig.clear()
    fig._qlab_kind = kind
    grid = fig.add_gridspec(rows, 1, height_ratios=height_ratios, hspace=hspace,
                            left=0.09, right=0.97, top=0.9, bottom=bottom)
    axes = [fig.add_subplot(grid[i, 0]) for i in range(rows)]
    for ax in axes:
        few_ticks(ax)
    return axes


def remove_artists(ax) -> None:
    """Empty ``ax`` but keep its axis and tick objects (``ax.clear()`` rebuilds them: slow)."""
    for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts, *ax.images]:
        artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    ax.set_title("")
    ax.relim()
    ax.set_autoscale_on(True)


def set_yscale(ax, scale: str) -> None:
    # set_yscale resets the tick machinery even when the scale does not change.
    if ax.get_yscale() != scale:
        ax.set_yscale(scale)
        if scale == "log":
            ax.yaxis.set_major_locator(LogLocator(numticks=5))
            # plain "0.001" labels: the default 10^x labels go through mathtext (slow to draw)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(NullLocator())


def few_ticks(ax) -> None:
    """At most ~6 major ticks and no minor ones: drawing ticks is most of the drawing time."""
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig`` (what a widget shows; they change when the picture does)."""
    buf = io.BytesIO()
    # Unhinted glyphs render about a quarter faster and look the same at this size;
    # zlib level 1 encodes in a third of the default's time for a slightly larger PNG.
    with matplotlib.rc_context({"text.hinting": "none"}):
        fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return buf.getvalue()
