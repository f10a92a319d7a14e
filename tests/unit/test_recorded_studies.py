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


def test_qat_recovers_at_least_half_of_the_best_ptq_collapse_beyond_the_control():
    from qlab.workbook.studies.bits_picture import BEST_PTQ, CONTROL, QAT, qat_verdict

    tables = recorded("bits_picture")
    assert sorted(tables) == ["mnist_cnn", "mobilenet_v1", "mobilenet_v2"]
    verdict = qat_verdict(pd.concat(tables.values(), ignore_index=True)).set_index("model")
    # the control: a float fine-tune of the same steps costs at most 0.1 points of float accuracy
    assert (verdict["control float accuracy"] >= verdict["float accuracy"] - 0.001).all()
    for model in ("mobilenet_v1", "mobilenet_v2"):  # the best PTQ collapses; QAT wins back >= half
        row = verdict.loc[model]
        assert row["collapses"] and row["best PTQ loss low"] >= 5, model
        assert row["share recovered beyond control and best PTQ"] >= 0.5 and row["gain low"] > 0, model
        assert row["control loss (points)"] >= 5 and row["QAT loss (points)"] < 5, model  # 06's words
    # mnist_cnn: the best PTQ never loses 5 points, and a short QAT does not beat it (06's words)
    cnn = verdict.loc["mnist_cnn"]
    assert not cnn["collapses"] and cnn["QAT accuracy"] < cnn["best PTQ accuracy"]
    for model, t in tables.items():
        eight = t[(t["activation_bits"] == 8) & t["weight_bits"].isin([8, 4])]
        assert (eight["loss vs float (points)"] <= 1.5).all(), model  # "within about a point of float"
        assert set(t[t["activation_bits"] == 8]["evaluated"]) == {"LiteRT file"}
        assert set(t[t["activation_bits"] == 4]["evaluated"]) == {"fake-quant Keras"}
        qat = t[(t["method"] == QAT)]
        assert (qat["steps"] == t[t["method"] == CONTROL]["steps"].iloc[0]).all()
        assert t[t["method"] == BEST_PTQ]["accuracy"].between(0, 1).all()


def test_adaround_repairs_two_bit_rounding_and_adds_nothing_at_four_bits():
    for model, t in recorded("adaround").items():
        ada = t[t["rounding"] == "AdaRound"].set_index(["num_bits", "scheme"])
        assert ada.loc[(2, "per-channel"), "gain low"] > 40, model
        if model == "mnist_cnn":  # 06: a few percent flipped; nothing to add at 4 bits; beats a short QAT
            assert (ada["flipped share"] < 0.1).all()
            assert all(ada.loc[(4, s), "gain low"] <= 0 for s in ("per-tensor", "per-channel"))
            qat = recorded("bits_picture")[model]
            qat2 = qat[(qat["method"] == "QAT") & (qat["weight_bits"] == 2) & (qat["activation_bits"] == 8)]
            assert ada.loc[(2, "per-channel"), "accuracy"] > qat2["accuracy"].iloc[0]


def test_partial_qat_by_layer_type_leaves_float_islands_and_a_measured_pick_beats_a_random_one():
    t = recorded("partial_qat")["mobilenet_v2"].set_index("arm")
    partial = t.loc["qat_partial: Conv2D + Dense quantized, the rest float"]
    whole = t.loc["whole-model QAT, 8-bit (TFMOT default scheme)"]
    assert partial["float_ops"] > 0 == whole["float_ops"] and partial["dequantize_ops"] > 10
    assert partial["size_ratio"] < whole["size_ratio"] and partial["latency_ratio"] > whole["latency_ratio"]
    picked = t[(t["stage"] == "QAT") & (t["selection"] == "sensitivity")].iloc[0]
    assert picked["gain vs random low"] > 0 and picked["gain vs whole low"] > 0


