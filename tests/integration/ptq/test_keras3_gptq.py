"""Keras 3's GPTQ and AWQ on a tiny Keras 3 classifier, measured against round-to-nearest (about 5 s).

GPTQ's column-by-column update runs eagerly in Keras, so its time grows with every weight column: the smoke
encoder took 26 s, this two-layer model 5. GPTQ and AWQ run on 4 inputs: enough for calibration to change integers
when it runs. Measured with Keras's hooks moved onto ``quantized_call`` (what keras-team/keras#23512 does), the same
table says 6.6 % (GPTQ) and 62.8 % (AWQ) of this model's integers differ from round-to-nearest (14.5 % and 30.4 % on
the smoke encoder); as Keras 3.15.1 ships, 0.0.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from qlab.ptq.keras3_gptq import keras3_calibrated_table


@pytest.fixture(scope="module")
def table():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 8))  # 4 tokens of 8 features, a transformer's input in miniature
    hidden = keras.layers.Flatten()(keras.layers.Dense(16, activation="relu", name="d1")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(hidden))
    rng = np.random.default_rng(0)
    x_test = rng.normal(size=(64, 4, 8)).astype("float32")
    return keras3_calibrated_table(model, rng.normal(size=(4, 4, 8)).astype("float32"), x_test,
                                   rng.integers(0, 10, 64), rows=[("int4", 4, 32), ("gptq", 4, 32), ("awq", 4, 32)],
                                   block_outputs=["head"]).set_index("method")


def test_keras_int4_is_the_round_to_nearest_reference(table):
    assert table.loc["int4", "differs from round-to-nearest"] == 0.0
    # 4-bit kernels; on so small a model the float biases and the group scales keep it above a quarter
    assert table.loc["int4", "weight bytes in memory"] < table.loc["float32", "weight bytes in memory"] / 3


def test_keras_gptq_and_awq_store_round_to_nearest_integers(table):
    # Measured on Keras 3.15.1: calibration never reaches the quantized layers. Model.quantize switches each
    # Dense/EinsumDense to the gptq/awq policy first; the hooks then patch `layer.call` (gptq_core.py
    # `stream_hessians`, awq_core.py `stream_activations`), but Operation.__call__ (ops/operation.py) sends a
    # layer with a quantization mode to `quantized_call`. The Hessian and the activation magnitudes stay zero,
    # so GPTQ propagates no error and every AWQ scale is 1: round to nearest. Fixed upstream in
    # keras-team/keras#23512; when that fix arrives this test fails, and the lesson's text must change with it.
    for method in ("gptq", "awq"):
        assert table.loc[method, "differs from round-to-nearest"] == 0.0, (
            f"Keras {keras.__version__}'s {method} now changes integers: it calibrates; update the lesson")
        assert table.loc[method, "Keras accuracy"] == table.loc["int4", "Keras accuracy"]
        assert table.loc[method, "agreement with float"] == table.loc["int4", "agreement with float"]
    assert np.isnan(table.loc["float32", "differs from round-to-nearest"])
