"""Counting zeros: hand-computed cases for the sparsity math, m:n groups and TFLite's layout."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics import sparsity


def test_zero_fraction_and_zeros_per_channel_by_hand():
    kernel = np.array([[0.0, 1.0, 0.0],
                       [0.0, 2.0, 3.0]])  # (in=2, out=3)
    assert sparsity.zero_fraction(kernel) == pytest.approx(3 / 6)
    np.testing.assert_array_equal(sparsity.zeros_per_channel(kernel, axis=-1), [2, 0, 1])
    np.testing.assert_array_equal(sparsity.zeros_per_channel(kernel, axis=0), [2, 1])
    assert sparsity.zero_fraction(np.int8([0, -3, 0, 0])) == 0.75  # int8 weights from a file
    with pytest.raises(ValueError, match="empty"):
        sparsity.zero_fraction(np.zeros((0, 3)))


@pytest.mark.parametrize("value, error", [(0, ValueError), (1, ValueError), (1.5, ValueError),
                                          (-0.1, ValueError), ("0.5", TypeError), (True, TypeError)])
def test_check_sparsity_names_the_argument(value, error):
    with pytest.raises(error, match="target_sparsity"):
        sparsity.check_sparsity(value)


def test_check_sparsity_allows_zero_only_when_asked():
    assert sparsity.check_sparsity(0.0, "initial_sparsity", allow_zero=True) == 0.0
    assert sparsity.check_sparsity(0.75) == 0.75


@pytest.mark.parametrize("m_by_n", [(4, 2), (2, 2), (0, 4), (2,), "2:4", (2.0, 4), (True, 4)])
def test_check_m_by_n_rejects_bad_pairs(m_by_n):
    with pytest.raises(ValueError, match="m_by_n.*0 < m < n"):
        sparsity.check_m_by_n(m_by_n)


def test_m_by_n_groups_run_along_the_input_channels():
    # Dense kernel (in=8, out=2): column 0 is 2:4 sparse along "in", column 1 has one bad group
    kernel = np.array([[0, 1], [5, 0], [0, 2], [6, 3],
                       [7, 0], [0, 0], [8, 4], [0, 5]], dtype=np.float32)
    assert sparsity.m_by_n_violations(kernel, (2, 4), axis=-2) == 1  # column 1's first group [1, 0, 2, 3]
    kernel[0, 1] = 0
    assert sparsity.is_m_by_n_sparse(kernel, (2, 4), axis=-2)
    # TFLite's layout (out, in) groups along its last axis
    assert sparsity.is_m_by_n_sparse(sparsity.tflite_layout(kernel), (2, 4), axis=-1)


def test_m_by_n_depends_on_the_axis():
    kernel = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32)
    assert sparsity.is_m_by_n_sparse(kernel, (2, 4), axis=0)  # each column: 2 zeros in 4
    assert sparsity.m_by_n_violations(kernel, (2, 4), axis=1) == 2  # rows 2 and 3: no zero


def test_a_short_last_group_counts_as_zero_padded():
    # 6 input channels: groups (0..3) and (4, 5 + two zeros of padding)
    column = np.array([0, 0, 1, 1, 1, 1], dtype=np.float32)[:, None]
    assert sparsity.is_m_by_n_sparse(column, (2, 4))  # padding gives the last group its 2 zeros
    assert not sparsity.is_m_by_n_sparse(column, (3, 4))
    # a conv with one input channel: each group is 1 weight + 3 zeros of padding
    first_conv = np.ones((3, 3, 1, 8), dtype=np.float32)
    assert sparsity.is_m_by_n_sparse(first_conv, (2, 4))


def test_tflite_layout_moves_output_channels_first():
    conv = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # (kh, kw, in, out)
    stored = sparsity.tflite_layout(conv)
    assert stored.shape == (5, 2, 3, 4)
    assert stored[4, 1, 2, 3] == conv[1, 2, 3, 4]
    with pytest.raises(ValueError, match="kernel must be"):
        sparsity.tflite_layout(np.ones((3, 3, 3)))


def test_zeros_kept_counts_only_the_zeros_of_before():
    before = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0])
    after = np.array([0, 0, 0, 5, 0, 7], dtype=np.int8)  # one zero lost, one new zero (not counted)
    assert sparsity.zeros_kept(before, after) == pytest.approx(3 / 4)
    assert sparsity.zeros_kept(np.ones(3), np.zeros(3)) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        sparsity.zeros_kept(np.zeros(3), np.zeros(4))
