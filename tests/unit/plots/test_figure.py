"""The workbook's Figure: every static picture shows itself in a notebook and leaves pyplot alone."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from qlab.plots.accumulation import static_error_accumulation
from qlab.plots.buckets import static_bucket_explorer
from qlab.plots.channel_ranges import static_per_channel_ranges
from qlab.plots.figure import figure_png


@pytest.mark.parametrize("render", [static_bucket_explorer, static_error_accumulation,
                                    static_per_channel_ranges])
def test_static_renderings_are_figures_with_content(render):
    fig = render()
    assert isinstance(fig, Figure) and fig.axes
    assert len(figure_png(fig)) > 10_000
    assert fig._repr_png_()[:4] == b"\x89PNG"  # a notebook cell ending with it shows the picture
    assert plt.get_fignums() == []


# ------------------------------------------------------------- real (Keras) models
