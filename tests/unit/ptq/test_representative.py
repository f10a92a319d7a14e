"""The broken and proper representative data sets: shapes, dtypes, value ranges, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq.representative import (CALIBRATION_FAILURES, SINGLE_CLASS, broken_representative_data,
                                      check_kinds)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (60, 6, 6, 1)).astype(np.float32)
    x[:, 0, 0, 0] = 0.0  # real images have black pixels and some white ones
    x[:, 1, 1, 0] = 1.0
    y = np.arange(60) % 10
    return x, y


@pytest.mark.parametrize("kind", list(CALIBRATION_FAILURES))
def test_every_set_is_float32_images_shaped_like_x(images, kind):
    x, y = images
    data = broken_representative_data(kind, x, y, num_samples=20, seed=0)
    assert data.dtype == np.float32 and data.shape[1:] == x.shape[1:]
    assert len(data) == {"one_image": 1, "single_class": 6}.get(kind, 20)
    assert np.all(np.isfinite(data))


def test_proper_set_is_distinct_training_images(images):
    x, y = images
    data = broken_representative_data("proper", x, y, 20, seed=3)
    rows = {x_row.tobytes(): i for i, x_row in enumerate(x)}
    picked = [rows[d.tobytes()] for d in data]
    assert len(set(picked)) == 20  # drawn without replacement, all from x
    assert not np.array_equal(data, broken_representative_data("proper", x, y, 20, seed=4))
    np.testing.assert_array_equal(data, broken_representative_data("proper", x, y, 20, seed=3))


def test_pixels_0_255_is_the_proper_set_times_255(images):
    x, y = images
    proper = broken_representative_data("proper", x, y, 20, seed=1)
    scaled = broken_representative_data("pixels_0_255", x, y, 20, seed=1)
    np.testing.assert_allclose(scaled, proper * 255, rtol=1e-6)
    assert scaled.max() == pytest.approx(255.0) and proper.max() <= 1.0


def test_blank_noise_and_single_class_value_ranges(images):
    x, y = images
    assert not np.any(broken_representative_data("blank", x, y, 10))
    noise = broken_representative_data("random_noise", x, y, 10)
    assert noise.min() >= 0.0 and noise.max() <= 1.0 and noise.std() > 0.2  # uniform, std ~ 0.29
    ones = broken_representative_data("single_class", x, y, 10)
    rows = {x_row.tobytes(): label for x_row, label in zip(x, y)}
    assert {rows[d.tobytes()] for d in ones} == {SINGLE_CLASS}  # really one class


def test_one_image_is_one_training_image(images):
    x, y = images
    one = broken_representative_data("one_image", x, y, 50, seed=2)
    assert one.shape == (1, *x.shape[1:]) and any(np.array_equal(one[0], row) for row in x)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "typo"}, "kind must be one of proper, pixels_0_255"),
    ({"num_samples": 0}, r"num_samples must be an integer in \[1, 60\], got 0"),
    ({"num_samples": 61}, r"num_samples must be an integer in \[1, 60\], got 61"),
    ({"x": np.zeros((0, 6, 6, 1), np.float32)}, "x must be a non-empty numpy array"),
    ({"x": np.zeros((60, 6, 6, 1), np.uint8)}, "x must hold finite float32 images, got dtype uint8"),
    ({"x": np.full((60, 6, 6, 1), np.nan, np.float32)}, "finite float32"),
    ({"y": np.zeros(59, np.int64)}, r"y must be integer labels of shape \(60,\)"),
    ({"y": np.zeros(60, np.float32)}, "y must be integer labels"),
])
def test_bad_input_names_the_argument(images, kwargs, message):
    x, y = images
    arguments = {"kind": "proper", "x": x, "y": y, "num_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        broken_representative_data(**arguments)


def test_single_class_without_that_class_is_an_error(images):
    x, y = images
    with pytest.raises(ValueError, match=f"no image of class {SINGLE_CLASS}"):
        broken_representative_data("single_class", x, np.zeros_like(y), 10)


def test_check_kinds():
    assert check_kinds("all") == list(CALIBRATION_FAILURES)
    assert check_kinds("blank,proper") == ["blank", "proper"]
    with pytest.raises(ValueError, match="unknown kind"):
        check_kinds(["blank", "nope"])
