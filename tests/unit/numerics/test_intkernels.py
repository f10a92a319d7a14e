"""TFLite's int8 kernels in numpy, on tiny cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics import intkernels as K



def test_activation_range_relu6_uses_the_output_quantization():
    # scale 0.05, zero point -128: 0 -> -128, 6 -> -128 + 120 = -8
    assert K.activation_range(3, 0.05, -128) == (-128, -8)
    assert K.activation_range(1, 0.05, -10) == (-10, 127)
    assert K.activation_range(0, 0.05, 3) == (-128, 127)
    with pytest.raises(NotImplementedError, match="TANH"):
        K.activation_range(4, 0.05, 0)


def test_average_divides_rounding_half_away_from_zero():
    assert K.divide_round_half_away(np.array([5, -5, 4, -4, 0]), 2).tolist() == [3, -3, 2, -2, 0]


def test_single_rounding_differs_from_double_rounding_at_a_near_tie():
    # Found on a real FC layer: acc * M = -35.49992; double rounding (SRDHM, then a
    # rounding shift) meets an exact tie -72704 / 2**11 = -35.5 and goes to -36.
    from qlab.numerics.fixedpoint import multiply_by_quantized_multiplier

    acc, multiplier, shift = -96909, 1611102162, -11
    assert int(K.multiply_by_quantized_multiplier_single_round(acc, multiplier, shift)) == -35
    assert int(multiply_by_quantized_multiplier(acc, multiplier, shift)) == -36


def test_mean_folds_the_count_into_the_multiplier():
    x = np.array([[1, 2, 3, 5]], dtype=np.int8).reshape(1, 2, 2, 1)
    out = K.mean(x, [1, 2], True, input_scale=0.5, input_zero_point=1, output_scale=0.25, output_zero_point=0)
    # real mean of (q - 1) * 0.5 is 0.875 -> 3.5 output steps -> 4 (rounding half up)
    assert out.shape == (1, 1, 1, 1) and int(out[0, 0, 0, 0]) == 4


def test_softmax_is_close_to_float_softmax_and_exact_format():
    x = np.array([[10, -20, 40, 0, -128, 127]], dtype=np.int8)
    out = K.softmax(x, beta=1.0, input_scale=0.05)
    real = np.exp(0.05 * (x[0].astype(np.float64) - x.max()))
    real /= real.sum()
    assert out.dtype == np.int8
    assert np.max(np.abs((out[0].astype(int) + 128) / 256 - real)) <= 1 / 256


def test_conv_of_a_single_pixel_by_hand():
    x = np.array([[[[3]]]], dtype=np.int8)  # 1x1x1x1 image, zero point 1 -> centred value 2
    w = np.array([[[[5]]]], dtype=np.int8)
    m, s = 1 << 30, 0  # multiplier 0.5
    out = K.conv2d(x, w, np.array([4], dtype=np.int32), input_zero_point=1, multiplier=np.array([m]),
                   shift=np.array([s]), output_zero_point=-3, act_min=-128, act_max=127, stride=(1, 1),
                   dilation=(1, 1), padding="VALID")
    assert int(out[0, 0, 0, 0]) == (2 * 5 + 4) // 2 - 3
