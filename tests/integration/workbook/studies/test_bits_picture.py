"""The accuracy-versus-bits study on the smoke-size CNN, and its per-channel MSE weight quantizer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qlab.workbook.studies.bits_picture import (BEST_PTQ, CONTROL, CONTROL_FLOAT, FLOAT, PTQ_PER_TENSOR, QAT,
                                                 bits_picture_table, low_bit_contrast, qat_verdict)

QUANTIZED = [PTQ_PER_TENSOR, BEST_PTQ, CONTROL, QAT]


@pytest.fixture(scope="module")
def smoke_table() -> pd.DataFrame:
    return bits_picture_table("mnist_cnn", "smoke", 0, verbose=False)


def test_bits_picture_table_structure(smoke_table):
    t = smoke_table
    assert len(t) == 2 + 4 * 2  # two float rows; 4 methods x weights (8, 2) x activations (8,)
    assert list(t["method"][:2]) == [FLOAT, CONTROL_FLOAT]
    cells = t[t["weight_bits"] < 32]
    assert sorted(set(cells["weight_bits"])) == [2, 8] and set(cells["activation_bits"]) == {8}
    for _, cell in cells.groupby("weight_bits"):
        assert list(cell["method"]) == QUANTIZED
    assert t["accuracy"].between(0, 1).all()
    assert (t["loss low"] <= t["loss vs float (points)"] + 1e-9).all()
    assert (t["loss vs float (points)"] <= t["loss high"] + 1e-9).all()
    assert np.allclose(t["loss vs float (points)"], -100 * t["accuracy_delta"])


def test_qat_and_control_share_the_budget_and_move_weights(smoke_table):
    t = smoke_table
    assert t["steps"].nunique() == 1 and t["steps"].iloc[0] == 2  # 256 images / batch 128
    assert t["learning_rate"].nunique() == 1
    tuned = t[t["method"].isin([QAT, CONTROL])]
    share = tuned["weights with changed code (%)"]
    assert share.between(0, 100).all() and (tuned["weights with changed code"] > 0).all()
    assert (tuned["weights with changed code"] <= tuned["kernel weights"]).all()
    assert t[~t["method"].isin([QAT, CONTROL])]["weights with changed code (%)"].isna().all()
    qat = t[t["method"] == QAT]
    control = t[t["method"] == CONTROL].set_index("weight_bits")["accuracy"]
    gain = 100 * (qat.set_index("weight_bits")["accuracy"] - control)
    assert np.allclose(qat["QAT gain vs control (points)"], gain.loc[qat["weight_bits"]])
    assert ((qat["gain low"] <= qat["QAT gain vs control (points)"])
            & (qat["QAT gain vs control (points)"] <= qat["gain high"])).all()


def test_8_bit_activations_go_through_files_with_n_bit_levels(smoke_table):
    t = smoke_table
    assert (t[t["weight_bits"] == 32]["evaluated"] == "float Keras").all()
    cells = t[t["weight_bits"] < 32]
    assert (cells["evaluated"] == "LiteRT file").all()
    two_bit = cells[cells["weight_bits"] == 2].set_index("method")
    assert (two_bit["max levels per channel"] <= 3).all()
    assert two_bit.loc[QAT, "stored weights"] == "INT4"
    assert two_bit.loc[BEST_PTQ, "stored weights"] == "INT8"


def test_the_live_contrast_with_cached_fine_tunes_is_the_studys_configuration(smoke_table, artifacts):
    """Lesson 06's live break and recovery: the cached QAT and control give the study's numbers."""
    from qlab.qat.low_bit import load_or_fine_tune_low_bit

    live = low_bit_contrast("mnist_cnn", 2, "smoke", 0)
    assert list(live["method"]) == [FLOAT, CONTROL_FLOAT, *QUANTIZED]
    assert (live[live["weight_bits"] == 2]["evaluated"] == "LiteRT file").all()
    study = smoke_table[smoke_table["weight_bits"].isin([2, 32])].set_index("method")
    columns = ["accuracy", "top1_agreement", "QAT gain vs control (points)", "stored weights", "file bytes"]
    pd.testing.assert_frame_equal(live.set_index("method")[columns], study.loc[live["method"], columns],
                                  check_dtype=False)
    # the second call loads both fine-tunes from the cache: the same weights
    control = load_or_fine_tune_low_bit("mnist_cnn", 2, "control", "smoke", 0, verbose=0)
    again = load_or_fine_tune_low_bit("mnist_cnn", 2, "control", "smoke", 0, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(control.get_weights(), again.get_weights()))


def test_4_bit_activations_are_evaluated_in_keras_and_say_so():
    t = bits_picture_table("mnist_cnn", "smoke", 0, verbose=False, weight_bits=(4,),
                           activation_bits=(4,))
    cells = t[t["weight_bits"] == 4]
    assert list(cells["method"]) == QUANTIZED
    assert (cells["evaluated"] == "fake-quant Keras").all()
    assert "stored weights" not in t or t["stored weights"].isna().all()  # no file was made


@pytest.mark.parametrize("kwargs, name", [
    ({"model_name": "resnet"}, "resnet"),
    ({"size": "huge"}, "huge"),
    ({"weight_bits": (8, 1)}, "weight_bits"),
    ({"activation_bits": (16,)}, "activation_bits"),
    ({"weight_bits": 4}, "weight_bits"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"epochs": 0}, "epochs"),
])
def test_bad_arguments_raise_naming_them(kwargs, name):
    arguments = {"model_name": "mnist_cnn", "size": "smoke", "verbose": False, **kwargs}
    with pytest.raises(ValueError, match=name):
        bits_picture_table(**arguments)


def _synthetic(losses: dict[int, float], qat: float, control: float) -> pd.DataFrame:
    rows = [{"model": "m", "weight_bits": 32, "activation_bits": 32, "method": FLOAT, "accuracy": 0.99,
             "loss vs float (points)": 0.0},
            {"model": "m", "weight_bits": 32, "activation_bits": 32, "method": CONTROL_FLOAT,
             "accuracy": 0.99, "loss vs float (points)": 0.0}]
    for bits, loss in losses.items():
        for method, accuracy in ((BEST_PTQ, 0.99 - loss / 100), (CONTROL, control), (QAT, qat)):
            rows.append({"model": "m", "weight_bits": bits, "activation_bits": 8, "method": method,
                         "accuracy": accuracy, "loss vs float (points)": 100 * (0.99 - accuracy),
                         "loss low": 0.0, "loss high": 1.0, "QAT gain vs control (points)": 1.0,
                         "gain low": 0.5, "gain high": 1.5, "steps": 235, "learning_rate": 1e-3})
    return pd.DataFrame(rows)


def test_qat_verdict_picks_the_first_collapse_and_the_share():
    verdict = qat_verdict(_synthetic({8: 0.1, 4: 3.0, 3: 20.0, 2: 60.0}, qat=0.95, control=0.80))
    (row,) = verdict.to_dict("records")
    assert row["weight_bits"] == 3 and row["collapses"]
    assert row["share recovered"] == pytest.approx((0.95 - 0.80) / 0.20)
    assert row["share recovered beyond control and best PTQ"] == pytest.approx((0.95 - 0.80) / 0.20)
    (row,) = qat_verdict(_synthetic({8: 0.1, 3: 20.0}, qat=0.95, control=0.70)).to_dict("records")
    assert row["share recovered"] == pytest.approx(1.25)  # the control fell below the best PTQ
    assert row["share recovered beyond control and best PTQ"] == pytest.approx((0.95 - 0.79) / 0.20)
    assert row["meets bar"]
    verdict = qat_verdict(_synthetic({8: 0.1, 4: 6.0}, qat=0.94, control=0.93))
    assert verdict["weight_bits"].iloc[0] == 4 and not verdict["meets bar"].iloc[0]
    (row,) = qat_verdict(_synthetic({8: 0.1, 4: 4.0}, qat=0.9, control=0.9)).to_dict("records")
    assert row["weight_bits"] == 4 and not row["collapses"] and row["meets bar"] is None
    with pytest.raises(ValueError, match="accuracy"):
        qat_verdict(pd.DataFrame({"model": ["m"]}))


def test_the_contrast_is_described_from_its_own_rows(artifacts):
    from qlab.workbook.studies.bits_picture import contrast_view, describe_contrast

    live = low_bit_contrast("mnist_cnn", 2, "smoke", 0)
    qat = live.set_index("method").loc[QAT]
    sentence = describe_contrast(live)
    assert sentence.startswith("mnist_cnn, 2-bit weights: the best PTQ loses")
    assert f"QAT - control = {qat['QAT gain vs control (points)']:+.1f} points" in sentence
    view = contrast_view(live)
    assert list(view.index) == list(live["method"]) and view["accuracy (%)"].between(0, 100).all()
    assert view.loc[QAT, "weights stored as"] == "INT4" and view.loc[FLOAT, "file bytes"] == 0
    with pytest.raises(ValueError, match="lacks the rows"):
        describe_contrast(live[live["method"] != QAT])
