"""The widgets, tested the way ipywidgets tests itself: set a control's value, check state and output."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import io  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from qlab import widgets as qw  # noqa: E402
from qlab.plots.accumulation import draw_error_accumulation  # noqa: E402
from qlab.plots.buckets import draw_bucket_explorer  # noqa: E402
from qlab.plots.channel_ranges import draw_channel_ranges  # noqa: E402
from qlab.plots.figure import figure_pixels  # noqa: E402


@pytest.fixture
def explorer():
    widget = qw.BucketExplorer()
    yield widget
    widget.close()


def test_bucket_explorer_starts_at_int8_min_max(explorer):
    view = explorer.view
    assert view.params.num_bits == 8 and view.params.levels == 256
    assert explorer.range_method.value == "minmax"
    assert explorer.range_min.value == pytest.approx(float(explorer.data.min()), abs=1e-5)
    assert explorer.image.value[:4] == b"\x89PNG"
    assert "SQNR" in explorer.stats.value or "sqnr" in explorer.stats.value
    assert explorer.message.value == ""


def test_moving_num_bits_recomputes_and_redraws(explorer):
    png, updates = explorer.image.value, explorer.updates
    explorer.num_bits.value = 3
    assert explorer.view.params.levels == 8
    assert explorer.view.report.buckets_used <= 8
    assert explorer.image.value != png
    assert explorer.updates == updates + 1
    assert explorer.last_update_ms > 0


def test_min_above_max_shows_a_message_instead_of_raising(explorer):
    view, png = explorer.view, explorer.image.value
    explorer.range_min.value = 50.0  # typed into the box, above the max
    assert "min" in explorer.message.value and "max" in explorer.message.value
    assert explorer.view is view and explorer.image.value == png  # last good picture stays
    assert explorer.range_method.value == "manual"
    explorer.range_min.value = -1.0
    assert explorer.message.value == ""
    assert float(explorer.view.params.min) == pytest.approx(-1.0, abs=0.1)


def test_calibration_method_fills_the_range_boxes(explorer):
    wide = explorer.range_max.value - explorer.range_min.value
    explorer.range_method.value = "percentile"
    assert explorer.range_max.value - explorer.range_min.value < wide  # outliers dropped
    assert explorer.view.report.clipped_fraction > 0


def test_symmetric_and_narrow_range(explorer):
    explorer.symmetric.value = True
    assert int(explorer.view.params.zero_point) == 0
    explorer.narrow_range.value = True
    assert explorer.view.params.levels == 255


def test_changing_source_keeps_the_window_inside_the_data(explorer):
    explorer.source.value = "laplace (weight-like)"
    lo, hi = explorer.window.value
    x = explorer.data
    assert float(x.min()) <= lo < hi <= float(x.max())
    assert explorer.view.source == "laplace (weight-like)"
    assert float(explorer.view.params.max) < 2.0  # range re-taken from the new data


def test_window_slider_moves_the_followed_values(explorer):
    explorer.window.value = (0.5, 0.6)
    assert explorer.view.window == pytest.approx((0.5, 0.6))
    assert explorer.view.window_values.min() == pytest.approx(0.5)


def test_extra_sources_and_unknown_source():
    w = qw.BucketExplorer(sources={"my tensor": np.linspace(-1, 1, 100)})
    assert w.source.value == "my tensor" and w.view.x.size == 100
    with pytest.raises(ValueError, match="source must be one of"):
        qw.BucketExplorer(source="nope")


def test_widget_displays_as_a_jupyter_widget(explorer):
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_error_accumulation_depth_and_per_channel():
    w = qw.ErrorAccumulation(depth=4)
    assert w.view.layer_error.shape == (4,)
    png = w.image.value
    w.depth.value = 9
    assert w.view.layer_error.shape == (9,) and w.image.value != png
    w.per_channel.value = True
    assert w.view.settings["per_channel"] is True
    w.int32_accumulate.value = False
    w.requantize.value = False
    assert w.view.settings["int32_accumulate"] is False and w.view.settings["requantize"] is False
    assert w.message.value == ""


def test_error_accumulation_with_a_model_profile():
    w = qw.ErrorAccumulation(model_profile={"conv1": 0.01, "dw1": 0.08, "fc": 0.02})
    assert w.profile[0] == ["conv1", "dw1", "fc"]
    assert w.profile_image in w.widget.children and w.profile_image.value[:4] == b"\x89PNG"
    ticks = [t.get_text() for t in w.profile_figure.axes[0].get_xticklabels()]
    assert ticks == ["conv1", "dw1", "fc"]
    profile_png = w.profile_image.value
    w.depth.value = 3  # the chain's controls leave the model's picture alone
    assert w.profile_image.value == profile_png and w.view.layer_error.shape == (3,)
    assert qw.ErrorAccumulation().profile_image not in qw.ErrorAccumulation().widget.children


def test_error_accumulation_model_profile_column_dropdown():
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame({"op_index": [1, 0], "keras_layer": ["fc", "conv"],
                          "rmse/scale": [0.5, 0.2], "max_abs_error": [0.01, 0.03]})
    w = qw.ErrorAccumulation(model_profile=table)
    assert w.profile_column.value == "rmse/scale"
    np.testing.assert_allclose(w.profile[1], [0.2, 0.5])
    png, chain_png = w.profile_image.value, w.image.value
    w.profile_column.value = "max_abs_error"
    np.testing.assert_allclose(w.profile[1], [0.03, 0.01])
    assert w.profile[2] == "max_abs_error" and w.profile_image.value != png
    assert w.image.value == chain_png


def test_error_accumulation_with_a_depth_profile():
    pd = pytest.importorskip("pandas")
    depth = pd.DataFrame({"depth": [1, 2, 3], "keras_layer": ["conv", "dw", "fc"],
                          "relative_rmse": [0.01, 0.02, 0.04],
                          "same_input_relative_rmse": [0.01, 0.01, 0.02]})
    w = qw.ErrorAccumulation(depth_profile=depth)
    assert w.profile_image in w.widget.children and w.profile_image.value[:4] == b"\x89PNG"
    assert len(w.profile_figure.axes[0].lines) == 2 and w.profile_column is None
    profile_png, chain_png = w.profile_image.value, w.image.value
    w.num_bits.value = 4  # the chain moves, the real model's picture stays
    assert w.image.value != chain_png and w.profile_image.value == profile_png
    with pytest.raises(ValueError, match="not both"):
        qw.ErrorAccumulation(model_profile={"a": 1.0}, depth_profile=depth)
    with pytest.raises(TypeError, match="error_by_depth"):
        qw.ErrorAccumulation(depth_profile=pd.DataFrame({"layer": ["a"]}))


def test_per_channel_ranges_controls():
    w = qw.PerChannelRanges()
    first = w.view
    assert first.channels == 32 and first.num_bits == 8
    png = w.image.value
    w.num_bits.value = 4
    assert w.view.num_bits == 4 and w.view.per_tensor_sqnr_db < first.per_tensor_sqnr_db
    assert w.image.value != png
    w.layer.value = w.layer.options[1]
    assert w.view.channels == 128
    png = w.image.value
    w.sort.value = True
    assert w.image.value != png


def test_per_channel_ranges_with_a_bad_kernel_shows_a_message():
    w = qw.PerChannelRanges(kernels={"bad": (np.ones((3, 4)), 2), "ok": (np.ones((3, 4)), 1)},
                            layer="ok")
    w.layer.value = "bad"
    assert "channel_axis" in w.message.value and w.view.layer_name == "ok"


@pytest.fixture(scope="module")
def mobilenet():
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNet(input_shape=(32, 32, 1), alpha=0.25, weights=None,
                                        classes=10)


def test_widgets_on_a_keras_mobilenet(mobilenet):
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    with_acts = qw.BucketExplorer(model=mobilenet, x=x, source="conv_dw_1 activations")
    assert with_acts.view.x.min() >= 0.0 and with_acts.view.x.size == 2 * 16 * 16 * 8
    explorer = qw.BucketExplorer(model=mobilenet)
    assert explorer.source.value == "conv1 weights"
    explorer.source.value = "conv_dw_1 weights"
    assert explorer.view.x.size == 3 * 3 * 8
    ranges = qw.PerChannelRanges(model=mobilenet)
    assert ranges.layer.value == "conv_dw_1"
    assert ranges.view.channels == 8
    assert ranges.view.layer_name == "conv_dw_1 (DepthwiseConv2D, conv_dw_1_bn folded in)"


# ------------------------------------------------------------- drawn once, updated in place
def _png_pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _assert_shows_a_fresh_draw(widget, fresh_figure) -> None:
    np.testing.assert_array_equal(_png_pixels(widget.image.value), figure_pixels(fresh_figure))


def test_bucket_explorer_updates_its_artists_and_shows_what_a_fresh_draw_shows(explorer):
    axes, artists = list(explorer.figure.axes), explorer.figure._qlab_artists
    explorer.num_bits.value = 4
    explorer.symmetric.value = True
    explorer.source.value = "uniform"
    explorer.window.value = (0.5, 0.6)
    assert explorer.figure.axes == axes and explorer.figure._qlab_artists is artists
    _assert_shows_a_fresh_draw(explorer, draw_bucket_explorer(explorer.view, show_numbers=False))


def test_error_accumulation_updates_and_shows_what_a_fresh_draw_shows():
    w = qw.ErrorAccumulation()
    axes, first = list(w.figure.axes), w.view
    w.depth.value = 20
    w.int32_accumulate.value = False
    w.num_bits.value = 4
    assert w.figure.axes == axes
    _assert_shows_a_fresh_draw(w, draw_error_accumulation(w.view))
    w.int32_accumulate.value, w.depth.value, w.num_bits.value = True, 8, 8
    assert w.view is first  # the seeded chain is not simulated again for a setting seen before
    _assert_shows_a_fresh_draw(w, draw_error_accumulation(first))


def test_per_channel_ranges_updates_and_shows_what_a_fresh_draw_shows():
    w = qw.PerChannelRanges()
    axes = list(w.figure.axes)
    w.layer.value = w.layer.options[1]
    w.sort.value = True
    w.num_bits.value = 3
    assert w.figure.axes == axes
    _assert_shows_a_fresh_draw(w, draw_channel_ranges(w.view, sort=True))


def test_bucket_explorer_takes_a_range_from_the_data_once(monkeypatch, explorer):
    calls = []
    real = qw.range_from_data

    def counting(x, method="minmax", num_bits=8):
        calls.append((method, num_bits))
        return real(x, method, num_bits)

    monkeypatch.setattr(qw, "range_from_data", counting)
    for method in ["mse", "percentile", "mse", "percentile", "mse"]:
        explorer.range_method.value = method
    assert calls == [("mse", 8), ("percentile", 8)]
    mse_range = (explorer.range_min.value, explorer.range_max.value)
    explorer.num_bits.value = 4  # the min-MSE range depends on the bit width: taken again
    assert calls[-1] == ("mse", 4) and (explorer.range_min.value,
                                         explorer.range_max.value) != mse_range
    explorer.range_method.value = "percentile"
    explorer.num_bits.value = 6  # ... the percentile range does not
    assert len(calls) == 3


# ------------------------------------------------------------- the timing script
@pytest.fixture(scope="module")
def timing_script():
    import importlib.util

    from qlab.workbook.bench.paths import widget_script

    spec = importlib.util.spec_from_file_location("widget_update_times", widget_script())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timing_script_reports_the_95th_percentile_and_the_cpu(timing_script):
    wall = np.arange(1.0, 21.0)  # 1..20 ms: the 95th percentile interpolates 19 and 20
    row = timing_script.summarize(wall, wall / 2)
    assert row == {"median_ms": 10.5, "p95_ms": pytest.approx(19.05), "max_ms": 20.0,
                   "cpu_median_ms": 5.25, "cpu_p95_ms": pytest.approx(9.525)}
    assert timing_script.cpu_name().strip()


def test_timing_script_times_a_control_and_checks_the_picture_changed(timing_script):
    wall, cpu = timing_script.time_case(qw.PerChannelRanges, "sort", [True, False], repeats=2)
    assert wall.shape == cpu.shape == (2,) and np.all(wall > 0)
