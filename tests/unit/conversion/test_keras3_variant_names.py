"""Keras 3's own quantization modes as variants: offered for Keras 3 models only, and in their "all"."""

from __future__ import annotations

import pytest

from qlab.conversion.converter import KERAS3_VARIANTS, VARIANTS, check_variants
from qlab.ptq.keras3_quantize import VARIANT_MODES, check_mode


def test_all_adds_the_keras3_modes_for_a_keras3_model_only():
    assert check_variants("all") == list(VARIANTS)
    assert check_variants("all", keras3=True) == [*VARIANTS, *KERAS3_VARIANTS]
    assert check_variants("float32, keras_int4", keras3=True) == ["float32", "keras_int4"]
    assert not set(KERAS3_VARIANTS) & set(VARIANTS)


def test_naming_a_keras3_mode_for_a_tf_keras_model_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\['keras_int8'\] are Keras 3's own model.quantize modes.*zoo model "
                                         r"'mnist_cnn' is a tf_keras model; its variants: float32, "):
        check_variants(["float32", "keras_int8"], model="zoo model 'mnist_cnn'")
    with pytest.raises(ValueError, match=r"unknown variant\(s\) \['keras_int2'\].*keras_int4_per_channel"):
        check_variants("keras_int2", keras3=True)


def test_every_keras3_variant_is_a_valid_quantize_mode():
    assert list(VARIANT_MODES) == list(KERAS3_VARIANTS)
    assert VARIANT_MODES["keras_int4"] == ("int4", 128) and VARIANT_MODES["keras_int4_per_channel"] == ("int4", None)
    for mode in VARIANT_MODES.values():
        assert check_mode(*mode) == mode
