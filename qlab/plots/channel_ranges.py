"""Per-channel weight ranges against the one per-tensor range, and both schemes' error.

The numbers come from :func:`qlab.numerics.per_channel.channel_ranges_view`;
:func:`draw_channel_ranges` draws them. Taught in ``05_per_channel``; the live
widget is :class:`qlab.widgets.PerChannelRanges`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from qlab.numerics.per_channel import ChannelRangesView, channel_ranges_view
from qlab.numerics.synthetic import synthetic_depthwise_kernel
from qlab.plots.figure import fresh_axes, new_figure, set_yscale

__all__ = ["draw_channel_ranges", "static_per_channel_ranges"]


def draw_channel_ranges(view: ChannelRangesView, fig: Figure | None = None,
                        sort: bool = False) -> Figure:
    """Draw each channel's [min, max] against the per-tensor range, and both schemes' error.

    Taught in ``05_per_channel``.
    """
    fig = new_figure() if fig is None else fig
    ax, bx = fresh_axes(fig, "channel_ranges", 2, hspace=0.4)
    order = np.argsort(view.channel_max - view.channel_min) if sort else np.arange(view.channels)
    c = np.arange(view.channels)
    ax.vlines(c, view.channel_min[order], view.channel_max[order], color="tab:blue", lw=2,
              label="per-channel [min, max]")
    # Symmetric quantization (TFLite's weights) spans +-max|w| whatever the sign balance.
    bound = max(abs(view.tensor_min), abs(view.tensor_max))
    ax.axhline(bound, color="tab:red", ls="--", lw=1, label="per-tensor range +-max|w|")
    ax.axhline(-bound, color="tab:red", ls="--", lw=1)
    ax.set_ylim(-1.08 * bound or -1.0, 1.08 * bound or 1.0)
    ax.set_xlim(-1, view.channels)
    ax.set_ylabel("weight value")
    ax.legend(fontsize=8, loc="lower right", ncols=2)
    ax.set_title(f"{view.layer_name or 'kernel'}: {view.channels} output channels", fontsize=10)
    ax.tick_params(labelbottom=False)  # same channels as the panel below
    errors = np.concatenate([view.per_tensor_mse, view.per_channel_mse])
    positive = errors[errors > 0]
    # a channel quantized exactly has zero error: draw it on the bottom edge of the log axis
    floor = float(positive.min()) / 3 if positive.size else 1e-12
    top = float(positive.max()) * 3 if positive.size else 1e-11
    set_yscale(bx, "log")
    bx.set_ylim(floor, top)
    bx.set_xlim(-1, view.channels)
    bx.plot(c, np.maximum(view.per_tensor_mse[order], floor), "o", ms=3, color="tab:red",
            label=f"per-tensor (SQNR {view.per_tensor_sqnr_db:.1f} dB)")
    bx.plot(c, np.maximum(view.per_channel_mse[order], floor), "o", ms=3, color="tab:blue",
            label=f"per-channel (SQNR {view.per_channel_sqnr_db:.1f} dB)")
    bx.set_ylabel(f"int{view.num_bits} MSE per channel")
    bx.set_xlabel("output channel" + (" (sorted by range)" if sort else ""))
    bx.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    return fig


def static_per_channel_ranges() -> Figure:
    """The per-channel picture at its default settings (a synthetic depthwise kernel)."""
    return draw_channel_ranges(channel_ranges_view(synthetic_depthwise_kernel(), channel_axis=2,
                                                   layer_name="synthetic depthwise kernel"))
