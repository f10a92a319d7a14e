"""SmoothQuant on the zoo's transformer (smoke size): the same function, and the table of what it repairs."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.ptq.smooth_quant import SmoothingPair, channel_outliers, smooth_quant, smoothing_pairs
from qlab.zoo import transformer


@pytest.fixture(scope="module")
def encoder():
    """The smoke encoder (from the run's shared cache) and its data."""
    return transformer.load_or_train_encoder("smoke", 0, verbose=0), transformer.encoder_data("smoke")


def test_the_smoothed_encoder_computes_the_same_logits(encoder):
    model, ((x_train, _), (x_test, _)) = encoder
    projections = tuple(f"block{{}}_attention/{part}" for part in ("query", "key", "value"))
    assert smoothing_pairs(model) == [
        pair for i in range(transformer.BLOCKS)
        for pair in (SmoothingPair(f"block{i}_norm1", tuple(p.format(i) for p in projections)),
                     SmoothingPair(f"block{i}_norm2", (f"block{i}_ff1",)))]  # final_norm feeds pooling: left out
    smoothed = smooth_quant(model, x_train[:100], alpha=0.5)
    difference = np.abs(smoothed.predict(x_test, verbose=0) - model.predict(x_test, verbose=0)).max()
    assert difference < 1e-4
    moved = [np.abs(a - b).max() for a, b in zip(smoothed.get_weights(), model.get_weights())]
    assert max(moved) > 1e-2  # the weights did change: the equality is not a copy's
    outliers = channel_outliers(model, x_train[:100])
    assert list(outliers["norm"]) == [pair.norm for pair in smoothing_pairs(model)]
    assert (outliers["max / median"] >= 1).all() and (outliers["channels"] == transformer.D_MODEL).all()


def test_the_table_pairs_each_setting_with_its_smoothed_twin(encoder):
    from qlab.ptq.norm_output_bits import FILE_SETTINGS, smooth_quant_table

    model, ((x_train, _), (x_test, y_test)) = encoder
    table = smooth_quant_table(model, x_train, x_test[:200], y_test[:200], files=("int8_per_channel",),
                               activation_bits=(16, 3), num_samples=50)
    assert list(table["setting"]) == ["float", FILE_SETTINGS["int8_per_channel"],
                                      *(f"simulated: LayerNorm outputs at {b} bits per tensor, their readers' "
                                        "weights 8 bits per channel" for b in (16, 3))]
    rows = table.set_index("setting")
    float_accuracy = rows.loc["float", "accuracy"]
    sixteen, three = rows.iloc[2], rows.iloc[3]
    # 16-bit outputs and 8-bit weights: close to float with or without smoothing (the smoke encoder's
    # near-tied logits can flip an image or two); 3-bit outputs are far noisier
    assert abs(sixteen["accuracy"] - float_accuracy) <= 0.01
    assert abs(sixteen["smoothed accuracy"] - float_accuracy) <= 0.01
    assert min(sixteen["output SQNR (dB)"], sixteen["smoothed output SQNR (dB)"]) > 25
    assert three["output SQNR (dB)"] < sixteen["output SQNR (dB)"] - 10
    for _, row in table.iloc[1:].iterrows():
        assert row["loss (points)"] == pytest.approx(100 * (float_accuracy - row["accuracy"]))
        assert row["gain (points)"] == pytest.approx(100 * (row["smoothed accuracy"] - row["accuracy"]))
        assert row["loss low"] <= row["loss (points)"] <= row["loss high"]
        assert row["gain low"] <= row["gain (points)"] <= row["gain high"]
        if row["loss (points)"] > 0:
            assert row["recovered"] == pytest.approx(row["gain (points)"] / row["loss (points)"])
        else:
            assert np.isnan(row["recovered"])
    assert table.attrs["alpha"] == 0.5 and table.attrs["test images"] == 200
    with pytest.raises(ValueError, match="unknown files"):
        smooth_quant_table(model, x_train, x_test[:10], y_test[:10], files=("int4",))
