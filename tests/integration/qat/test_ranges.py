"""Honest QAT ranges: the table against the data, the calibrated start, the trajectory callback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qlab.qat import ranges as qat_ranges
from qlab.ptq import ranges
from qlab.workbook.studies import range_start
from qlab.zoo.keras2 import keras


@pytest.fixture(scope="module")
def smoke_cnn():
    """The smoke-size mnist_cnn and 100 of its training images (session cache, conftest)."""
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x_train, y_train), _ = mnist_for("mnist_cnn", "smoke")
    return model, x_train[:100], y_train[:100]


def test_range_mismatch_by_hand():
    # a [-6, 6] range over ReLU data in [0, 0.83]: 11.17 / 0.83 too wide, 0.83 / 12 of 255 steps used
    m = qat_ranges.range_mismatch(-6.0, 6.0, 0.0, 0.83)
    assert m["width mismatch"] == pytest.approx((12 - 0.83) / 0.83)
    assert m["levels used"] == pytest.approx(0.83 / 12 * 255 + 1)
    assert m["data clipped %"] == 0.0
    exact = qat_ranges.range_mismatch(0.0, 1.0, 0.0, 1.0)
    assert exact == {"width mismatch": 0.0, "levels used": 256, "levels wasted %": 0.0, "data clipped %": 0.0}
    assert qat_ranges.range_mismatch(0.0, 0.5, 0.0, 1.0)["data clipped %"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="max > min"):
        qat_ranges.range_mismatch(1.0, 1.0, 0.0, 1.0)


def test_ema_closed_form_matches_the_update_rule():
    width, target = 12.0, 0.83
    for _ in range(300):
        width = 0.999 * width + 0.001 * target
    assert qat_ranges.ema_width(300, 12.0, 0.83) == pytest.approx(width, rel=1e-9)
    n = qat_ranges.ema_steps_to_within(12.0, 0.83)
    assert n == 4900
    assert qat_ranges.ema_width(n, 12.0, 0.83) <= 1.1 * 0.83 < qat_ranges.ema_width(n - 1, 12.0, 0.83)
    assert qat_ranges.ema_steps_to_within(1.0, 1.05) == 0
    with pytest.raises(ValueError, match="ema_decay"):
        qat_ranges.ema_steps_to_within(12.0, 0.83, ema_decay=1.0)
    with pytest.raises(ValueError, match="target_width"):
        qat_ranges.ema_steps_to_within(12.0, 0.0)


def test_table_maps_every_activation_quantizer_and_sees_the_initial_range(smoke_cnn):
    model, x, _ = smoke_cnn
    qat_model = qat_ranges.calibrated_qat_model(model, x)  # data ranges ...
    table = qat_ranges.qat_range_table(qat_model, model, x)
    found = ranges.activation_quantizers(qat_model)
    assert list(zip(table["quantizer"], table["kind"])) == [(q.layer, q.kind) for q in found]
    assert table["tensor"].tolist() == [ranges.INPUT, "conv1", "conv2", "dense", "logits"]
    np.testing.assert_allclose(table["width mismatch"], 0.0, atol=1e-6)
    assert table["matches"].all()
    conv1 = found[1]
    conv1.min_var.assign(-6.0), conv1.max_var.assign(6.0)  # ... then TFMOT's start on conv1
    row = qat_ranges.qat_range_table(qat_model, model, x).set_index("tensor").loc["conv1"]
    assert row["width mismatch"] == pytest.approx((12 - row["data max"]) / row["data max"], rel=1e-5)
    assert not row["matches"] and row["levels wasted %"] > 50


def test_calibrated_start_has_the_float_min_max_and_no_initial_range(smoke_cnn):
    model, x, _ = smoke_cnn
    qat_model = qat_ranges.calibrated_qat_model(model, x)
    assert ranges.initial_ranges_left(qat_model) == []
    conv2 = np.asarray(keras.Model(model.inputs, model.get_layer("conv2").output)(x))
    variables = {v.name.split("/")[-1][:-2]: float(v.numpy()) for v in qat_model.get_layer("quant_conv2").weights
                 if v.name.endswith(("activation_min:0", "activation_max:0"))}
    assert variables == {"post_activation_min": min(0.0, float(conv2.min())),
                         "post_activation_max": pytest.approx(float(conv2.max()), rel=1e-6)}
    # without calibration every activation quantizer starts at TFMOT's [-6, 6]
    from qlab.qat.quantize import quantize_whole_model

    left = ranges.initial_ranges_left(quantize_whole_model(model))
    assert {"quant_conv1/post_activation", "quant_logits/post_activation"} <= set(left)


def test_trajectory_records_every_step_and_moves_towards_the_data(smoke_cnn):
    from qlab.qat.training import fine_tune
    from qlab.qat.quantize import quantize_whole_model

    model, x, y = smoke_cnn
    qat_model = quantize_whole_model(model)
    data = ranges.activation_ranges(model, x, qat_model=qat_model)
    recorder = qat_ranges.RangeTrajectory(["conv1", "quant_dense"], data)
    info = fine_tune(qat_model, x, y, batch_size=20, verbose=0, callbacks=[recorder])
    table = recorder.table()
    assert info["steps"] == 5 and len(table) == 2 * (5 + 1)  # the start, then one row per step
    assert table.groupby("quantizer")["step"].apply(list).tolist() == [list(range(6))] * 2
    conv1 = table[table["tensor"] == "conv1"].set_index("step")
    assert (conv1.loc[0, "min"], conv1.loc[0, "max"]) == (-6.0, 6.0)
    # every step moves 0.1% of the gap: the range only shrinks towards [0, data max]
    assert np.all(np.diff(conv1["max"]) < 0) and np.all(np.diff(conv1["min"]) > 0)
    assert conv1.loc[5, "min"] == pytest.approx(-6.0 * 0.999**5, rel=1e-5)  # ReLU: batch min is 0
    assert conv1["data_max"].iloc[0] == pytest.approx(float(data.set_index("tensor").loc["conv1", "range max"]))
    check = qat_ranges.ema_check(table)
    assert check["measured width"].to_numpy() == pytest.approx(check["predicted width"].to_numpy(), rel=1e-3)
    assert "5 steps" in repr(recorder)


def test_bad_arguments_raise(smoke_cnn):
    from qlab.qat.quantize import quantize_whole_model

    model, x, _ = smoke_cnn
    qat_model = quantize_whole_model(model)
    with pytest.raises(ValueError, match="not activation quantizers.*quant_conv1"):
        qat_ranges._pick_quantizers(qat_model, ["conv9"])
    with pytest.raises(ValueError, match="quantizers"):
        qat_ranges._pick_quantizers(qat_model, 99)
    with pytest.raises(TypeError, match="quantizers"):
        qat_ranges.RangeTrajectory(quantizers=1.5)
    with pytest.raises(ValueError, match="data_ranges"):
        qat_ranges.RangeTrajectory(data_ranges={"min": 0})
    with pytest.raises(ValueError, match="x has shape"):
        qat_ranges.qat_range_table(qat_model, model, x[..., 0])
    other = keras.Sequential([keras.Input(model.input_shape[1:]), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, name="out")])
    with pytest.raises(ValueError, match=r"no layer\(s\) \['conv1', 'conv2', 'dense'\]"):
        qat_ranges.qat_range_table(qat_model, other, x)
    with pytest.raises(ValueError, match="tolerance"):
        qat_ranges.qat_range_table(qat_model, model, x, tolerance=-1)


@pytest.mark.slow
def test_range_start_study_compares_both_starts_on_the_smoke_model():
    study = range_start.range_start_study("mnist_cnn", "smoke", calib_samples=100, quantizers=["conv1"])
    accuracy = study.accuracy.set_index("start")
    assert accuracy.index.tolist() == ["default", "calibrated"] and (accuracy["steps"] == 2).all()
    assert accuracy.loc["calibrated", "matching"] == accuracy.loc["calibrated", "quantizers"] == 5
    assert accuracy.loc["default", "matching"] < 5  # two steps leave [-6, 6] nearly in place
    assert study.differences["evaluated_with"].tolist() == ["keras", "int8"]
    assert len(study.trajectory) == 2 * 3 and study.ema["steps"].tolist() == [2]
    with pytest.raises(ValueError, match="size"):
        range_start.range_start_study("mnist_cnn", "huge")


def test_ema_check_leaves_out_a_quantizer_that_starts_at_zero_width():
    # the input's AllValuesQuantizer starts at [0, 0]: no EMA to check (it used to raise)
    rows = [{"step": s, "quantizer": q, "tensor": q, "min": lo, "max": hi, "data_min": 0.0, "data_max": 1.0}
            for s in (0, 1) for q, lo, hi in (("quantize_layer", 0.0, float(s)), ("quant_conv1", -6.0 * 0.999**s,
                                                                                 6.0 * 0.999**s + 0.001 * s))]
    check = qat_ranges.ema_check(pd.DataFrame(rows))
    assert check["quantizer"].tolist() == ["quant_conv1"]
    assert check["measured width"].iloc[0] == pytest.approx(check["predicted width"].iloc[0], rel=1e-6)
