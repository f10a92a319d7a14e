"""The workbook's pyplot-free Figure, its PNG, and the helpers that keep redraws fast.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot, so
nothing is left open in pyplot's global figure list and a widget can redraw into
the same Figure on every change. A widget's picture is built once
(:func:`reuse_artists`) and later changes only update its artists' data and texts;
the static ``draw_*`` functions go through the same build-then-update path, so a
fresh picture and an updated one are the same pixels.
"""

from __future__ import annotations

import struct
import zlib
from typing import Callable, Sequence, TypeVar

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

__all__ = ["FIGSIZE", "DPI", "WorkbookFigure", "new_figure", "figure_png", "figure_pixels",
           "png_bytes", "reuse_artists", "stacked_axes", "fresh_axes", "remove_artists",
           "set_yscale", "few_ticks", "fixed_title", "no_axis_labels"]

FIGSIZE = (9.0, 6.4)
DPI = 72
# Unhinted glyphs render about a quarter faster and look the same at this size.
_RENDER_RC = {"text.hinting": "none"}
Artists = TypeVar("Artists")


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
    fig._qlab_artists = None
    return stacked_axes(fig, rows, hspace, bottom, height_ratios)


def stacked_axes(fig: Figure, rows: int, hspace: float = 0.4, bottom: float = 0.08,
                 height_ratios: Sequence[float] | None = None) -> list:
    """``rows`` axes stacked in ``fig`` at the workbook's fixed margins, with few ticks."""
    grid = fig.add_gridspec(rows, 1, height_ratios=height_ratios, hspace=hspace,
                            left=0.09, right=0.97, top=0.9, bottom=bottom)
    axes = [fig.add_subplot(grid[i, 0]) for i in range(rows)]
    for ax in axes:
        few_ticks(ax)
    return axes


def reuse_artists(fig: Figure, kind: str, build: Callable[[Figure], Artists]) -> Artists:
    """The artists an earlier ``build`` of ``kind`` made in ``fig``, or else ``build(fig)``.

    ``build`` runs on the cleared ``fig`` and makes the axes and every artist of a
    picture with no data in them; the caller then sets data, limits and texts from its view. Updating artists in
    place skips rebuilding axes, ticks and legends, most of a redraw's time.
    """
    if getattr(fig, "_qlab_kind", None) == kind and getattr(fig, "_qlab_artists", None) is not None:
        return fig._qlab_artists
    fig.clear()
    fig._qlab_kind = kind
    fig._qlab_artists = None  # a build that fails leaves nothing half-made to reuse
    fig._qlab_artists = build(fig)
    return fig._qlab_artists


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
    """Set ``ax``'s y scale only when it changes, with the workbook's few, plain ticks."""
    # set_yscale resets the tick machinery even when the scale does not change.
    if ax.get_yscale() != scale:
        ax.set_yscale(scale)
        if scale == "log":
            ax.yaxis.set_major_locator(LogLocator(numticks=5))
            # plain "0.001" labels: the default 10^x labels go through mathtext (slow to draw)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        else:  # as few_ticks set it: a switch back must look like a fresh linear axis
            ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_minor_locator(NullLocator())


def fixed_title(ax, fontsize: float) -> None:
    """An empty title for ``ax``, kept just above the axes instead of placed at every draw.

    Matplotlib otherwise measures the axes' tick labels on every draw to lift the
    title over any on top; the workbook's axes have none there.
    """
    ax.set_title(" ", fontsize=fontsize, y=1.0)


def no_axis_labels(*axes) -> None:
    """Axes (``ax.xaxis``, ``ax.yaxis``) that never show a label: skip placing one at every draw.

    Placing an axis label measures every tick label of the axis, even for an empty label.
    """
    for axis in axes:
        axis.set_label_coords(0.5, 0.5)


def few_ticks(ax) -> None:
    """At most ~6 major ticks and no minor ones: drawing ticks is most of the drawing time."""
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())


def figure_pixels(fig: Figure) -> np.ndarray:
    """``fig`` rendered at its own dpi: an ``(height, width, 3)`` uint8 RGB array."""
    if not hasattr(fig.canvas, "buffer_rgba"):  # a Figure not made by new_figure
        FigureCanvasAgg(fig)
    with matplotlib.rc_context(_RENDER_RC):
        fig.canvas.draw()
    # the workbook's figures are opaque: the alpha channel is all 255 and only costs encoding;
    # a copy, as the canvas draws its next picture into the same buffer
    return np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig`` (what a widget shows; they change when the picture does).

    The canvas is drawn once and its pixels encoded here: ``savefig`` adds its own
    bookkeeping, encodes the alpha channel too and tries five filters on every row.
    """
    return png_bytes(figure_pixels(fig))


def png_bytes(rgb: np.ndarray) -> bytes:
    """An ``(height, width, 3)`` uint8 array as an 8-bit RGB PNG file."""
    height, width, _ = rgb.shape
    rows = rgb.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    # PNG's "Up" filter on every row: a plot's rows mostly repeat the row above, so the
    # differences are mostly zeros, which zlib's fastest level packs as well as its default
    filtered[:, 0] = 2
    filtered[:, 1:] = rows
    filtered[1:, 1:] -= rows[:-1]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), 1)) + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
