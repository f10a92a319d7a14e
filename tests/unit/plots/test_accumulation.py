"""The error-accumulation picture: the synthetic chain and a model's profile."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from qlab.plots.accumulation import accumulation_view, draw_error_accumulation
from qlab.plots.figure import figure_pixels


def test_accumulation_view_has_one_error_per_layer():
    view = accumulation_view(depth=5, batch=32)
    assert view.layer_error.shape == (5,)
    assert np.all(np.isfinite(view.layer_error))
    assert view.settings["depth"] == 5


def test_fewer_bits_give_more_chain_error():
    e8 = accumulation_view(depth=4, num_bits=8, batch=32)
    e4 = accumulation_view(depth=4, num_bits=4, batch=32)
    if e8.error_name == "sqnr_db":
        assert e4.layer_error[-1] < e8.layer_error[-1]
    else:
        assert e4.layer_error[-1] > e8.layer_error[-1]


@pytest.mark.parametrize("depth", [0, 65, 2.5])
def test_accumulation_view_rejects_bad_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        accumulation_view(depth=depth)


def test_draw_error_accumulation_adds_the_model_profile_panel():
    fig = draw_error_accumulation(accumulation_view(depth=3, batch=32))
    assert len(fig.axes) == 1
    with_model = accumulation_view(depth=3, batch=32, model_profile={"conv": 0.1, "fc": 0.3})
    fig = draw_error_accumulation(with_model, fig)
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["conv", "fc"]


def test_a_depth_profile_is_drawn_under_the_chain():
    import pandas as pd

    depth = pd.DataFrame({"depth": [1, 2, 3], "keras_layer": ["a", "b", "c"],
                          "relative_rmse": [0.01, 0.02, 0.04]})
    view = accumulation_view(depth=3, batch=32, depth_profile=depth)
    assert view.has_model_panel and view.model_profile is None
    fig = draw_error_accumulation(view)
    assert len(fig.axes) == 2 and fig.axes[1].get_yscale() == "log"
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [0.01, 0.02, 0.04])
    with pytest.raises(ValueError, match="not both"):
        accumulation_view(depth=3, model_profile={"a": 1.0}, depth_profile=depth)
    with pytest.raises(TypeError, match="error_by_depth"):
        accumulation_view(depth=3, depth_profile=pd.DataFrame({"layer": ["a"]}))


# ------------------------------------------------------------- per-channel ranges


def _pixels_of_fresh_draw(view):
    return figure_pixels(draw_error_accumulation(view))


def test_an_updated_chain_is_the_same_as_a_fresh_draw():
    # a linear y axis, then a log one (the error spans decades), then linear again
    views = [accumulation_view(depth=2, batch=32),
             accumulation_view(depth=64, num_bits=4, requantize=False, batch=32),
             accumulation_view(depth=6, num_bits=6, per_channel=True, batch=32)]
    fig = draw_error_accumulation(views[0])
    axes, artists = list(fig.axes), fig._qlab_artists
    scales = []
    for view in views[1:] + views[:1]:
        draw_error_accumulation(view, fig)
        scales.append(fig.axes[0].get_yscale())
        assert fig.axes == axes and fig._qlab_artists is artists  # updated, not rebuilt
        np.testing.assert_array_equal(figure_pixels(fig), _pixels_of_fresh_draw(view))
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), views[0].layer_error)
    assert fig.axes[0].get_legend().texts[0].get_text() == (
        "int8 per-tensor, int32 accumulate, requantize")
    assert set(scales) == {"log", "linear"}, scales  # both kinds of axis were updated into
