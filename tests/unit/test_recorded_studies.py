"""The committed study tables (``benchmarks/studies/``, recorded by ``qlab bench`` at full size)
hold the facts the lessons teach: the break, the recovery, the failures.

The lessons load these tables for the same weights; their full-mode notebook checks assert the
same facts on the numbers they print. Here they are checked on every run, without a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

STUDIES = Path(__file__).resolve().parents[2] / "benchmarks" / "studies"


def recorded(study: str) -> dict[str, pd.DataFrame]:
    """Zoo model -> the recorded table of ``study``."""
    tables = {}
    for path in sorted(STUDIES.glob(f"{study}-v*-*-full-s0-*.json")):
        data = json.loads(path.read_text())
        tables[data["model"]] = pd.DataFrame(data["table"]["data"], columns=data["table"]["columns"])
    if not tables:
        pytest.fail(f"no recorded {study} study in {STUDIES}: run `make bench`")
    return tables


def test_every_zoo_model_has_the_weight_bit_sweep_with_intervals():
    tables = recorded("weight_bits")
    assert sorted(tables) == ["mnist_cnn", "mobilenet_v1", "mobilenet_v2"]
    for model, t in tables.items():
        quantized = t[t["scheme"].isin(["per-tensor", "per-channel"])]
        assert sorted(set(quantized["num_bits"])) == [2, 3, 4, 5, 6, 8], model
        assert (quantized["delta_low"] <= quantized["accuracy_delta"]).all()
        assert (quantized["accuracy_delta"] <= quantized["delta_high"]).all()


def _scheme(t: pd.DataFrame, bits: int, scheme: str) -> pd.Series:
    return t[(t["num_bits"] == bits) & (t["scheme"] == scheme)].iloc[0]


def test_per_tensor_breaks_and_equalization_closes_at_least_half_of_the_gap():
    best = None
    for model, t in recorded("weight_bits").items():
        for bits in (8, 6, 5, 4, 3, 2):
            channel = _scheme(t, bits, "per-channel")
            if channel["gain low"] >= 5 and (best is None or channel["gain vs per-tensor (points)"] > best[2]):
                best = (model, bits, channel["gain vs per-tensor (points)"])
    assert best is not None, "no model shows a per-channel gain of 5 points or more"
    model, bits, gap = best
    t = recorded("weight_bits")[model]
    closed = _scheme(t, bits, "per-tensor + CLE")["gain vs per-tensor (points)"]
    assert closed >= 0.5 * gap, f"{model} at {bits} bits: CLE closed {closed:.1f} of {gap:.1f} points"
    # equalization changes the float function by rounding only (against the ReLU model it rescales)
    assert t[t["scheme"] == "float, CLE"]["max |score diff| vs ReLU float"].iloc[0] < 1e-3


def test_the_constructed_model_collapses_per_tensor_and_equalization_repairs_it():
    t = recorded("equalization")["mnist_cnn"].set_index(["version", "variant"])["accuracy"]
    for version in ("constructed (x100 rescaling)", "constructed (x1000 rescaling)"):
        assert t[(version, "float32")] - t[(version, "int8_per_tensor")] >= 0.20, version
        assert abs(t[(version, "CLE + int8_per_tensor")] - t[(version, "float32")]) <= 0.01, version
    collapsed = "constructed (x1000 rescaling)"
    assert (t[(collapsed, "int8_per_tensor")] < t[(collapsed, "int8_per_channel")]
            < t[(collapsed, "int16x8")] <= t[(collapsed, "CLE + int8_per_tensor")])


def test_at_least_two_wrong_representative_sets_cost_five_points():
    costly = set()
    for model, t in recorded("calibration_failures").items():
        assert (t[t["representative set"] == "proper"]["delta_low"] <= 0).all(), model
        costly |= {(model, s) for s in t[t["delta_high"] <= -0.05]["representative set"]}
    assert len({s for _, s in costly}) >= 2, costly


def test_mse_ranges_beat_min_max_at_low_activation_bits_and_agree_at_eight():
    for model, t in recorded("range_estimators").items():
        accuracy = t.set_index(["method", "num_bits"])["accuracy"]
        assert accuracy[("mse", 3)] > accuracy[("minmax", 3)], model
        assert abs(accuracy[("mse", 8)] - accuracy[("minmax", 8)]) < 0.002, model
