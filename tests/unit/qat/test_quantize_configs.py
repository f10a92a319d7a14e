"""qlab's QuantizeConfig for Rescaling, which TFMOT's default registry refuses."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.qat import quantize as qat, training
from qlab.zoo.keras2 import keras, tfmot
from qlab.qat.quantize_configs import (RescalingQuantizeConfig, annotate_extra_layers,
                                        extra_config_for, has_extra_layers)

qkeras = tfmot.quantization.keras
L = keras.layers


def rescaling_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([L.Input((8, 8, 1)), L.Rescaling(1 / 255, name="scale"),
                             L.Conv2D(4, 3, use_bias=False), L.BatchNormalization(), L.ReLU(),
                             L.Flatten(), L.Dense(3)], name="with_rescaling")


def test_tfmot_alone_refuses_rescaling():
    # the reason the config exists: if TFMOT learns Rescaling, this test says the config can go
    with pytest.raises(RuntimeError, match="Rescaling.*not supported"):
        qkeras.quantize_model(rescaling_model())


def test_rescaling_config_quantizes_only_the_output_to_8_bits():
    layer = rescaling_model().get_layer("scale")
    config = extra_config_for(layer)
    assert isinstance(config, RescalingQuantizeConfig)
    assert config.get_weights_and_quantizers(layer) == []
    assert config.get_activations_and_quantizers(layer) == []
    (output,) = config.get_output_quantizers(layer)
    assert type(output).__name__ == "MovingAverageQuantizer"
    assert output.get_config() == {"num_bits": 8, "per_axis": False, "symmetric": False,
                                   "narrow_range": False}
    assert extra_config_for(L.Dense(2)) is None


def test_annotation_keeps_the_trained_layers():
    model = rescaling_model()
    annotated = annotate_extra_layers(model)
    assert has_extra_layers(model)
    assert type(annotated.layers[0]).__name__ == "QuantizeAnnotate"
    assert annotated.layers[1] is model.layers[1]  # the conv itself, weights and all


@pytest.mark.parametrize("variant", sorted(training.QAT_BUILDERS))
def test_every_qat_variant_accepts_rescaling(variant):
    model = rescaling_model()
    qat_model = training.QAT_BUILDERS[variant](model)
    wrapped = {getattr(layer, "layer", layer).name: type(getattr(layer, "quantize_config", None)).__name__
               for layer in qat_model.layers}
    # qat_partial only annotates Conv2D/Dense: Rescaling stays float there
    expected = "NoneType" if variant == "qat_partial" else "RescalingQuantizeConfig"
    assert wrapped["scale"] == expected
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype(np.float32)
    assert np.all(np.isfinite(qat_model.predict(x, verbose=0)))


def test_support_table_marks_rescaling_supported():
    table = qat.layer_support_table(rescaling_model()).set_index("layer")
    assert table.loc["scale", "supported"]
    assert table.loc["scale", "note"] == "qlab's RescalingQuantizeConfig"
