"""The per-channel ranges picture."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics.per_channel import channel_ranges_view
from qlab.numerics.synthetic import synthetic_depthwise_kernel
from qlab.plots.channel_ranges import draw_channel_ranges
from qlab.plots.figure import figure_png


def test_draw_channel_ranges_sorting_changes_the_picture():
    view = channel_ranges_view(synthetic_depthwise_kernel(16), channel_axis=2)
    fig = draw_channel_ranges(view)
    before = figure_png(fig)
    draw_channel_ranges(view, fig, sort=True)
    assert len(fig.axes) == 2 and figure_png(fig) != before
