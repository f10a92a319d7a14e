"""The widgets' pure compute and draw functions (no ipywidgets, no browser)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from qlab import widget_figures as wf  # noqa: E402


# ---------------------------------------------------------------- synthetic data


@pytest.fixture(autouse=True)
def no_open_pyplot_figures():
    """Start every test with pyplot empty, so "nothing left open" checks this test's code only
    (other test files draw pyplot figures and may leave them open)."""
    plt.close("all")


@pytest.mark.parametrize("source", wf.SYNTHETIC_SOURCES)
def test_synthetic_tensor_is_reproducible_float32(source):
    a = wf.synthetic_tensor(source, size=1000, seed=3)
    assert a.shape == (1000,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, wf.synthetic_tensor(source, size=1000, seed=3))
    assert not np.array_equal(a, wf.synthetic_tensor(source, size=1000, seed=4))


def test_normal_with_outliers_has_a_few_far_values():
    x = wf.synthetic_tensor("normal + outliers", size=10_000)
    far = np.abs(x) > 7
    assert 2 <= far.sum() <= 20


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match="source must be one of"):
        wf.synthetic_tensor("cauchy")


def test_synthetic_depthwise_kernel_channels_differ_in_scale():
    k = wf.synthetic_depthwise_kernel(32)
    assert k.shape == (3, 3, 32, 1)
    per_channel = np.abs(k).max(axis=(0, 1, 3))
    assert per_channel.max() / per_channel.min() > 30


# ---------------------------------------------------------------- bucket explorer


def test_values_in_a_narrow_window_collapse_into_one_int4_bucket():
    x = np.linspace(-8.0, 8.0, 101)
    view = wf.bucket_view(x, num_bits=4, window=(2.0, 2.3))
    # 16 levels over 16 units: buckets about 1.07 wide, so [2.0, 2.3] is inside one
    assert view.params.levels == 16
    assert view.window_buckets == 1
    fine = wf.bucket_view(x, num_bits=16, window=(2.0, 2.3))
    assert fine.window_buckets == 16  # 16 values 0.02 apart, buckets 0.00024 wide


def test_bucket_view_error_numbers_match_a_direct_computation():
    x = wf.synthetic_tensor("normal", size=5000)
    view = wf.bucket_view(x, num_bits=6, range_min=-2.0, range_max=2.0)
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
    x = wf.synthetic_tensor("normal + outliers")
    wide = wf.bucket_view(x, num_bits=4)  # min/max: covers the outliers, coarse buckets
    tight = wf.bucket_view(x, num_bits=4, range_min=-3.0, range_max=3.0)
    assert wide.report.clipped_fraction < tight.report.clipped_fraction
    assert tight.report.mse < wide.report.mse  # clipping the rare outliers pays off here


def test_error_split_adds_up_and_moves_with_the_range():
    x = wf.synthetic_tensor("normal + outliers")
    wide = wf.bucket_view(x, num_bits=4)
    tight = wf.bucket_view(x, num_bits=4, range_min=-3.0, range_max=3.0)
    for view in (wide, tight):
        rounding, clipping = view.error_split()
        assert rounding + clipping == pytest.approx(view.report.mse, rel=1e-3)
    # min/max range: only the nudge to put 0.0 on the grid clips a hair off an end
    assert wide.error_split()[1] < 0.01 * wide.report.mse
    assert tight.error_split()[0] < wide.error_split()[0]  # finer buckets round less
    assert tight.error_split()[1] > 0.0  # ... but the outliers are clipped
    assert set(tight.summary()) >= {"rounding_mse", "clipping_mse", "mse", "scale"}


def test_symmetric_puts_zero_point_at_zero():
    view = wf.bucket_view(np.linspace(-1, 3, 50), symmetric=True)
    assert int(view.params.zero_point) == 0
    assert view.summary()["zero_point"] == 0


@pytest.mark.parametrize("lo, hi", [(3.0, 1.0), (1.0, 1.0)])
def test_range_min_not_below_max_is_a_clear_value_error(lo, hi):
    with pytest.raises(ValueError, match="min must be below range max"):
        wf.bucket_view(np.arange(5.0), range_min=lo, range_max=hi)


@pytest.mark.parametrize("num_bits", [1, 17, 8.0])
def test_bucket_view_rejects_bad_num_bits(num_bits):
    with pytest.raises(ValueError, match="num_bits"):
        wf.bucket_view(np.arange(5.0), num_bits=num_bits)


def test_range_from_data_methods():
    x = wf.synthetic_tensor("normal + outliers")
    lo, hi = wf.range_from_data(x, "minmax")
    assert (lo, hi) == (pytest.approx(float(x.min())), pytest.approx(float(x.max())))
    p_lo, p_hi = wf.range_from_data(x, "percentile")
    assert lo <= p_lo < p_hi <= hi
    with pytest.raises(ValueError, match="method must be one of"):
        wf.range_from_data(x, "kl")


def test_bucket_edges_are_one_scale_apart_with_zero_in_the_middle_of_a_bucket():
    params = wf.bucket_view(np.linspace(-1, 1, 11), num_bits=3).params
    edges, step = wf.bucket_edges(params)
    scale = float(params.scale)
    assert step == 1 and edges.size == params.levels + 1
    np.testing.assert_allclose(np.diff(edges), scale, rtol=1e-5)
    assert np.min(np.abs(edges)) == pytest.approx(scale / 2, rel=1e-5)


def test_bucket_edges_are_thinned_for_many_bits():
    params = wf.bucket_view(np.linspace(-1, 1, 11), num_bits=16).params
    edges, step = wf.bucket_edges(params)
    assert step > 1 and edges.size <= 258


def test_draw_bucket_explorer_redraws_in_place_without_leaking():
    x = wf.synthetic_tensor()
    fig = wf.draw_bucket_explorer(wf.bucket_view(x))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    png8 = wf.figure_png(fig)
    artists = sum(len(ax.get_children()) for ax in fig.axes)
    same = wf.draw_bucket_explorer(wf.bucket_view(x, num_bits=4), fig)
    assert same is fig and len(fig.axes) == 3
    png4 = wf.figure_png(fig)
    assert png4 != png8 and png4[:8] == b"\x89PNG\r\n\x1a\n"
    wf.draw_bucket_explorer(wf.bucket_view(x), fig)
    assert sum(len(ax.get_children()) for ax in fig.axes) == artists
    assert wf.figure_png(fig) == png8  # same settings, same picture
    assert plt.get_fignums() == []  # nothing left open in pyplot


# ------------------------------------------------------------- error accumulation


def test_accumulation_view_has_one_error_per_layer():
    view = wf.accumulation_view(depth=5, batch=32)
    assert view.layer_error.shape == (5,)
    assert np.all(np.isfinite(view.layer_error))
    assert view.settings["depth"] == 5


def test_fewer_bits_give_more_chain_error():
    e8 = wf.accumulation_view(depth=4, num_bits=8, batch=32)
    e4 = wf.accumulation_view(depth=4, num_bits=4, batch=32)
    if e8.error_name == "sqnr_db":
        assert e4.layer_error[-1] < e8.layer_error[-1]
    else:
        assert e4.layer_error[-1] > e8.layer_error[-1]


@pytest.mark.parametrize("depth", [0, 65, 2.5])
def test_accumulation_view_rejects_bad_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        wf.accumulation_view(depth=depth)


def test_layer_error_profile_reads_dataframes_dicts_and_arrays():
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame({"layer": ["conv", "dw", "fc"], "kind": ["a", "b", "c"],
                          "rmse": [0.1, 0.5, 0.2], "sqnr_db": [30.0, 20.0, 25.0]})
    names, values, column = wf.layer_error_profile(table)
    assert names == ["conv", "dw", "fc"] and column == "rmse"
    np.testing.assert_allclose(values, [0.1, 0.5, 0.2])
    assert wf.layer_error_profile(table, "sqnr_db")[1][1] == 20.0
    with pytest.raises(ValueError, match="error_column"):
        wf.layer_error_profile(table, "nope")
    assert wf.layer_error_profile({"a": 1.0, "b": 2.0})[0] == ["a", "b"]
    # qlab.lite.debug.layer_error_table's shape: worst first, op_index gives the graph order
    debug_table = pd.DataFrame({"op_index": [2, 0, 1], "keras_layer": ["fc", "conv", "dw"],
                                "num_elements": [10, 100, 50], "rmse/scale": [0.9, 0.2, 0.4],
                                "layer": ["t2", "t0", "t1"]})
    names, values, column = wf.layer_error_profile(debug_table)
    assert names == ["conv", "dw", "fc"] and column == "rmse/scale"
    np.testing.assert_allclose(values, [0.2, 0.4, 0.9])
    assert wf.layer_error_profile(np.array([1.0, 2.0, 3.0]))[0] == ["0", "1", "2"]


def test_draw_error_accumulation_adds_the_model_profile_panel():
    fig = wf.draw_error_accumulation(wf.accumulation_view(depth=3, batch=32))
    assert len(fig.axes) == 1
    with_model = wf.accumulation_view(depth=3, batch=32, model_profile={"conv": 0.1, "fc": 0.3})
    fig = wf.draw_error_accumulation(with_model, fig)
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["conv", "fc"]


# ------------------------------------------------------------- per-channel ranges


def _reference_symmetric_mse(w2: np.ndarray, bound: np.ndarray, num_bits: int) -> np.ndarray:
    """Independent per-channel symmetric narrow-range quantization (TFLite's weight scheme)."""
    qmax = 2 ** (num_bits - 1) - 1
    scale = bound / qmax
    q = np.clip(np.floor(w2 / scale + 0.5), -qmax, qmax)
    return np.mean((w2 - q * scale) ** 2, axis=0)


def test_per_channel_error_matches_an_independent_reference():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 6)) * np.array([1.0, 0.01, 0.1, 2.0, 0.5, 0.02])
    view = wf.channel_ranges_view(kernel, channel_axis=-1, num_bits=8, layer_name="conv")
    w2 = kernel.reshape(-1, 6)
    bound = np.abs(w2).max(axis=0)
    np.testing.assert_allclose(view.channel_min, w2.min(axis=0))
    np.testing.assert_allclose(view.per_channel_mse, _reference_symmetric_mse(w2, bound, 8),
                               rtol=1e-3)
    np.testing.assert_allclose(view.per_tensor_mse,
                               _reference_symmetric_mse(w2, np.full(6, bound.max()), 8), rtol=1e-3)
    # the small channels are the ones per-tensor quantization hurts
    assert view.per_tensor_mse[1] > 100 * view.per_channel_mse[1]
    assert view.per_channel_sqnr_db > view.per_tensor_sqnr_db