def test_deep_compression_meets_the_issues_bars_and_keeps_zeros_and_clusters_in_the_files():
    """Lesson 09: every model's best stage is >= 12x (CNN) or >= 8x (MobileNets) smaller compressed
    within 0.3 or 0.5 points; the zeros and the clusters are counted in the final int8 files."""
    from qlab.compression.deep_compression import RECIPES
    from qlab.conversion.converter import DC_BARS as BARS
    from qlab.workbook.studies.deep_compression import best_pipeline

    tables = recorded("deep_compression")
    assert sorted(tables) == ["mnist_cnn", "mobilenet_v1", "mobilenet_v2"]
    stages = pd.concat(tables.values(), ignore_index=True)
    best = best_pipeline(stages).set_index("model")
    for model, t in tables.items():
        ratio_bar, points_bar = BARS[model]
        assert best.loc[model, "meets bar"], (model, best.loc[model].to_dict())
        assert best.loc[model, "gzip ratio"] >= ratio_bar and best.loc[model, "loss vs float32 (points)"] <= points_bar
        t = t.set_index("stage")
        pcqat = t.loc["PCQAT int8"]
        assert pcqat["zeros kept"] >= 0.95 and pcqat["values per channel"] <= RECIPES[model].clusters, model
        # the stored size moves at int8 only; the compressed size at every stage
        assert abs(t.loc["pruned", "bytes"] - t.loc["float32", "bytes"]) <= 64
        assert t.loc["float32", "gzip ratio"] < t.loc["pruned", "gzip ratio"] < t.loc["pruned + clustered", "gzip ratio"]
        assert t.loc["pruned + clustered", "gzip ratio"] < t.loc["pruned + clustered, int8 PTQ", "gzip ratio"]
        for column in ("vs float32", "vs control"):
            assert (t[f"{column} low"] <= t[f"{column} (points)"]).all() and \
                (t[f"{column} (points)"] <= t[f"{column} high"]).all()


def test_the_litert_quantizer_meets_the_4bit_bars_and_the_break_is_recovered_in_order():
    """Every model has a 4-bit file within 1 point of float (mnist_cnn's >= 6x smaller); lesson 10's break and repair."""
    from qlab.workbook.studies.litert_quantizer import four_bit_recovery

    tables = recorded("litert_quantizer_4bit")
    assert sorted(tables) == ["mnist_cnn", "mobilenet_v1", "mobilenet_v2"]
    for model, t in tables.items():
        files = t[t["file"] != "float32"]
        assert (files["vs float32 (points)"] > -1).any(), model
        assert (files["size ratio"] > 5).all(), model
        if model == "mnist_cnn":
            assert (files["size ratio"] >= 6).all()
    recovery = four_bit_recovery(pd.concat(tables.values(), ignore_index=True)).set_index("model")
    v1 = recovery.loc["mobilenet_v1"]
    assert v1["break measurable"] and v1["break: loss (points)"] > 0.3
    assert 0 < v1["per-tensor MSE recovered"] < v1["per-channel min-max recovered"] < v1["QAT 4-bit recovered"]


def test_the_quantizers_int8_matches_the_converters_once_calibrated_the_same_way():
    tables = recorded("litert_quantizer_routes")
    for model, t in tables.items():
        by = t.set_index(["quantizer", "calibration"])
        for variant in ("aeq_int8_per_channel", "aeq_int8_per_tensor"):
            assert by.loc[(variant, "moving average"), "first difference"] == "input parameters", model
            assert by.loc[(variant, "moving average"), "identical values"] < 0.05, model
            assert by.loc[(variant, "min/max"), "identical values"] > 0.45, model
    cnn = tables["mnist_cnn"].set_index(["quantizer", "calibration"])
    assert cnn.loc[("aeq_int8_per_tensor", "min/max, builtin kernels"), "identical values"] == 1.0
    v2 = tables["mobilenet_v2"].set_index(["quantizer", "calibration"])
    assert "add" in v2.loc[("aeq_int8_per_channel", "min/max"), "converter parameters found at"]


