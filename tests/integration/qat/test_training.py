"""QAT fine-tuning helpers on the smoke CNN: an n-bit QAT model started from data, and the codes it changes."""

from __future__ import annotations

import numpy as np

from qlab.qat.training import changed_codes, n_bit_qat_from_data
from qlab.zoo.models import load_or_train, mnist_for


def test_changed_codes_counts_moved_weights():
    model = load_or_train("mnist_cnn", "smoke", 0, verbose=0)
    x_calib = mnist_for("mnist_cnn", "smoke")[0][0][:50]
    qat_model = n_bit_qat_from_data(model, x_calib, 2, 8, "minmax")
    changed, total = changed_codes(qat_model, model)
    assert changed == 0 and total == sum(
        np.prod(layer.get_weights()[0].shape) for layer in model.layers if layer.get_weights())
    moved = load_or_train("mnist_cnn", "smoke", 0, verbose=0)
    kernel = moved.get_layer("conv1").get_weights()
    kernel[0] = -kernel[0]  # every nonzero code flips sign
    moved.get_layer("conv1").set_weights(kernel)
    changed, _ = changed_codes(qat_model, model, moved)
    assert changed > 0
