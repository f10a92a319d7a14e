"""N-bit weights (min-max and per-channel MSE) on the smoke-size CNN, through the real converter."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.conversion.converter import convert
from qlab.zoo.models import load_or_train, mnist_for
from qlab.conversion.tflite_file import weight_tensors
from qlab.ptq.weight_bits import fake_quantize_kernel_mse, fake_quantize_weights, fake_quantize_weights_mse


def test_n_bit_weights_survive_conversion_as_n_bit_levels():
    model = load_or_train("mnist_cnn", "smoke", 0, verbose=0)
    x_calib = mnist_for("mnist_cnn", "smoke")[0][0][:50]
    for per_channel, variant in ((False, "int8_per_tensor"), (True, "int8_per_channel")):
        tensors = weight_tensors(convert(fake_quantize_weights(model, 3, per_channel), variant, x_calib))
        assert (tensors["levels"] <= 7).all() and (tensors["dtype"] == "int8").all()
        assert ((tensors["scales"] > 1) == per_channel).any()


def brute_force_mse_kernel(kernel: np.ndarray, num_bits: int, grid: int = 100) -> np.ndarray:
    """Each output channel tried at every clipping ratio k / grid of max|w|; the lowest MSE wins."""
    qmax = 2 ** (num_bits - 1) - 1
    columns = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    out = np.empty_like(columns)
    for c in range(columns.shape[1]):
        w, best = columns[:, c], None
        for k in range(1, grid + 1):
            scale = np.float32(np.float32(k / grid * np.abs(w).max()) / np.float32(qmax))
            restored = np.clip(np.round(w / scale), -qmax, qmax) * scale
            error = np.mean((restored - w) ** 2)
            if best is None or error < best[0] - 1e-15:
                best = (error, restored)
        out[:, c] = best[1]
    return out.reshape(kernel.shape)


@pytest.mark.parametrize("num_bits", [2, 3, 4])
def test_mse_kernel_quantizer_matches_brute_force_and_beats_min_max(num_bits):
    rng = np.random.default_rng(num_bits)
    kernel = rng.standard_t(3, size=(3, 3, 8, 6)).astype(np.float32)  # heavy tails: clipping pays
    ours = fake_quantize_kernel_mse(kernel, num_bits)
    reference = brute_force_mse_kernel(kernel, num_bits)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    columns = kernel.reshape(-1, 6)
    bound = np.abs(columns).max(axis=0)
    qmax = 2 ** (num_bits - 1) - 1
    minmax = np.round(columns / (bound / qmax)) * (bound / qmax)
    ours_error = np.mean((ours.reshape(-1, 6) - columns) ** 2, axis=0)
    minmax_error = np.mean((minmax - columns) ** 2, axis=0)
    assert (ours_error <= minmax_error * (1 + 1e-6)).all()
    assert (ours_error < 0.99 * minmax_error).any()
    assert all(len(np.unique(ours[..., c])) <= 2 * qmax + 1 for c in range(6))


def test_mse_kernel_quantizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_bits"):
        fake_quantize_kernel_mse(np.ones((3, 4), np.float32), 1)
    with pytest.raises(ValueError, match="kernel"):
        fake_quantize_kernel_mse(np.ones(4, np.float32), 4)


def test_mse_weights_model_keeps_n_bit_levels_per_channel():
    model = load_or_train("mnist_cnn", "smoke", 0, verbose=0)
    quantized = fake_quantize_weights_mse(model, 3)
    for layer in quantized.layers:
        if layer.get_weights() and layer.get_weights()[0].ndim >= 2:
            kernel = layer.get_weights()[0]
            columns = kernel.reshape(-1, kernel.shape[-1])
            assert max(len(np.unique(columns[:, c])) for c in range(columns.shape[1])) <= 7