def test_the_transformer_breaks_at_two_bits_a_layer_group_at_8_bits_repairs_it_and_keras3_qat_beats_its_control():
    """Lesson 11 and the benchmark's goals: the break, its best repair and Keras 3 QAT, read by the same figures."""
    from qlab.workbook.bench.goals import MIN_BREAK_POINTS, MIN_QAT_FILE_AGREEMENT, MIN_REPAIR_SHARE
    from qlab.workbook.studies.transformer import keras3_qat_figures, layer_bits_figures

    t = recorded("layer_bits")["patch_encoder"]
    bits = layer_bits_figures(t)
    assert bits["break_points"] >= MIN_BREAK_POINTS and bits["recovered"] >= MIN_REPAIR_SHARE, bits
    assert (t["gain low"] <= t["gain over the break (points)"]).all() and \
        (t["gain over the break (points)"] <= t["gain high"]).all()
    qat = keras3_qat_figures(recorded("keras3_qat")["patch_encoder"])
    assert qat["gain_low"] > 0 and qat["keras_file_agreement"] >= MIN_QAT_FILE_AGREEMENT, qat
    assert qat["ptq_accuracy"] == pytest.approx(bits["break_accuracy"])  # the same 2-bit file, made twice


def test_keras3s_own_int8_does_not_convert_and_its_int4_file_dequantizes_in_float():
    t = recorded("keras3_quantization")["patch_encoder"]
    rows = {(r["mode"], str(r["block size"])): r for r in t.to_dict(orient="records")}
    float32, int8, int4 = rows[("float32", "-")], rows[("int8", "-")], rows[("int4", "128")]
    assert not int8["converted"] and "'tfl.fully_connected' op" in int8["note"]
    assert int8["weight bytes in memory"] < float32["weight bytes in memory"] / 3  # smaller in memory only
    # int4 converts, into a file larger than float32's that unpacks its weights and multiplies in float
    assert int4["converted"] and int4["file bytes"] > float32["file bytes"]
    assert int4["BATCH_MATMUL"] > float32["BATCH_MATMUL"] and int4["dequantize ops (CAST, DEQUANTIZE)"] > 0
    assert int4["LiteRT accuracy"] == int4["Keras accuracy"]


def test_every_file_tflm_runs_agrees_with_litert_and_the_refusals_are_the_ones_lesson_13_names():
    from qlab.conversion.micro_boards import BOARDS, NRF52840, on_boards

    tables = recorded("micro_runs")
    assert sorted(tables) == ["mnist_cnn", "mobilenet_v1", "mobilenet_v2", "mobilenet_v2_035", "patch_encoder"]
    runs = pd.concat(tables.values(), ignore_index=True)
    ran = runs[runs["refusal"].isna()]
    assert (ran["images"] == 10_000).all() and (ran["top-1 agreement"] >= 0.99).all()
    assert ((ran["micro accuracy"] - ran["litert accuracy"]).abs() <= 0.005).all()
    # TFLM rounds twice where LiteRT's reference FULLY_CONNECTED rounds once: a step at most, on few outputs (4-bit
    # weights have larger scales, a wider window for the two to part: more outputs, still a step)
    compared = ran.dropna(subset=["identical to reference kernels"])
    assert (compared["max steps to reference kernels"] <= 1).all()
    assert (compared.loc[compared["variant"] != "qat_4bit", "identical to reference kernels"] >= 0.97).all()
    assert tables["patch_encoder"]["refusal"].notna().all()  # the LayerNorm's float NEG, in every file
    fits = on_boards(runs[["model", "variant", "flash bytes", "arena bytes", "refusal"]], BOARDS)
    wide = fits[(fits["model"] == "mobilenet_v2") & fits["variant"].str.startswith("int8")]
    assert not wide["fits"].any() and wide["why not"].str.contains("of flash").all()
    narrow = fits[(fits["model"] == "mobilenet_v2_035") & (fits["variant"] == "int8_per_channel")
                  & (fits["board"] == NRF52840.name)]
    assert narrow["fits"].tolist() == [True]