def test_depthwise_axis_and_an_all_zero_channel():
    kernel = wf.synthetic_depthwise_kernel(8)
    kernel[:, :, 3, :] = 0.0
    view = wf.channel_ranges_view(kernel, channel_axis=2, num_bits=4)
    assert view.channels == 8
    assert view.per_channel_mse[3] == 0.0 and view.per_tensor_mse[3] == 0.0


def test_channel_ranges_view_rejects_a_bad_axis():
    with pytest.raises(ValueError, match="channel_axis"):
        wf.channel_ranges_view(np.ones((3, 4)), channel_axis=2)


def test_draw_channel_ranges_sorting_changes_the_picture():
    view = wf.channel_ranges_view(wf.synthetic_depthwise_kernel(16), channel_axis=2)
    fig = wf.draw_channel_ranges(view)
    before = wf.figure_png(fig)
    wf.draw_channel_ranges(view, fig, sort=True)
    assert len(fig.axes) == 2 and wf.figure_png(fig) != before


@pytest.mark.parametrize("render", [wf.static_bucket_explorer, wf.static_error_accumulation,
                                    wf.static_per_channel_ranges])
def test_static_renderings_are_figures_with_content(render):
    fig = render()
    assert isinstance(fig, Figure) and fig.axes
    assert len(wf.figure_png(fig)) > 10_000
    assert fig._repr_png_()[:4] == b"\x89PNG"  # a notebook cell ending with it shows the picture
    assert plt.get_fignums() == []


