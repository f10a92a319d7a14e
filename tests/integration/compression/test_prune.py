"""Pruning the smoke mnist_cnn: the target sparsity is reached, the zeros reach the .tflite
(densely stored: same file size) and only compression turns them into saved bytes; PQAT keeps them."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.conversion import converter as conversion, tflite
from qlab.compression import prune
from qlab.qat.training import fine_tune
from qlab.numerics.compression import gzip_size

TARGET = 0.75


@pytest.fixture(scope="module")
def pruned_cnn():
    """The smoke mnist_cnn and its 75%-pruned, fine-tuned, stripped copy."""
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, y_train), (x_test, y_test) = mnist_for("mnist_cnn", "smoke")
    steps = 2 * int(np.ceil(len(x_train) / 64))
    pruned = prune.prune_model(model, TARGET, begin_step=0, end_step=prune.pruning_end_step(steps, 4),
                               frequency=4)
    stripped, info = prune.fine_tune_pruned(pruned, x_train, y_train, epochs=2, batch_size=64, verbose=0)
    return model, stripped, info, (x_train, y_train, x_test, y_test)


@pytest.mark.slow
def test_pruned_kernels_reach_the_target_and_the_file_keeps_them_dense(pruned_cnn):
    model, stripped, info, (x_train, _, x_test, y_test) = pruned_cnn
    table = prune.sparsity_table(stripped).set_index("layer")
    assert sorted(info["sparsity"]) == ["conv1", "conv2", "dense", "logits"]
    for name in info["sparsity"]:
        assert abs(table.loc[name, "sparsity"] - TARGET) <= 0.01, name
    assert (prune.sparsity_table(model)["zeros"] == 0).all()  # the float model was copied, not pruned

    float_file = conversion.convert(model, "float32")
    pruned_file = conversion.convert(stripped, "float32")
    stored = prune.tflite_sparsity(pruned_file)
    assert list(stored["op"]) == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert stored["zeros"].sum() == table["zeros"].sum()  # every zero is in the file...
    assert (stored["bytes"] == 4 * stored["size"]).all()  # ...stored as a 4-byte float
    assert abs(len(pruned_file) - len(float_file)) <= 0.01 * len(float_file)
    assert gzip_size(pruned_file) < 0.5 * gzip_size(float_file)  # only compression sees them

    int8_file = conversion.convert(stripped, "int8_per_channel", x_train, 100)
    kept = prune.zeros_kept_in_file(stripped, int8_file)
    assert list(kept["layer"]) == ["conv1", "conv2", "dense", "logits"]
    assert (kept["kept"] == 1.0).all()
    assert tflite.evaluate_tflite(int8_file, x_test, y_test) > 0.5


@pytest.mark.slow
def test_pruning_preserving_qat_keeps_the_zeros_in_the_int8_file(pruned_cnn):
    _, stripped, _, (x_train, y_train, x_test, y_test) = pruned_cnn
    pqat = prune.quantize_preserving_sparsity(stripped)
    fine_tune(pqat, x_train, y_train, epochs=1, batch_size=64, learning_rate=1e-3, description="PQAT")
    int8_file = conversion.convert_qat(pqat)
    kept = prune.zeros_kept_in_file(stripped, int8_file)
    assert len(kept) == 4 and (kept["kept"] >= 0.95).all()
    stored = prune.tflite_sparsity(int8_file)
    assert (stored["dtype"] == "int8").all() and (stored["sparsity"] >= 0.74).all()
    # plain QAT from the same weights lets the pruned weights grow back
    from qlab.qat.quantize import quantize_whole_model

    qat = quantize_whole_model(stripped)
    fine_tune(qat, x_train, y_train, epochs=1, batch_size=64, learning_rate=1e-3, description="QAT")
    assert (prune.zeros_kept_in_file(stripped, conversion.convert_qat(qat))["kept"] < 0.9).any()
    assert tflite.evaluate_tflite(int8_file, x_test, y_test) > 0.5
