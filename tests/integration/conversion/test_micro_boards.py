"""The smoke MNIST CNN against the two boards: its int8 file fits both, its float file is refused by name."""

from __future__ import annotations

import pytest

from qlab.conversion import micro
from qlab.conversion.micro_boards import BOARDS, fit_table


@pytest.fixture(scope="module")
def smoke_files():
    """The smoke-size mnist_cnn (shared cache, conftest) as int8_per_channel and float32 files."""
    import qlab

    model = qlab.load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, _), _ = qlab.mnist_for("mnist_cnn", "smoke")
    return {"int8_per_channel": qlab.convert(model, "int8_per_channel", x_train, 100),
            "float32": qlab.convert(model, "float32")}


@pytest.mark.slow
def test_the_int8_cnn_fits_both_boards_and_the_float_one_is_refused(smoke_files):
    table = fit_table(smoke_files).set_index(["file", "board"])
    int8 = table.loc["int8_per_channel"]
    assert int8["fits"].all() and (int8["why not"] == "").all()
    assert (int8["flash bytes"] == len(smoke_files["int8_per_channel"])).all()
    arena = int(int8["arena bytes"].iloc[0])
    # conv1's input (28x28x1) and output (26x26x32) int8 activations are live at once; far within 224 KiB
    assert 28 * 28 + 26 * 26 * 32 <= arena <= BOARDS[0].arena_budget
    assert arena >= micro.measured_arena(micro.micro_interpreter(smoke_files["int8_per_channel"]))
    floats = table.loc["float32"]
    assert not floats["fits"].any() and floats["arena bytes"].isna().all()
    assert floats["why not"].str.startswith("float ops: CONV_2D").all()