# ------------------------------------------------------------- real (Keras) models


@pytest.fixture(scope="module")
def mobilenet():
    from qlab.lite.keras2 import keras

    return keras.applications.MobileNet(input_shape=(32, 32, 1), alpha=0.25, weights=None,
                                        classes=10)


def test_weight_layers_and_their_channel_axes(mobilenet):
    names = wf.weight_layers(mobilenet)
    kinds = {type(mobilenet.get_layer(n)).__name__ for n in names}
    assert kinds == {"Conv2D", "DepthwiseConv2D"}  # MobileNet's classifier is a 1x1 conv
    depthwise = next(n for n in names if type(mobilenet.get_layer(n)).__name__ == "DepthwiseConv2D")
    lw = wf.layer_weights(mobilenet, depthwise)
    channels = mobilenet.get_layer(depthwise).input_shape[-1]
    assert lw.kind == "DepthwiseConv2D" and lw.kernel.shape == (3, 3, channels)
    assert lw.channel_axis == 2
    conv = wf.layer_weights(mobilenet, names[0])
    assert conv.kernel.shape[-1] == mobilenet.get_layer(names[0]).filters
    view = wf.channel_ranges_view(lw.kernel, lw.channel_axis)
    assert view.channels == channels
    with pytest.raises(ValueError, match="layer_name"):
        wf.layer_weights(mobilenet, "conv_pw_1_bn")


