"""Range estimators: hand cases, TFMOT's EMA rule, and the measured wins of MSE-optimal and per-channel ranges."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics.calibration import (
    estimate_range,
    minmax_range,
    moving_average_range,
    mse_optimal_range,
    percentile_range,
)
from qlab.numerics.metrics import mse, sqnr_db
from qlab.numerics.quant import choose_quant_params, dequantize, quantize

F32 = np.float32


def _roundtrip(x, lo, hi, num_bits=8, axis=None):
    params = choose_quant_params(lo, hi, num_bits, axis=axis)
    return dequantize(quantize(x, params), params)


def test_minmax_per_tensor_and_per_channel():
    x = np.array([[1.0, -2.0, 0.5], [3.0, 4.0, -0.5]], F32)
    lo, hi = minmax_range(x)
    assert (lo, hi) == (-2.0, 4.0) and isinstance(lo, np.float32)
    lo, hi = minmax_range(x, axis=-1)
    assert lo.tolist() == [1.0, -2.0, -0.5] and hi.tolist() == [3.0, 4.0, 0.5]
    lo, hi = minmax_range(x, axis=0)
    assert lo.tolist() == [-2.0, -0.5] and hi.tolist() == [1.0, 4.0]


def test_percentile_ignores_rare_outliers():
    x = np.concatenate([np.linspace(-1, 1, 9999), [1000.0]]).astype(F32)
    lo, hi = percentile_range(x, percentile=99.9)
    assert -1.0 <= lo < -0.99 and 0.99 < hi <= 1.0
    assert percentile_range(x, percentile=100) == minmax_range(x)
    with pytest.raises(ValueError, match="percentile"):
        percentile_range(x, percentile=40)


def test_moving_average_follows_tfmot_update_rule():
    batches = [np.array([-1.0, 2.0], F32), np.array([0.5, 4.0], F32)]
    # TFMOT starts at [-6, 6]; each step v -= (v - batch) * (1 - decay); batch ranges include 0
    lo, hi = moving_average_range(batches, decay=0.5)
    assert lo == F32(-1.75)  # -6 -> -3.5 (batch min -1) -> -1.75 (batch min 0.5, widened to 0)
    assert hi == F32(4.0)  # 6 -> 4 (batch max 2) -> 4 (batch max 4)
    lo, hi = moving_average_range(batches, decay=0.5, init_min=None, init_max=None)
    assert (lo, hi) == (F32(-0.5), F32(3.0))  # first batch [-1, 2], then halfway to [0, 4]
    # with TFMOT's default decay the [-6, 6] start dominates for a long time
    lo, hi = moving_average_range([np.ones(4, F32)] * 100)
    assert lo == pytest.approx(-6 * 0.999**100, rel=1e-4) and hi == pytest.approx(1 + 5 * 0.999**100, rel=1e-4)


def test_moving_average_symmetric_and_per_channel():
    batch = np.array([[-1.0, 0.0], [2.0, 3.0]], F32)
    lo, hi = moving_average_range([batch], decay=0.0, axis=-1, symmetric=True, narrow_range=True)
    assert lo.tolist() == [-2.0, -3.0] and hi.tolist() == [2.0, 3.0]
    lo, hi = moving_average_range([batch], decay=0.0, symmetric=True, num_bits=8)
    assert hi == 3.0 and lo == pytest.approx(-3.0 * 256 / 254)
    with pytest.raises(ValueError, match="batches is empty"):
        moving_average_range([])
    with pytest.raises(ValueError, match="decay"):
        moving_average_range([batch], decay=1.0)
    with pytest.raises(ValueError, match=r"batches\[1\] has 3 channels"):
        moving_average_range([batch, np.zeros((2, 3))], axis=-1)


def test_mse_optimal_beats_minmax_on_heavy_tailed_tensor():
    x = np.random.default_rng(0).standard_t(df=3, size=50_000).astype(F32)
    lines = []
    for num_bits in (8, 4):
        lo, hi = minmax_range(x)
        a, b = mse_optimal_range(x, num_bits=num_bits)
        x_minmax, x_mse = _roundtrip(x, lo, hi, num_bits), _roundtrip(x, a, b, num_bits)
        mse_minmax, mse_opt = mse(x, x_minmax), mse(x, x_mse)
        lines.append(
            f"int{num_bits} Student-t(3): min/max [{lo:.2f}, {hi:.2f}] MSE {mse_minmax:.3g} "
            f"SQNR {sqnr_db(x, x_minmax):.2f} dB | MSE-optimal [{a:.2f}, {b:.2f}] MSE {mse_opt:.3g} "
            f"SQNR {sqnr_db(x, x_mse):.2f} dB ({mse_minmax / mse_opt:.2f}x lower MSE)"
        )
        assert mse_opt < mse_minmax
        assert -lo > -a and hi > b  # it clipped
    print("\n" + "\n".join(lines))
    assert mse_minmax / mse_opt > 3  # at 4 bits clipping the tails wins big


def test_per_channel_beats_per_tensor_on_very_different_channels():
    rng = np.random.default_rng(1)
    channel_scale = np.array([0.01, 0.1, 1.0, 10.0] * 4, F32)
    w = (rng.normal(size=(256, 16)) * channel_scale).astype(F32)
    per_tensor = _roundtrip(w, *minmax_range(w))
    per_channel = _roundtrip(w, *minmax_range(w, axis=-1), axis=-1)
    small = channel_scale < 1
    mse_t, mse_c = mse(w, per_tensor), mse(w, per_channel)
    sq_t, sq_c = sqnr_db(w[:, small], per_tensor[:, small]), sqnr_db(w[:, small], per_channel[:, small])
    print(f"\nper-tensor MSE {mse_t:.3g} SQNR {sqnr_db(w, per_tensor):.2f} dB (small channels {sq_t:.2f} dB); "
          f"per-channel MSE {mse_c:.3g} SQNR {sqnr_db(w, per_channel):.2f} dB (small channels {sq_c:.2f} dB)")
    assert mse_c < mse_t
    assert sq_c > sq_t + 20  # the 0.01/0.1 channels are nearly wiped out per-tensor


def test_mse_optimal_per_channel_and_grid():
    w = np.random.default_rng(2).laplace(size=(2000, 3)).astype(F32) * np.array([1, 10, 100], F32)
    lo, hi = mse_optimal_range(w, num_bits=4, axis=-1, grid=50)
    assert lo.shape == (3,) and np.all(lo < 0) and np.all(hi > 0)
    for channel in range(3):  # each channel gets the range it would get on its own
        assert (lo[channel], hi[channel]) == mse_optimal_range(w[:, channel], num_bits=4, grid=50)
    assert hi[2] > 50 * hi[0]
    assert mse_optimal_range(w[:, 0], grid=[1.0]) == minmax_range(w[:, 0])
    with pytest.raises(ValueError, match="all zeros in channel 1"):
        mse_optimal_range(np.stack([w[:, 0], np.zeros(2000, F32)], -1), axis=-1)
    with pytest.raises(ValueError, match="grid"):
        mse_optimal_range(w, grid=0)


def test_estimate_range_dispatch_and_errors():
    x = np.linspace(-1, 3, 101, dtype=F32)
    assert estimate_range(x) == minmax_range(x)
    assert estimate_range(x, "percentile", percentile=90) == percentile_range(x, 90)
    assert estimate_range(x, "mse", num_bits=4) == mse_optimal_range(x, num_bits=4)
    assert estimate_range([x], "moving_average", decay=0.0) == (F32(-1), F32(3))
    with pytest.raises(ValueError, match="method must be one of"):
        estimate_range(x, "kl")
    with pytest.raises(ValueError, match="x contains"):
        minmax_range([1.0, np.inf])
    with pytest.raises(ValueError, match="x is empty"):
        minmax_range([])
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        minmax_range(np.zeros((2, 2)), axis=2)


def test_clipping_error_curve_ends_at_minmax_and_bottoms_out_at_the_mse_optimal_range():
    from qlab import choose_quant_params, dequantize, quantize
    from qlab.numerics.calibration import clipping_error_curve, minmax_range, mse_optimal_range

    x = np.random.default_rng(3).standard_t(3, size=20_000).astype(np.float32)
    ratios, errors = clipping_error_curve(x, num_bits=4, grid=50)
    assert ratios[-1] == 1.0 and len(errors) == 50
    params = choose_quant_params(*minmax_range(x), num_bits=4)
    assert errors[-1] == pytest.approx(np.mean((dequantize(quantize(x, params), params) - x) ** 2.0))
    lo, hi = mse_optimal_range(x, num_bits=4, grid=50)
    best = ratios[np.argmin(errors)]
    assert hi == pytest.approx(max(x.max(), 0) * best, rel=1e-6)
    assert errors.min() < errors[-1] / 2  # at 4 bits clipping the tails pays off clearly
