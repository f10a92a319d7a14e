"""The workbook's Figure: every static picture shows itself in a notebook and leaves pyplot alone."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator
from PIL import Image

from qlab.plots.accumulation import static_error_accumulation
from qlab.plots.buckets import static_bucket_explorer
from qlab.plots.channel_ranges import static_per_channel_ranges
from qlab.plots.figure import (DPI, figure_pixels, figure_png, new_figure, png_bytes,
                               reuse_artists, set_yscale)


@pytest.mark.parametrize("render", [static_bucket_explorer, static_error_accumulation,
                                    static_per_channel_ranges])
def test_static_renderings_are_figures_with_content(render):
    fig = render()
    assert isinstance(fig, Figure) and fig.axes
    assert len(figure_png(fig)) > 10_000
    assert fig._repr_png_()[:4] == b"\x89PNG"  # a notebook cell ending with it shows the picture
    assert plt.get_fignums() == []


def test_figure_png_holds_the_rendered_pixels_at_the_figure_size():
    fig = new_figure((4.0, 2.0))
    fig.add_subplot().plot([0, 1], [1, 0], color="tab:red")
    png = figure_png(fig)
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    assert decoded.shape == (2 * DPI, 4 * DPI, 3)  # opaque RGB: no alpha channel to encode
    np.testing.assert_array_equal(decoded, figure_pixels(fig))
    red = np.all(decoded == (214, 39, 40), axis=-1)  # tab:red
    assert red.sum() > 50


def test_figure_png_of_a_figure_made_without_new_figure():
    fig = Figure(figsize=(2.0, 1.0), dpi=DPI)  # no canvas attached by qlab
    fig.add_subplot()
    assert Image.open(io.BytesIO(figure_png(fig))).size == (2 * DPI, DPI)


def test_reuse_artists_builds_once_per_kind():
    fig, builds = new_figure(), []

    def build(f):
        builds.append(f.add_subplot())
        return {"ax": builds[-1]}

    first = reuse_artists(fig, "one", build)
    assert reuse_artists(fig, "one", build) is first and len(builds) == 1
    other = reuse_artists(fig, "two", build)
    assert other is not first and len(builds) == 2 and fig.axes == [other["ax"]]


def test_reuse_artists_rebuilds_after_a_failed_build():
    fig = new_figure()

    def broken(f):
        f.add_subplot()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        reuse_artists(fig, "kind", broken)
    assert reuse_artists(fig, "kind", lambda f: "built") == "built"


def test_set_yscale_back_to_linear_looks_like_a_fresh_linear_axis():
    ax = new_figure().add_subplot()
    set_yscale(ax, "log")
    assert isinstance(ax.yaxis.get_major_locator(), LogLocator)
    set_yscale(ax, "linear")
    assert isinstance(ax.yaxis.get_major_locator(), MaxNLocator)


def test_png_bytes_round_trip_through_pillow():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(png_bytes(rgb)))  # Pillow checks every chunk's CRC
    assert decoded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(decoded), rgb)

