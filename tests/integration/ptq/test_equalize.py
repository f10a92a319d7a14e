"""Folding, cross-layer equalization and the constructed model on the (smoke-size) zoo MobileNets and CNN."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq import batch_norm_folding, equalize
from qlab.zoo.introspect import channel_ranges_table
from qlab.zoo.models import load_or_train, mnist_for


@pytest.fixture(scope="module")
def images():
    return mnist_for("mobilenet_v2", "smoke")[1][0][:64]


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_folding_and_equalization_keep_the_mobilenets_outputs(name, images):
    model = load_or_train(name, "smoke", 0, verbose=0)
    folded = batch_norm_folding.fold_batch_norm(model)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in folded.layers)
    scale = float(np.abs(model.predict(images, verbose=0)).max())
    assert equalize.max_output_difference(model, folded, images) < 1e-5 * scale
    equalized, report = equalize.cross_layer_equalization(model, relu6_to_relu=True)
    relu = batch_norm_folding.relu6_to_relu(folded)
    assert equalize.max_output_difference(relu, equalized, images) < 1e-5 * scale
    assert len(report) >= 26 and report.attrs["sweeps"] >= 1


def test_mobilenet_v1_has_no_exact_pair_without_relu6_replacement():
    with pytest.raises(ValueError, match="relu6_to_relu=True"):
        equalize.cross_layer_equalization(load_or_train("mobilenet_v1", "smoke", 0, verbose=0),
                                          relu6_to_relu=False)
    with pytest.raises(ValueError, match="no pair"):
        equalize.rescale_channels(load_or_train("mobilenet_v1", "smoke", 0, verbose=0))


def test_constructed_mobilenet_v2_is_the_same_function_with_spread_channels(images):
    model = load_or_train("mobilenet_v2", "smoke", 0, verbose=0)
    pairs = equalize.equalization_pairs(batch_norm_folding.fold_batch_norm(model))
    # the only unbranched linear links: every other block output feeds a residual Add too
    assert [(p.first, p.second) for p in pairs] == [("expanded_conv_project", "block_1_expand"),
                                                    ("block_16_project", "Conv_1")]
    constructed = equalize.rescale_channels(model, spread=100.0, seed=0)
    scale = float(np.abs(model.predict(images, verbose=0)).max())
    assert equalize.max_output_difference(model, constructed, images) < 1e-4 * scale
    before = channel_ranges_table(model)["range spread"]
    after = channel_ranges_table(constructed)["range spread"]
    assert after[pairs[0].first] > 3 * before[pairs[0].first]  # largest / median of 16 log-uniform factors
    repaired, _ = equalize.cross_layer_equalization(constructed, relu6_to_relu=False)
    assert channel_ranges_table(repaired)["range spread"][pairs[0].first] < 2 * before[pairs[0].first]


def test_constructed_cnn_breaks_per_tensor_int8_and_equalization_repairs_it():
    from qlab.conversion.converter import convert
    from qlab.conversion.tflite import predict_tflite
    from qlab.numerics.metrics import output_sqnr_db

    model = load_or_train("mnist_cnn", "smoke", 0, verbose=0)
    (x_train, _), (x_test, _) = mnist_for("mnist_cnn", "smoke")
    reference = model.predict(x_test, verbose=0)
    constructed = equalize.rescale_channels(model, spread=1000.0, seed=0)
    repaired, _ = equalize.cross_layer_equalization(constructed, relu6_to_relu=False)
    sqnr = {name: output_sqnr_db(reference, predict_tflite(convert(m, "int8_per_tensor", x_train[:100]), x_test))
            for name, m in (("original", model), ("constructed", constructed), ("repaired", repaired))}
    assert sqnr["constructed"] < sqnr["original"] - 20
    assert abs(sqnr["repaired"] - sqnr["original"]) < 3
