"""Per-channel weight ranges against the one per-tensor range, and both schemes' error.

The numbers come from :func:`qlab.numerics.per_channel.channel_ranges_view`;
:func:`draw_channel_ranges` draws them. Taught in ``05_per_channel``; the live
widget is :class:`qlab.widgets.PerChannelRanges`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from qlab.numerics.per_channel import ChannelRangesView, channel_ranges_view
from qlab.numerics.synthetic import synthetic_depthwise_kernel
from qlab.plots.figure import (fixed_title, new_figure, no_axis_labels, reuse_artists, set_yscale,
                               stacked_axes)

__all__ = ["draw_channel_ranges", "static_per_channel_ranges"]


@dataclass(frozen=True)
class _RangesArtists:
    """The per-channel picture's artists, made once per Figure and updated from each view."""

    ranges_ax: Any
    ranges: LineCollection
    bound_high: Any
    bound_low: Any
    errors_ax: Any
    per_tensor: Any
    per_channel: Any
    errors_legend: Any


def _build_channel_ranges(fig: Figure) -> _RangesArtists:
    """Both panels with empty artists; :func:`draw_channel_ranges` fills them."""
    ax, bx = stacked_axes(fig, 2, hspace=0.4)
    ranges = ax.add_collection(LineCollection([], colors="tab:blue", lw=2,
                                              label="per-channel [min, max]"), autolim=False)
    # Symmetric quantization (TFLite's weights) spans +-max|w| whatever the sign balance.
    bound_high = ax.axhline(1.0, color="tab:red", ls="--", lw=1, label="per-tensor range +-max|w|")
    bound_low = ax.axhline(-1.0, color="tab:red", ls="--", lw=1)
    ax.set_ylabel("weight value")
    ax.legend(fontsize=8, loc="lower right", ncols=2)
    fixed_title(ax, fontsize=10)
    ax.tick_params(labelbottom=False)  # same channels as the panel below
    no_axis_labels(ax.xaxis)
    set_yscale(bx, "log")
    (per_tensor,) = bx.plot([], [], "o", ms=3, color="tab:red", label=" ")
    (per_channel,) = bx.plot([], [], "o", ms=3, color="tab:blue", label=" ")
    bx.set_ylabel(" ")
    bx.set_xlabel(" ")
    legend = bx.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2,
                       frameon=False)
    return _RangesArtists(ax, ranges, bound_high, bound_low, bx, per_tensor, per_channel, legend)


def draw_channel_ranges(view: ChannelRangesView, fig: Figure | None = None,
                        sort: bool = False) -> Figure:
    """Draw each channel's [min, max] against the per-tensor range, and both schemes' error.

    Drawing into a ``fig`` that already shows this picture only updates its
    artists (the live widget's path); the picture is the same as a fresh draw.
    Taught in ``05_per_channel``.
    """
    fig = new_figure() if fig is None else fig
    a = reuse_artists(fig, "channel_ranges", _build_channel_ranges)
    order = np.argsort(view.channel_max - view.channel_min) if sort else np.arange(view.channels)
    c = np.arange(view.channels, dtype=np.float64)
    a.ranges.set_segments(np.stack([np.stack([c, view.channel_min[order]], axis=1),
                                    np.stack([c, view.channel_max[order]], axis=1)], axis=1))
    bound = max(abs(view.tensor_min), abs(view.tensor_max))
    a.bound_high.set_ydata([bound, bound])
    a.bound_low.set_ydata([-bound, -bound])
    a.ranges_ax.set_ylim(-1.08 * bound or -1.0, 1.08 * bound or 1.0)
    a.ranges_ax.set_xlim(-1, view.channels)
    a.ranges_ax.title.set_text(f"{view.layer_name or 'kernel'}: {view.channels} output channels")
    errors = np.concatenate([view.per_tensor_mse, view.per_channel_mse])
    positive = errors[errors > 0]
    # a channel quantized exactly has zero error: draw it on the bottom edge of the log axis
    floor = float(positive.min()) / 3 if positive.size else 1e-12
    top = float(positive.max()) * 3 if positive.size else 1e-11
    a.errors_ax.set_ylim(floor, top)
    a.errors_ax.set_xlim(-1, view.channels)
    a.per_tensor.set_data(c, np.maximum(view.per_tensor_mse[order], floor))
    a.per_channel.set_data(c, np.maximum(view.per_channel_mse[order], floor))
    a.errors_legend.texts[0].set_text(f"per-tensor (SQNR {view.per_tensor_sqnr_db:.1f} dB)")
    a.errors_legend.texts[1].set_text(f"per-channel (SQNR {view.per_channel_sqnr_db:.1f} dB)")
    a.errors_ax.yaxis.label.set_text(f"int{view.num_bits} MSE per channel")
    a.errors_ax.xaxis.label.set_text("output channel" + (" (sorted by range)" if sort else ""))
    return fig


def static_per_channel_ranges() -> Figure:
    """The per-channel picture at its default settings (a synthetic depthwise kernel)."""
    return draw_channel_ranges(channel_ranges_view(synthetic_depthwise_kernel(), channel_axis=2,
                                                   layer_name="synthetic depthwise kernel"))
