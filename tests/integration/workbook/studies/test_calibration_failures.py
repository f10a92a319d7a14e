"""The calibration failure study on a real (smoke-size) model: broken sets cost accuracy, the fix does not."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq import representative
from qlab.workbook.studies import calibration_failures as study
from qlab.zoo.keras2 import keras


@pytest.mark.slow
def test_failure_study_on_smoke_cnn_breaks_and_fixes():
    table = study.calibration_failure_study("mnist_cnn", "smoke", 0, verbose=False)
    assert list(table["representative set"]) == list(representative.CALIBRATION_FAILURES)
    rows = table.set_index("representative set")
    assert rows.loc["one_image", "images"] == 1 and rows.loc["proper", "images"] == 100
    assert all(0 <= a <= 1 for a in table["accuracy"])
    # the proper set is within a point of float32; the [0, 255] bug and blank images are not
    assert abs(rows.loc["proper", "accuracy_delta"]) < 0.01
    for kind in ("pixels_0_255", "blank"):
        assert rows.loc[kind, "accuracy"] < rows.loc["proper", "accuracy"] - 0.05
        assert rows.loc[kind, "delta_high"] < 0 and rows.loc[kind, "mcnemar_p"] < 0.01
    assert rows.loc["proper", "output_sqnr_db"] > rows.loc["pixels_0_255", "output_sqnr_db"] + 10
    assert (table["delta_low"] <= table["accuracy_delta"]).all()
    assert (table["accuracy_delta"] <= table["delta_high"]).all()


@pytest.mark.slow
def test_model_level_function_runs_on_any_keras_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)], name="mine")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 8, 8, 1)).astype(np.float32)
    y = np.arange(40) % 10
    table = study.calibration_failures(model, ((x, y), (x[:20], y[:20])),
                                                kinds=["proper", "blank"], num_samples=10)
    assert list(table["model"]) == ["mine", "mine"] and list(table["images"]) == [10, 10]
    with pytest.raises(ValueError, match="unknown kind"):
        study.calibration_failures(model, ((x, y), (x, y)), kinds="typo")
    with pytest.raises(ValueError, match=r"x_test has shape \(40, 9, 9, 1\)"):
        study.calibration_failures(model, ((x, y), (np.zeros((40, 9, 9, 1), np.float32), y)))
