"""The per-channel ranges picture."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from qlab.numerics.per_channel import channel_ranges_view  # noqa: E402
from qlab.numerics.synthetic import synthetic_depthwise_kernel  # noqa: E402
from qlab.plots.channel_ranges import draw_channel_ranges, static_per_channel_ranges  # noqa: E402
from qlab.plots.accumulation import static_error_accumulation  # noqa: E402
from qlab.plots.buckets import static_bucket_explorer  # noqa: E402
from qlab.plots.figure import figure_png  # noqa: E402


@pytest.fixture(autouse=True)
def no_open_pyplot_figures():
    """Start every test with pyplot empty, so "nothing left open" checks this test's code only
    (other test files draw pyplot figures and may leave them open)."""
    plt.close("all")



def test_draw_channel_ranges_sorting_changes_the_picture():
    view = channel_ranges_view(synthetic_depthwise_kernel(16), channel_axis=2)
    fig = draw_channel_ranges(view)
    before = figure_png(fig)
    draw_channel_ranges(view, fig, sort=True)
    assert len(fig.axes) == 2 and figure_png(fig) != before


@pytest.mark.parametrize("render", [static_bucket_explorer, static_error_accumulation,
                                    static_per_channel_ranges])
def test_static_renderings_are_figures_with_content(render):
    fig = render()
    assert isinstance(fig, Figure) and fig.axes
    assert len(figure_png(fig)) > 10_000
    assert fig._repr_png_()[:4] == b"\x89PNG"  # a notebook cell ending with it shows the picture
    assert plt.get_fignums() == []


# ------------------------------------------------------------- real (Keras) models
