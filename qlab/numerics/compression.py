"""Compressed sizes and unique-value counts: what pruning and clustering buy once a file is compressed.

A ``.tflite`` stores every weight densely, so a pruned or clustered model is no smaller on
disk until a general-purpose compressor sees the zeros and the repeated values. TFMOT's
pruning and clustering guides measure that with ``zipfile`` (``ZIP_DEFLATED``); qlab also
gives the ``gzip -9`` size. Both are measured in memory, from the bytes.

Taught in ``09_deep_compression``; :mod:`qlab.compression.cluster` and :mod:`qlab.compression.prune` use it.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from typing import Any

import numpy as np

from qlab.numerics.validate import check_axis, check_int

__all__ = ["gzip_size", "zip_deflate_size", "compressed_sizes", "unique_values_per_channel"]


def _check_bytes(data: Any) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes (e.g. a .tflite file's contents), got {type(data).__name__}")
    return bytes(data)


def gzip_size(data: bytes, level: int = 9) -> int:
    """Bytes of ``data`` compressed by gzip at ``level`` (9: ``gzip -9``).

    Python's ``gzip.compress`` (zlib's deflate) with ``mtime=0``: no time stamp, so the
    same bytes always give the same size. The ``gzip -9`` command is another implementation of the
    same algorithm: its output differs by about 0.1% (86,450 against 86,359 bytes for
    200,000 random bytes of 3 bits each), plus the file name it stores unless ``-n``.
    Taught in ``09_deep_compression``.

    Args:
        data: the bytes to compress, e.g. a ``.tflite`` file's contents.
        level: gzip's compression level, 0 (stored) to 9 (best).
    """
    data = _check_bytes(data)
    level = check_int(level, "level", 0, 9)
    return len(gzip.compress(data, compresslevel=level, mtime=0))


def zip_deflate_size(data: bytes, name: str = "model.tflite") -> int:
    """Bytes of a zip archive holding ``data`` as ``name``, deflated: as TFMOT's guides measure.

    TFMOT's pruning and clustering guides write the ``.tflite`` into a
    ``zipfile.ZipFile(..., compression=zipfile.ZIP_DEFLATED)`` at zlib's default level
    and report the archive's size; the archive's headers hold ``name`` twice, so the
    size includes ``2 * len(name)`` bytes plus about 100 bytes of headers.
    Taught in ``09_deep_compression``.
    """
    data = _check_bytes(data)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty file name, got {name!r}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return len(buffer.getvalue())


def compressed_sizes(data: bytes, name: str = "model.tflite") -> dict[str, int]:
    """``{"bytes", "gzip9", "zip_deflate"}``: a file's size stored, ``gzip -9``-ed and zipped as TFMOT does.

    Taught in ``09_deep_compression``.
    """
    data = _check_bytes(data)
    return {"bytes": len(data), "gzip9": gzip_size(data, 9), "zip_deflate": zip_deflate_size(data, name)}


def unique_values_per_channel(array: Any, axis: int | None = -1) -> np.ndarray:
    """The number of distinct values in each slice of ``array`` along ``axis`` (one per channel).

    A kernel clustered to ``k`` centroids per tensor has at most ``k`` distinct values in
    each output channel; after batch-norm folding (each channel scaled by its own factor)
    or int8 quantization (each channel its own scale) that still holds per channel, though
    no longer per tensor. ``axis=None`` counts the whole tensor (an array of one count).
    Taught in ``09_deep_compression``.

    Args:
        array: a weight tensor (float or integer), e.g. a Conv2D kernel (kh, kw, in, out).
        axis: the output-channel axis (-1 for Conv2D/Dense kernels, 0 for TFLite's
            CONV_2D/FULLY_CONNECTED weights), or None for the whole tensor.
    """
    values = np.asarray(array)
    if values.size == 0:
        raise ValueError(f"array is empty (shape {values.shape}); it needs at least one value")
    if values.ndim == 0 or axis is None:
        return np.array([np.unique(values).size])
    axis = check_axis(axis, values.ndim)
    rows = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    return np.array([np.unique(row).size for row in rows])
