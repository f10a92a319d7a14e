"""Checks for ``05_per_channel``: graded by the converter's file and by the float model's own outputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.workbook.check import CORRECT, exercise_check

#: Agreement asked of two scales, or of two ranges, that should be equal (float32 rounding only).
RTOL = 1e-4


def _file_scales(model_bytes: bytes, kernel: np.ndarray) -> np.ndarray:
    """The scales the converter wrote for ``kernel`` (a Keras Conv2D kernel, HWIO), found by its shape."""
    from qlab.conversion.tflite_file import file_weights

    stored_shape = tuple(np.transpose(kernel, (3, 0, 1, 2)).shape)  # TFLite stores conv kernels OHWI
    for detail, _, values in file_weights(model_bytes):
        if values.shape == stored_shape:
            return np.asarray(detail["quantization_parameters"]["scales"], dtype=np.float64)
    raise ValueError(f"the file has no conv weight tensor shaped {stored_shape}")


def _scales_hint(mine: np.ndarray, reference: np.ndarray, kernel: np.ndarray) -> str:
    """What is wrong with per-channel scales of the right shape that differ from the file's."""
    ratio = mine / reference
    if np.allclose(ratio, 127 / 128, rtol=RTOL):
        return ("every scale is 127/128 of the converter's: TFLite's weights are narrow_range, levels -127..127, "
                "so a channel's largest |w| lands on code 127.")
    if np.allclose(ratio, ratio[0], rtol=RTOL):
        return (f"every scale is {ratio[0]:.4g} times the converter's: a channel's largest |w| must land exactly "
                "on the largest code of the symmetric, narrow int8 grid (zero point 0).")
    if np.allclose(mine, mine[0], rtol=RTOL):
        return "all your scales are equal: that is one per-tensor scale repeated, not one scale per channel."
    largest_positive = kernel.reshape(-1, kernel.shape[-1]).max(axis=0) / 127
    if np.allclose(mine, largest_positive, rtol=RTOL):
        return ("some channels' scales are too small: in those channels the weight farthest from 0 is negative, "
                "and a symmetric grid must reach it too.")
    i = int(np.argmax(np.abs(np.log(np.abs(ratio) + 1e-30))))
    return (f"output channel {i}: the converter stored the scale {reference[i]:.4g}, yours is {mine[i]:.4g}. "
            "Is each scale taken over the weights of one output channel?")


@exercise_check("05.per_channel_scales", "the int8 per-channel scales of a Conv2D kernel, as the converter stores them")
def check_per_channel_scales(scales: Any, *, kernel: np.ndarray, model_bytes: bytes) -> str | None:
    """``scales`` against the scales the converter wrote for ``kernel`` into ``model_bytes``."""
    kernel = np.asarray(kernel, dtype=np.float64)
    mine = np.asarray(scales, dtype=np.float64)
    channels = kernel.shape[-1]
    if mine.size == 1:
        return (f"one scale for the whole kernel is per-tensor; per-channel gives each of its {channels} "
                "output channels its own.")
    if mine.shape != (channels,):
        return (f"one scale per output channel: {channels} of them (a Keras Conv2D kernel is (height, width, "
                f"input channels, output channels)); yours has shape {mine.shape}.")
    if not np.all(np.isfinite(mine)) or np.any(mine <= 0):
        return "a scale is the width of one bucket: every one must be a positive, finite number."
    reference = _file_scales(model_bytes, kernel)
    if np.allclose(mine, reference, rtol=RTOL):
        return CORRECT
    return _scales_hint(mine, reference, kernel)


def _out_ranges(kernel: np.ndarray) -> np.ndarray:
    """Largest ``|w|`` of each output channel of a Conv2D kernel (HWIO)."""
    return np.abs(kernel).max(axis=(0, 1, 2))


def _in_ranges(kernel: np.ndarray) -> np.ndarray:
    """Largest ``|w|`` over each input channel of a Conv2D kernel (HWIO)."""
    return np.abs(kernel).max(axis=(0, 1, 3))


def _rescaled(model: Any, first: str, second: str, scale: np.ndarray) -> Any:
    """A copy of ``model`` with ``first``'s output channels divided by ``scale``, ``second``'s inputs multiplied."""
    from qlab.zoo.keras2 import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    kernel1, bias1 = model.get_layer(first).get_weights()
    kernel2, *rest = model.get_layer(second).get_weights()
    copy.get_layer(first).set_weights([(kernel1 / scale).astype(np.float32), (bias1 / scale).astype(np.float32)])
    copy.get_layer(second).set_weights([(kernel2 * scale[:, None]).astype(np.float32), *rest])
    return copy


def _equal_ranges_hint(r1: np.ndarray, r2: np.ndarray, after1: np.ndarray, after2: np.ndarray,
                       first: str, second: str) -> str:
    """What went wrong when the rescaled channels do not end with equal ranges in both layers."""
    if np.allclose(after1, r2, rtol=1e-3) and np.allclose(after2, r1, rtol=1e-3):
        return (f"with your scales {first} and {second} swap their channel ranges instead of meeting between them: "
                "you moved the whole ratio across, and equal ranges need only part of it.")
    if np.median(np.abs(np.log(after1 / after2))) > np.median(np.abs(np.log(r1 / r2))):
        return ("after your scaling each channel's ranges in the two layers are further apart than before: "
                "is your scale upside down?")
    i = int(np.argmax(np.abs(np.log(after1 / after2))))
    return (f"after your scaling channel {i} reaches max |w| = {after1[i]:.3g} in {first} and {after2[i]:.3g} in "
            f"{second}; equalization makes the two equal. Are r1 and r2 taken over the right axes of each kernel?")


@exercise_check("05.equalization_scale", "the cross-layer equalization scale of each channel two conv layers share")
def check_equalization_scale(scale: Any, *, model: Any, first: str, second: str, x: np.ndarray) -> str | None:
    """``scale`` applied to the model: its float outputs must not change, and each channel's range must end equal.

    Those two properties define the equalization (Nagel et al. 2019) and leave one scale
    per channel, so the check needs no formula of its own.
    """
    from qlab.ptq.equalize import max_output_difference

    kernel1, kernel2 = model.get_layer(first).get_weights()[0], model.get_layer(second).get_weights()[0]
    if kernel1.ndim != 4 or kernel2.ndim != 4:
        raise ValueError(f"{first!r} and {second!r} must be Conv2D layers")
    s = np.asarray(scale, dtype=np.float64)
    channels = kernel1.shape[-1]
    if s.shape != (channels,):
        return (f"one scale per channel the two layers share: {first}'s {channels} output channels, which are "
                f"{second}'s input channels; yours has shape {s.shape}.")
    if not np.all(np.isfinite(s)):
        return "some of your scales are infinite or NaN."
    tolerance = 1e-3 * max(1.0, float(np.abs(model.predict(x, verbose=0)).max()))
    if not np.all(s > 0) or max_output_difference(model, _rescaled(model, first, second, s), x) > tolerance:
        return ("your scales change the float model's outputs, so they are not a rescaling the ReLU lets through: "
                "relu(x / s) = relu(x) / s holds only for s > 0.")
    r1, r2 = _out_ranges(kernel1), _in_ranges(kernel2)
    after1, after2 = r1 / s, r2 * s
    if np.allclose(after1, after2, rtol=1e-3):
        return CORRECT
    return _equal_ranges_hint(r1, r2, after1, after2, first, second)
