"""AdaRound's numpy math against an independent reference and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from qlab.numerics.adaround import (adaround_scales, beta_schedule, grid_limits, hard_codes,
                                    initial_rounding_logits, nearest_codes, rectified_sigmoid,
                                    rounding_regularizer, soft_weights)


def _h_reference(v: np.ndarray) -> np.ndarray:
    """The paper's eq. 23 with scipy's logistic function: clip(sigmoid(V) * 1.2 - 0.1, 0, 1)."""
    return np.clip(expit(v) * (1.1 - (-0.1)) + (-0.1), 0.0, 1.0)


def test_rectified_sigmoid_matches_reference_and_hand_values():
    v = np.linspace(-12, 12, 1001)
    np.testing.assert_allclose(rectified_sigmoid(v), _h_reference(v), atol=1e-12)
    # sigmoid(0) = 0.5 -> 0.5; sigmoid(log 3) = 0.75 -> 0.8; saturates at exactly 0 and 1
    np.testing.assert_allclose(rectified_sigmoid([0.0, np.log(3.0)]), [0.5, 0.8], atol=1e-12)
    assert rectified_sigmoid(-5.0) == 0.0 and rectified_sigmoid(5.0) == 1.0
    assert rectified_sigmoid(-1.0) > 0.0  # not yet clipped: sigmoid(-1) * 1.2 - 0.1 = 0.2227
    np.testing.assert_allclose(rectified_sigmoid(-1.0), expit(-1.0) * 1.2 - 0.1, atol=1e-12)


def test_regularizer_matches_reference_and_hand_values():
    rng = np.random.default_rng(0)
    v = rng.normal(scale=3.0, size=200)
    for beta in (20.0, 8.0, 2.0):
        reference = np.sum(1.0 - np.abs(2.0 * _h_reference(v) - 1.0) ** beta)
        assert rounding_regularizer(v, beta) == pytest.approx(reference, rel=1e-9)
    # h = 0.8 -> 1 - 0.6 ** 2 = 0.64; h = 0.5 -> 1 (largest); h in {0, 1} -> 0 (done)
    assert rounding_regularizer([np.log(3.0)], 2.0) == pytest.approx(0.64)
    assert rounding_regularizer([0.0], 20.0) == pytest.approx(1.0)
    assert rounding_regularizer([-9.0, 9.0], 2.0) == 0.0
    # a high beta leaves h free in the middle, a low beta pushes it hardest
    assert rounding_regularizer([np.log(3.0)], 20.0) > rounding_regularizer([np.log(3.0)], 2.0)


def test_initial_logits_start_at_the_float_weights_and_round_to_nearest():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 7)).astype(np.float32)
    scale = adaround_scales(w, 4, per_channel=True)
    v = initial_rounding_logits(w, scale)
    ratio = w.astype(np.float64) / scale
    np.testing.assert_allclose(_h_reference(v), ratio - np.floor(ratio), atol=1e-6)
    np.testing.assert_allclose(soft_weights(w, v, scale, 4), w, atol=1e-6)
    np.testing.assert_array_equal(hard_codes(w, v, scale, 4), nearest_codes(w, scale, 4))


def test_scales_are_max_abs_over_qmax_per_channel_and_per_tensor():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 3, 2, 4)) * np.array([1.0, 0.1, 3.0, 0.5])
    for bits, qmax in ((8, 127), (4, 7), (3, 3), (2, 1)):
        assert grid_limits(bits) == (-qmax, qmax)
        np.testing.assert_allclose(adaround_scales(w, bits, True),
                                   np.abs(w.reshape(-1, 4)).max(axis=0) / qmax, rtol=1e-6)
        np.testing.assert_allclose(adaround_scales(w, bits, False), np.abs(w).max() / qmax, rtol=1e-6)


def test_soft_and_hard_weights_stay_on_the_clipped_grid():
    scale = np.float32(0.1)
    # 2 bits: levels -1, 0, 1 only; w / s = 2.5 must clip to 1 whatever V says
    w = np.array([0.25, -0.25, 0.04, -0.04, 0.07], dtype=np.float32)
    up, down = np.full(5, 9.0), np.full(5, -9.0)
    np.testing.assert_allclose(soft_weights(w, up, scale, 2), [0.1, -0.1, 0.1, 0.0, 0.1], atol=1e-7)
    np.testing.assert_allclose(soft_weights(w, down, scale, 2), [0.1, -0.1, 0.0, -0.1, 0.0], atol=1e-7)
    np.testing.assert_array_equal(hard_codes(w, up, scale, 2), [1, -1, 1, 0, 1])
    np.testing.assert_array_equal(hard_codes(w, down, scale, 2), [1, -1, 0, -1, 0])
    np.testing.assert_array_equal(nearest_codes(w, scale, 2), [1, -1, 0, 0, 1])
    # the soft weight is a convex mix of the two neighbours: s * (floor + h)
    v = np.array([0.3])
    expected = 0.1 * (np.floor(0.04 / 0.1) + _h_reference(v))
    np.testing.assert_allclose(soft_weights(np.float32([0.04]), v, scale, 4), expected, atol=1e-7)


def test_beta_schedule_warms_up_then_anneals_20_to_2():
    betas = [beta_schedule(i, 100) for i in range(100)]
    assert betas[:20] == [None] * 20
    assert betas[20] == pytest.approx(20.0)
    assert betas[-1] == pytest.approx(2.0 + 18.0 / 80)
    annealed = np.array(betas[20:])
    assert np.all(np.diff(annealed) < 0) and annealed.min() >= 2.0


@pytest.mark.parametrize("call, message", [
    (lambda: grid_limits(9), "num_bits"),
    (lambda: grid_limits(1), "num_bits"),
    (lambda: rounding_regularizer([0.0], 0.0), "beta"),
    (lambda: beta_schedule(0, 0), "iterations"),
    (lambda: beta_schedule(0, 10, warm_up=1.0), "warm_up"),
    (lambda: adaround_scales([np.nan, 1.0], 4, True), "w"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_per_channel_must_be_a_bool():
    with pytest.raises(TypeError, match="per_channel"):
        adaround_scales(np.ones((2, 2)), 4, per_channel="yes")
