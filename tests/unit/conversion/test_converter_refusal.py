"""Which exceptions are the TFLite converter refusing a model (a result), and which are bugs."""

from __future__ import annotations

import pytest

from qlab.conversion.converter import converter_refusal


class ConverterError(Exception):
    """Named like TFLite's: the check goes by the class name, as qlab imports TensorFlow lazily."""


def test_a_converter_error_gives_its_first_error_line_without_the_location():
    exc = ConverterError("<unknown>:0: error: loc(callsite(fused[\"x\"])): 'tfl.fully_connected' op operand #0 "
                         "must be ...\n<unknown>:0: note: see current operation\n<unknown>:0: error: second")
    assert converter_refusal(exc) == "'tfl.fully_connected' op operand #0 must be ..."
    assert converter_refusal(ConverterError("x: error: a plain reason")) == "a plain reason"


def test_the_calibrators_refusal_is_one_line():
    exc = RuntimeError("Quantization to 16x8-bit not yet supported for op: 'NEG'.\n"
                       "Quantization to 16x8-bit not yet supported for op: 'NEG'.")
    assert converter_refusal(exc) == "Quantization to 16x8-bit not yet supported for op: 'NEG'."


@pytest.mark.parametrize("exc", [RuntimeError("shape mismatch"), ValueError("not yet supported for op"),
                                 KeyError("x")])
def test_anything_else_is_not_a_refusal(exc):
    assert converter_refusal(exc) is None


def test_a_refused_conversion_that_carries_its_keras_model_gives_its_reason():
    from qlab.conversion.converter import RefusedConversion

    model = object()
    exc = RefusedConversion("'tfl.fully_connected' op operand #0 must be ...", model)
    assert converter_refusal(exc) == "'tfl.fully_connected' op operand #0 must be ..." and exc.keras_model is model
    assert str(exc) == "the converter refused: 'tfl.fully_connected' op operand #0 must be ..."


def test_the_refused_layer_is_read_from_the_ops_scope():
    from qlab.conversion.converter import refused_layer

    # as TF 2.21 words it for a Keras 3 layer calling tf.linalg.svd (Keras adds _1 to each scope)
    exc = ConverterError('<unknown>:0: error: loc(callsite(fused["Svd:", "svdnet_1/my_svd_1/Svd@__inference_f_145"] '
                         'at callsite(fused["StatefulPartitionedCall:", "StatefulPartitionedCall@__inference_'
                         'signature_wrapper_172"]))): \'tf.Svd\' op is neither a custom op nor a flex op')
    assert refused_layer(exc, ["dense", "my_svd", "dense_1"]) == "my_svd"
    assert refused_layer(exc, ["svdnet_1_x"]) is None
    assert refused_layer(RuntimeError("no location here"), ["my_svd"]) is None
