"""Keras 3's GPTQ and AWQ on the smoke encoder, measured against round-to-nearest (about 30 s).

The smoke encoder comes from the run's shared cache. GPTQ and AWQ run on 4 training images: enough for
calibration to change integers when it runs. Measured with Keras's hooks moved onto ``quantized_call`` (what
keras-team/keras#23512 does), the same table on this encoder says 14.5 % (GPTQ) and 30.4 % (AWQ) of the
integers differ from round-to-nearest; as Keras 3.15.1 ships, 0.0.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from qlab.ptq.keras3_gptq import keras3_calibrated_table
from qlab.zoo import transformer


@pytest.fixture(scope="module")
def table():
    model = transformer.load_or_train_encoder("smoke", 0, verbose=0)
    (x_train, _), (x_test, y_test) = transformer.encoder_data("smoke")
    return keras3_calibrated_table(model, x_train[:4], x_test, y_test,
                                   rows=[("int4", 4, 32), ("gptq", 4, 32), ("awq", 4, 32)]).set_index("method")


def test_keras_int4_is_the_round_to_nearest_reference(table):
    assert table.loc["int4", "differs from round-to-nearest"] == 0.0
    assert table.loc["int4", "weight bytes in memory"] < table.loc["float32", "weight bytes in memory"] / 4


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
