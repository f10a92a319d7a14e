"""The bucket explorer's compute and draw functions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from qlab.numerics.synthetic import synthetic_tensor
from qlab.plots.buckets import bucket_edges, bucket_view, draw_bucket_explorer, range_from_data
from qlab.plots.figure import figure_pixels, figure_png


def test_values_in_a_narrow_window_collapse_into_one_int4_bucket():
    x = np.linspace(-8.0, 8.0, 101)
    view = bucket_view(x, num_bits=4, window=(2.0, 2.3))
    # 16 levels over 16 units: buckets about 1.07 wide, so [2.0, 2.3] is inside one
    assert view.params.levels == 16
    assert view.window_buckets == 1
    fine = bucket_view(x, num_bits=16, window=(2.0, 2.3))
    assert fine.window_buckets == 16  # 16 values 0.02 apart, buckets 0.00024 wide


def test_bucket_view_error_numbers_match_a_direct_computation():
    x = synthetic_tensor("normal", size=5000)
    view = bucket_view(x, num_bits=6, range_min=-2.0, range_max=2.0)
    x64 = x.astype(np.float64)
    assert view.report.mse == pytest.approx(np.mean((x64 - view.x_hat) ** 2), rel=1e-4)
    outside = np.mean((x64 < float(view.params.min)) | (x64 > float(view.params.max)))
    assert outside > 0.03  # a normal tensor clipped at +-2: about 4.6 % outside
    assert view.report.clipped_fraction == pytest.approx(outside, abs=5e-3)
    assert view.report.levels == 64
    # every dequantized value lies on the grid scale * (q - zero_point)
    codes = view.x_hat / float(view.params.scale) + int(view.params.zero_point)
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)


def test_clipping_versus_rounding_trade_off():
    x = synthetic_tensor("normal + outliers")
    wide = bucket_view(x, num_bits=4)  # min/max: covers the outliers, coarse buckets
    tight = bucket_view(x, num_bits=4, range_min=-3.0, range_max=3.0)
    assert wide.report.clipped_fraction < tight.report.clipped_fraction
    assert tight.report.mse < wide.report.mse  # clipping the rare outliers pays off here


def test_error_split_adds_up_and_moves_with_the_range():
    x = synthetic_tensor("normal + outliers")
    wide = bucket_view(x, num_bits=4)
    tight = bucket_view(x, num_bits=4, range_min=-3.0, range_max=3.0)
    for view in (wide, tight):
        rounding, clipping = view.error_split()
        assert rounding + clipping == pytest.approx(view.report.mse, rel=1e-3)
    # min/max range: only the nudge to put 0.0 on the grid clips a hair off an end
    assert wide.error_split()[1] < 0.01 * wide.report.mse
    assert tight.error_split()[0] < wide.error_split()[0]  # finer buckets round less
    assert tight.error_split()[1] > 0.0  # ... but the outliers are clipped
    assert set(tight.summary()) >= {"rounding_mse", "clipping_mse", "mse", "scale"}


def test_symmetric_puts_zero_point_at_zero():
    view = bucket_view(np.linspace(-1, 3, 50), symmetric=True)
    assert int(view.params.zero_point) == 0
    assert view.summary()["zero_point"] == 0


@pytest.mark.parametrize("lo, hi", [(3.0, 1.0), (1.0, 1.0)])
def test_range_min_not_below_max_is_a_clear_value_error(lo, hi):
    with pytest.raises(ValueError, match="min must be below range max"):
        bucket_view(np.arange(5.0), range_min=lo, range_max=hi)


@pytest.mark.parametrize("num_bits", [1, 17, 8.0])
def test_bucket_view_rejects_bad_num_bits(num_bits):
    with pytest.raises(ValueError, match="num_bits"):
        bucket_view(np.arange(5.0), num_bits=num_bits)


def test_range_from_data_methods():
    x = synthetic_tensor("normal + outliers")
    lo, hi = range_from_data(x, "minmax")
    assert (lo, hi) == (pytest.approx(float(x.min())), pytest.approx(float(x.max())))
    p_lo, p_hi = range_from_data(x, "percentile")
    assert lo <= p_lo < p_hi <= hi
    with pytest.raises(ValueError, match="method must be one of"):
        range_from_data(x, "kl")


def test_bucket_edges_are_one_scale_apart_with_zero_in_the_middle_of_a_bucket():
    params = bucket_view(np.linspace(-1, 1, 11), num_bits=3).params
    edges, step = bucket_edges(params)
    scale = float(params.scale)
    assert step == 1 and edges.size == params.levels + 1
    np.testing.assert_allclose(np.diff(edges), scale, rtol=1e-5)
    assert np.min(np.abs(edges)) == pytest.approx(scale / 2, rel=1e-5)


def test_bucket_edges_are_thinned_for_many_bits():
    params = bucket_view(np.linspace(-1, 1, 11), num_bits=16).params
    edges, step = bucket_edges(params)
    assert step > 1 and edges.size <= 258


def test_draw_bucket_explorer_redraws_in_place_without_leaking():
    x = synthetic_tensor()
    fig = draw_bucket_explorer(bucket_view(x))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    png8 = figure_png(fig)
    artists = sum(len(ax.get_children()) for ax in fig.axes)
    same = draw_bucket_explorer(bucket_view(x, num_bits=4), fig)
    assert same is fig and len(fig.axes) == 3
    png4 = figure_png(fig)
    assert png4 != png8 and png4[:8] == b"\x89PNG\r\n\x1a\n"
    draw_bucket_explorer(bucket_view(x), fig)
    assert sum(len(ax.get_children()) for ax in fig.axes) == artists
    assert figure_png(fig) == png8  # same settings, same picture
    assert plt.get_fignums() == []  # nothing left open in pyplot


# ------------------------------------------------------------- error accumulation


def _same_picture(updated: Figure, view, show_numbers: bool = True) -> None:
    """``updated`` shows exactly the pixels of a fresh draw of ``view``."""
    fresh = draw_bucket_explorer(view, show_numbers=show_numbers)
    np.testing.assert_array_equal(figure_pixels(updated), figure_pixels(fresh))


@pytest.mark.parametrize("settings", [
    dict(num_bits=4), dict(num_bits=16), dict(symmetric=True, narrow_range=True),
    dict(range_min=-1.0, range_max=1.5, window=(0.5, 0.6))])
def test_an_updated_picture_is_the_same_as_a_fresh_draw(settings):
    x = synthetic_tensor()
    fig = draw_bucket_explorer(bucket_view(x, num_bits=16), show_numbers=False)
    axes, artists = list(fig.axes), fig._qlab_artists
    draw_bucket_explorer(bucket_view(x), fig)  # one line per bucket, numbers shown
    view = bucket_view(x, **settings)
    draw_bucket_explorer(view, fig)
    assert fig.axes == axes and fig._qlab_artists is artists  # updated, not rebuilt
    _same_picture(fig, view)
    draw_bucket_explorer(view, fig, show_numbers=False)
    _same_picture(fig, view, show_numbers=False)


def test_an_update_to_another_tensor_is_the_same_as_a_fresh_draw():
    fig = draw_bucket_explorer(bucket_view(synthetic_tensor(), num_bits=3))
    view = bucket_view(synthetic_tensor("laplace (weight-like)"), num_bits=6,
                       window=(0.01, 0.02), source="laplace (weight-like)")
    draw_bucket_explorer(view, fig)
    _same_picture(fig, view)
    assert fig.get_suptitle() == "laplace (weight-like): int6 asymmetric"


def test_many_buckets_are_drawn_as_a_histogram_not_one_line_each():
    x = synthetic_tensor()
    fig = draw_bucket_explorer(bucket_view(x, num_bits=4))
    artists = fig._qlab_artists
    assert artists.level_lines.get_visible() and len(artists.level_lines.get_segments()) <= 16
    assert artists.legend.texts[1].get_text() == "quantized (one line per bucket)"
    draw_bucket_explorer(bucket_view(x, num_bits=12), fig)
    assert not artists.level_lines.get_visible() and artists.level_counts.get_visible()
    assert artists.legend.texts[1].get_text() == "quantized"
    assert artists.numbers.get_text().startswith("MSE ")
