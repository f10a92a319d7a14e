"""The error-accumulation picture: the synthetic chain and a model's profile."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from qlab.plots.accumulation import accumulation_view, draw_error_accumulation


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


# ------------------------------------------------------------- per-channel ranges
