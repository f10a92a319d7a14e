"""Synthetic tensors: reproducible, and shaped like real ones."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics.synthetic import SYNTHETIC_SOURCES, synthetic_depthwise_kernel, synthetic_tensor


@pytest.mark.parametrize("source", SYNTHETIC_SOURCES)
def test_synthetic_tensor_is_reproducible_float32(source):
    a = synthetic_tensor(source, size=1000, seed=3)
    assert a.shape == (1000,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, synthetic_tensor(source, size=1000, seed=3))
    assert not np.array_equal(a, synthetic_tensor(source, size=1000, seed=4))


def test_normal_with_outliers_has_a_few_far_values():
    x = synthetic_tensor("normal + outliers", size=10_000)
    far = np.abs(x) > 7
    assert 2 <= far.sum() <= 20


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match="source must be one of"):
        synthetic_tensor("cauchy")


def test_synthetic_depthwise_kernel_channels_differ_in_scale():
    k = synthetic_depthwise_kernel(32)
    assert k.shape == (3, 3, 32, 1)
    per_channel = np.abs(k).max(axis=(0, 1, 3))
    assert per_channel.max() / per_channel.min() > 30


# ---------------------------------------------------------------- bucket explorer
