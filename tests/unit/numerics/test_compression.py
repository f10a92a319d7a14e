"""Compressed sizes against gzip and zipfile themselves, and unique-value counts against hand cases."""

from __future__ import annotations

import gzip
import os
import zipfile

import numpy as np
import pytest

from qlab.numerics.compression import (compressed_sizes, gzip_size, unique_values_per_channel,
                                       zip_deflate_size)


@pytest.mark.parametrize("level", [1, 6, 9])
def test_gzip_size_is_the_length_of_gzips_own_output(level):
    data = np.random.default_rng(0).integers(0, 4, size=5000, dtype=np.uint8).tobytes()
    assert gzip_size(data, level) == len(gzip.compress(data, compresslevel=level, mtime=0))


def test_zip_deflate_size_matches_tfmots_recipe_on_a_file(tmp_path):
    """TFMOT's guides: ZipFile(..., ZIP_DEFLATED).write(file); the archive's size on disk."""
    data = np.random.default_rng(1).integers(0, 16, size=8000, dtype=np.uint8).tobytes()
    model = tmp_path / "model.tflite"
    model.write_bytes(data)
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as f:
        f.write(model, arcname="model.tflite")
    assert zip_deflate_size(data, "model.tflite") == os.path.getsize(archive)
    # the name is stored twice (local header and central directory)
    assert zip_deflate_size(data, "a_longer_name.tflite") == os.path.getsize(archive) + 2 * 8


def test_zeros_compress_and_random_bytes_do_not():
    zeros = bytes(100_000)
    noise = np.random.default_rng(2).integers(0, 256, size=100_000, dtype=np.uint8).tobytes()
    assert gzip_size(zeros) < 1000 and zip_deflate_size(zeros) < 1000
    # deflate falls back to stored blocks: random bytes grow by a few headers only
    assert 100_000 <= gzip_size(noise) < 100_000 * 1.01
    assert 100_000 <= zip_deflate_size(noise) < 100_000 * 1.01


def test_compressed_sizes_gathers_the_three():
    data = bytes(range(256)) * 40
    assert compressed_sizes(data) == {"bytes": 10240, "gzip9": gzip_size(data, 9),
                                      "zip_deflate": zip_deflate_size(data, "model.tflite")}


def test_sizes_reject_bad_input():
    with pytest.raises(TypeError, match="data must be bytes"):
        gzip_size("text")
    with pytest.raises(ValueError, match=r"level must be an integer in \[0, 9\], got 10"):
        gzip_size(b"x", 10)
    with pytest.raises(ValueError, match="name must be a non-empty"):
        zip_deflate_size(b"x", "")


def test_unique_values_per_channel_counts_each_slice():
    kernel = np.zeros((3, 3, 2, 4), np.float32)
    kernel[..., 0] = 1.0                                      # one value
    kernel[0, :, :, 1] = 2.0                                  # 2.0 and 0.0
    kernel[..., 2] = np.arange(18).reshape(3, 3, 2)           # 18 values
    kernel[..., 3] = np.arange(18).reshape(3, 3, 2) % 3 - 1   # -1, 0, 1
    np.testing.assert_array_equal(unique_values_per_channel(kernel, -1), [1, 2, 18, 3])
    np.testing.assert_array_equal(unique_values_per_channel(kernel, 3), [1, 2, 18, 3])
    np.testing.assert_array_equal(unique_values_per_channel(kernel, None), [19])  # -1 and 0..17 (1, 2 among them)
    # TFLite's CONV_2D weights are (out, kh, kw, in): channel axis 0
    stored = np.moveaxis(kernel, -1, 0).astype(np.int8)
    np.testing.assert_array_equal(unique_values_per_channel(stored, 0), [1, 2, 18, 3])


def test_unique_values_per_channel_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        unique_values_per_channel(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="out of range"):
        unique_values_per_channel(np.zeros((2, 3)), 2)
