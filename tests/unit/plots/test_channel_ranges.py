"""The per-channel ranges picture."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics.per_channel import channel_ranges_view
from qlab.numerics.synthetic import synthetic_depthwise_kernel
from qlab.plots.channel_ranges import draw_channel_ranges
from qlab.plots.figure import figure_pixels, figure_png


def test_draw_channel_ranges_sorting_changes_the_picture():
    view = channel_ranges_view(synthetic_depthwise_kernel(16), channel_axis=2)
    fig = draw_channel_ranges(view)
    before = figure_png(fig)
    draw_channel_ranges(view, fig, sort=True)
    assert len(fig.axes) == 2 and figure_png(fig) != before


def test_an_updated_picture_is_the_same_as_a_fresh_draw():
    small = channel_ranges_view(synthetic_depthwise_kernel(16), channel_axis=2, layer_name="dw")
    wide = channel_ranges_view(synthetic_depthwise_kernel(128, seed=1), channel_axis=2,
                               num_bits=4, layer_name="wide dw")
    fig = draw_channel_ranges(small)
    axes, artists = list(fig.axes), fig._qlab_artists
    for view, sort in [(wide, True), (small, True), (wide, False)]:
        draw_channel_ranges(view, fig, sort=sort)
        assert fig.axes == axes and fig._qlab_artists is artists  # updated, not rebuilt
        np.testing.assert_array_equal(figure_pixels(fig),
                                      figure_pixels(draw_channel_ranges(view, sort=sort)))
    assert len(artists.ranges.get_segments()) == 128
    assert artists.errors_legend.texts[1].get_text().startswith("per-channel (SQNR")
    assert fig.axes[1].get_ylabel() == "int4 MSE per channel"
