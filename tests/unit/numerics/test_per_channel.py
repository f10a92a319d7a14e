"""Per-tensor against per-channel weight quantization, against an independent reference."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics.per_channel import channel_ranges_view
from qlab.numerics.synthetic import synthetic_depthwise_kernel


def _reference_symmetric_mse(w2: np.ndarray, bound: np.ndarray, num_bits: int) -> np.ndarray:
    """Independent per-channel symmetric narrow-range quantization (TFLite's weight scheme)."""
    qmax = 2 ** (num_bits - 1) - 1
    scale = bound / qmax
    q = np.clip(np.floor(w2 / scale + 0.5), -qmax, qmax)
    return np.mean((w2 - q * scale) ** 2, axis=0)


def test_per_channel_error_matches_an_independent_reference():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 6)) * np.array([1.0, 0.01, 0.1, 2.0, 0.5, 0.02])
    view = channel_ranges_view(kernel, channel_axis=-1, num_bits=8, layer_name="conv")
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
    kernel = synthetic_depthwise_kernel(8)
    kernel[:, :, 3, :] = 0.0
    view = channel_ranges_view(kernel, channel_axis=2, num_bits=4)
    assert view.channels == 8
    assert view.per_channel_mse[3] == 0.0 and view.per_tensor_mse[3] == 0.0


def test_channel_ranges_view_rejects_a_bad_axis():
    with pytest.raises(ValueError, match="channel_axis"):
        channel_ranges_view(np.ones((3, 4)), channel_axis=2)
