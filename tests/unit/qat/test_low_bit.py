"""The cache keys of lesson 06's low-bit QAT fine-tune and its float control."""

from __future__ import annotations

import pytest

from qlab.qat import low_bit


def test_the_control_does_not_depend_on_the_bit_width_and_qat_does():
    control = [low_bit.low_bit_config("mobilenet_v1", bits, "control") for bits in (2, 3)]
    qat = [low_bit.low_bit_config("mobilenet_v1", bits, "qat") for bits in (2, 3)]
    assert control[0] == control[1] and qat[0] != qat[1]
    assert qat[1]["qat_scheme"] == "default_n_bit(3, 8)"
    assert qat[1]["fine_tune"] == control[1]["fine_tune"]  # the same budget: the control is fair
    assert qat[1]["fine_tune"]["learning_rate"] == low_bit.FINE_TUNE_SETTINGS["mobilenet_v1"][0]
    assert low_bit.low_bit_label("mobilenet_v1", 3, "qat") == "mobilenet_v1-full-s0-qat_w3a8"
    assert low_bit.low_bit_label("mobilenet_v1", 3, "control") == "mobilenet_v1-full-s0-float_tuned"


@pytest.mark.parametrize("args, message", [
    (("mnist_cnn", 3, "float"), "kind must be one of"),
    (("mnist_cnn", 1, "qat"), "weight_bits"),
    (("mnist_cnn", 9, "qat"), "weight_bits"),
    (("resnet", 3, "qat"), "resnet"),
])
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        low_bit.low_bit_config(*args)