def test_layer_activations_shape(mobilenet):
    x = np.zeros((2, 32, 32, 1), np.float32)
    act = wf.layer_activations(mobilenet, "conv_pw_1_relu", x)
    assert act.shape[0] == 2 and act.ndim == 4


@pytest.mark.slow
def test_model_error_profile_of_a_small_keras_model():
    from qlab.lite.keras2 import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    table = wf.model_error_profile(model, x, num_samples=8)
    names, values, column = wf.layer_error_profile(table)
    assert column == "rmse/scale" and len(names) >= 3
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    fig = wf.draw_error_accumulation(wf.accumulation_view(depth=3, batch=32, model_profile=table))
    assert len(fig.axes) == 2


def test_layer_weights_folds_the_following_batch_norm_like_the_converter(mobilenet):
    bn = mobilenet.get_layer("conv_dw_1_bn")
    saved = bn.get_weights()
    try:
        channels = saved[0].size
        gamma = np.linspace(0.5, 4.0, channels).astype(np.float32)
        variance = np.linspace(0.1, 9.0, channels).astype(np.float32)
        bn.set_weights([gamma, saved[1], saved[2], variance])  # gamma, beta, mean, variance
        raw = wf.layer_weights(mobilenet, "conv_dw_1", fold_batch_norm=False)
        folded = wf.layer_weights(mobilenet, "conv_dw_1")
        assert raw.folded_batch_norm == "" and folded.folded_batch_norm == "conv_dw_1_bn"
        assert folded.kind == "DepthwiseConv2D"
        expected = raw.kernel * gamma / np.sqrt(variance + bn.epsilon)
        np.testing.assert_allclose(folded.kernel, expected, rtol=1e-6)
    finally:
        bn.set_weights(saved)
    assert wf.following_batch_norm(mobilenet, "conv_preds") is None


def test_model_activations_are_the_fused_chain_outputs(mobilenet):
    assert wf.fused_output_layer(mobilenet, "conv_dw_1") == "conv_dw_1_relu"
    assert wf.fused_output_layer(mobilenet, "conv_preds") == "conv_preds"
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    acts = wf.model_activations(mobilenet, x, ["conv1", "conv_dw_1"])
    assert list(acts) == ["conv1 activations", "conv_dw_1 activations"]
    expected = wf.layer_activations(mobilenet, "conv_dw_1_relu", x)
    np.testing.assert_allclose(acts["conv_dw_1 activations"], expected, rtol=1e-5, atol=1e-6)
    assert acts["conv1 activations"].min() >= 0.0  # after ReLU6


def test_channel_ranges_table_has_one_row_per_weight_layer_and_per_channel_never_loses(mobilenet):
    table = wf.channel_ranges_table(mobilenet)
    assert list(table.index) == wf.weight_layers(mobilenet)
    assert set(table["kind"]) == {"Conv2D", "DepthwiseConv2D"}  # keras MobileNet ends in a 1x1 conv
    assert (table["gain dB"] >= -1e-9).all()  # a channel's own scale is never coarser than the tensor's
    first = table.index[0]
    view = wf.channel_ranges_view(wf.layer_weights(mobilenet, first).kernel,
                                  wf.layer_weights(mobilenet, first).channel_axis)
    assert table.loc[first, "per-channel SQNR dB"] == pytest.approx(view.per_channel_sqnr_db)
