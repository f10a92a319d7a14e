"""Every notebook, executed by papermill in a fresh kernel (the copies go to a private folder).

Each notebook records its key numbers with ``qlab.record``; CHECKS says what must hold for them
in any mode, FULL_CHECKS what the lesson text claims at full size (the break, the recovery, the
failures), checked when the notebooks run in full mode: ``QLAB_NOTEBOOK_MODE=full pytest
tests/notebooks`` (about 20 minutes, with the models cached in the
checkout's ``artifacts/``). ``make test`` runs smoke mode: under a
minute per notebook on 2 cores.

A lesson with exercises runs twice: as committed, where every check must say "not done yet" and
the lesson still runs to the end, and with the solutions of ``solutions/`` filled in, each
after a deliberately wrong answer (``wrong_answers/``) whose hint the check must give; that second
run stops after the last exercise, since no later cell uses an answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qlab.workbook.exercise_cells import exercise_id, exercise_ids, filled_notebook, read_answers, solutions_path
from qlab.workbook.notebook import notebook_paths, run_notebook

WRONG_ANSWERS_DIR = Path(__file__).with_name("wrong_answers")


def wrong_answers(notebook: Path) -> dict[str, tuple[str, str]]:
    """Exercise id -> (a deliberately wrong answer, a piece of the hint it must get), from
    ``wrong_answers/<lesson>.py``: each section's first line is ``# expect: <piece of the hint>``."""
    path = WRONG_ANSWERS_DIR / f"{notebook.stem}.py"
    result = {}
    for exercise, code in (read_answers(path).items() if path.exists() else ()):
        first, answer = code.split("\n", 1)
        assert first.startswith("# expect: "), f"{path}: {exercise} must start with '# expect: <hint>'"
        result[exercise] = (answer, first[len("# expect: "):])
    return result


# notebook name -> {record name: predicate on its value}
CHECKS = {
    "00_start_here.ipynb": {"environment_ok": lambda v: v is True},
    "01_buckets.ipynb": {
        "int8_codes_2_to_2_3": lambda v: v == [25, 25, 26, 27, 28],
        "buckets_spanned_by_window": lambda v: v["8"] == 4 and v["4"] == 1,
        "fake_quant_mismatches_vs_tensorflow": lambda v: v == 0,
        "sqnr_db_by_range_method": lambda v: v["min MSE"] >= v["min/max"] > 25,
        "range_shift": lambda v: v["clipped_fraction"]["requested [2, 10], slid by TensorFlow"] > 0.2
        and v["sqnr_db"]["widened to [0, 10]"] > v["sqnr_db"]["requested [2, 10], slid by TensorFlow"] + 20,
        "sqnr_db_by_scheme": lambda v: v["ReLU outputs (>= 0)"]["asymmetric"]
        > v["ReLU outputs (>= 0)"]["symmetric"] + 4,
    },
    "02_error_accumulation.ipynb": {
        "aligned_accumulator": lambda v: v > 10 * 32767,
        "requantized_3353": lambda v: v == 7,
        "chain_sqnr_db_per_tensor": lambda v: v[0] > v[-1] + 5 and v[0] > 25,
        "per_channel_gain_db": lambda v: len(v) == 8 and min(v) > 1,  # better at every layer
        "what_if_sqnr_last_layer": lambda v: v["int16 (int64 accumulator)"]
        > v["int8, int32 accumulator (TFLite)"] + 30 > v["int4"] + 30,
    },
    "03_float_baselines.ipynb": {
        "keras_accuracy": lambda v: sorted(v) == ["mnist_cnn", "mobilenet_v1", "mobilenet_v2"]
        and all(0 <= a <= 1 for a in v.values()),
        # float32 TFLite = Keras to within one of the (smoke: 500) test images
        "tflite_accuracy": lambda v: len(v) == 6 and all(
            abs(v[f"{m}/float32"] - v[f"{m}/float16"]) <= 0.002 for m in ("mnist_cnn", "mobilenet_v2")),
        "float16_size_ratio": lambda v: all(1.8 < r < 2.0 for r in v.values()),
    },
    "04_post_training_quantization.ipynb": {
        "raw_converter_matches_qlab": lambda v: v is True,
        "ptq_accuracy": lambda v: len(v) >= 4 and all(0 <= a <= 1 for a in v.values()),
        "ptq_size_ratio": lambda v: v["mnist_cnn/int8_per_channel"] > 3.5 and v["mnist_cnn/int16x8"] > 3,
        "ptq_output_sqnr_db": lambda v: all(s > 20 for s in v.values()),
        "int16x8_sqnr_gain_db": lambda v: len(v) >= 1 and all(g > 0 for g in v.values()),
        "ptq_latency_ratio": lambda v: len(v) % 3 == 0 and all(r > 0 for r in v.values()),
        # the [0, 255] representative set: input scale 1.0 instead of 1/255, and a real loss
        "live_failure_accuracy": lambda v: v["pixels_0_255"] < v["proper"] - 0.05,
        "live_failure_input_scale": lambda v: abs(v["pixels_0_255"] - 1.0) < 1e-6
        and abs(v["proper"] - 1 / 255) < 1e-7,
        "failure_accuracy": lambda v: len(v) % 6 == 0 and all(0 <= a <= 1 for a in v.values()),
        "failure_delta_interval": lambda v: all(lo <= hi for lo, hi in v.values())
        and v["mnist_cnn/proper"][0] > -0.05,  # the fix: no real loss
        "failures_costing_5_points": lambda v: {"mnist_cnn/blank", "mnist_cnn/pixels_0_255"} <= set(v),
        "initial_ranges_left": lambda v: v == [],
        "minmax_route_vs_converter": lambda v: v["top1_agreement"] >= 0.98
        and v["matching_activation_params"][0] == v["matching_activation_params"][1] >= 5,
        "estimator_accuracy": lambda v: len(v) >= 4 and all(0 <= a <= 1 for a in v.values()),
        "estimator_output_sqnr_db": lambda v: all(v[k] > v[k[:-1] + "4"] for k in v if k.endswith("/8")),
        "estimator_agreement_with_converter": lambda v: v["mnist_cnn/minmax"] >= 0.98,
        "input_quantization_matches_tflite": lambda v: v is True,
        "intsim_mismatches_vs_reference": lambda v: v == 0,
    },
    "05_per_channel.ipynb": {
        "layer_sqnr_db": lambda v: v["per-channel"] >= v["per-tensor"],
        "median_gain_db": lambda v: all(g >= 0 for g in v.values()) and len(v) >= 4,
        # distinct scales: the written-out converter = qlab's variant, one per weight tensor
        # (FULLY_CONNECTED repeats one scale per channel); per-channel convolutions have many
        "scales_per_weight_tensor": lambda v: v["converter, written out"] == v["qlab int8_per_tensor"]
        and all(s == 1 for s in v["qlab int8_per_tensor"])
        and all(s > 1 for op, s in zip(v["ops"], v["qlab int8_per_channel"]) if op == "CONV_2D"),
        "stored_levels_low_bits": lambda v: 2 <= v <= 7,  # 3-bit weights: at most 7 levels in the int8 file
        "weight_bits_accuracy": lambda v: len(v) % 4 == 0 and len(v) >= 8
        and all(0 <= a <= 1 for a in v.values()),
        "per_channel_gap_points": lambda v: all(lo - 1e-9 <= g <= hi + 1e-9 for g, lo, hi in v.values()),
        "channel_spread": lambda v: all(s["max"] >= s["median"] >= 1 for s in v.values()),
        "largest_gap": lambda v: v["bits"] == 3 and v["low"] <= v["points"] <= v["high"],
        "cle_float_cost": lambda v: v["CLE, max |score diff| vs the ReLU model"] < 1e-3,
        "cle_closed_share": lambda v: all(0 <= v[k] <= 1 for k in ("per-tensor", "per-channel",
                                                                   "per-tensor + CLE")),
        "constructed_float_max_abs_diff": lambda v: v < 1e-3,
        "constructed_accuracy": lambda v: len(v) == 21 and all(0 <= a <= 1 for a in v.values())
        and v["constructed (x1000 rescaling)/float32"] == v["original/float32"],
        "scheme_size_bytes": lambda v: all(v[k] > v[k.replace("per_channel", "per_tensor")]
                                           for k in v if k.endswith("int8_per_channel"))
        and all(v[k] > v[k.replace("float32", "int8_per_channel")] for k in v if k.endswith("float32")),
    },
    "06_quantization_aware_training.ipynb": {
        "written_out_matches_shortcut_ops": lambda v: v is True,
        "low_bit_scheme_bits": lambda v: v == ["3"],  # the written-out scheme puts 3-bit kernel quantizers in
        # section 2's four methods, every one a file; QAT's 3-bit weights stored as INT4
        "low_bit_contrast": lambda v: set(v) == {"float (original)", "float (control fine-tune)", "PTQ per-tensor",
                                                 "PTQ per-channel MSE", "control: float fine-tune + PTQ per-channel MSE",
                                                 "QAT"}
        and v["QAT"]["stored weights"] == "INT4"
        and v["QAT"]["gain low"] <= v["QAT"]["QAT gain vs control (points)"] <= v["QAT"]["gain high"],
        "wrapped_layers": lambda v: v == 7,  # 2 conv, 2 pool, flatten, 2 dense
        "conv1_by_hand_equal_fraction": lambda v: v > 0.99,  # fake_quant + float conv == the QAT layer
        "conv1_by_hand_max_steps_off": lambda v: v <= 1.0,
        "ste_gradient": lambda v: set(v) == {0.0, 1.0} and v[0] == 0.0 and v[6] == 1.0 and v[-1] == 0.0,
        "qat_range_mismatch": lambda v: 0 <= v["matching"] <= v["quantizers"] >= 4,
        "ema_steps": lambda v: v["needed"] > max(v["section 1"], v["zoo budget"]) and v["TFMOT guide"] == 2,
        # the zoo's QAT fine-tunes start from the data: every range matches it
        "cached_qat_range_mismatch": lambda v: v["matching"] == v["quantizers"] >= 4,
        # from the data, every range matches; from [-6, 6] fewer do, with the same steps
        "range_start_accuracy": lambda v: v["matching"]["calibrated"] > v["matching"]["default"],
        "range_start_difference": lambda v: all(v["low"][k] <= v["difference"][k] <= v["high"][k]
                                                for k in ("keras", "int8")),
        "agreement_count": lambda v: v[1] > 0 and v[0] >= 0.9 * v[1],
        # the FakeQuant before the ReLU: the file follows Keras less closely
        "placement": lambda v: v["keras_tflite_sqnr_db"]["correct"] > v["keras_tflite_sqnr_db"]["pre_activation"] + 5
        and v["keras_tflite_agreement"]["correct"] >= v["keras_tflite_agreement"]["pre_activation"],
    },
    "07_custom_quantization.ipynb": {
        "dense_only_float_ops": lambda v: v >= 4,  # the convolutions and pools stay float32
        "conv2_levels_per_channel_max": lambda v: 2 < v <= 15,  # narrow 4-bit: -7..7
        # per-axis Dense: the converter refuses; per-tensor 4-bit: packed as INT4, runs like Keras
        "custom_config_conversion": lambda v: v["per-channel"]["converts"] is False
        and "mismatched quantized axes" in v["per-channel"]["reason"]
        and v["per-tensor"]["stored weight types"] == {"CONV_2D": {"INT4": 2}, "FULLY_CONNECTED": {"INT4": 2}}
        and abs(v["per-tensor"]["Keras accuracy"] - v["per-tensor"]["file accuracy"]) < 0.05,
        "qat_4bit_weight_types": lambda v: all(set(kinds) == {"INT4"} for ops in v.values()
                                               for kinds in ops.values()),
        "qat_4bit_size_ratio": lambda v: all(1.5 * v["qat_int8"][m] < v["qat_4bit"][m] for m in v["qat_4bit"]),
        "qat_4bit_accuracy": lambda v: all(0 <= a <= 1 for d in v.values() for a in d.values()),
    },
    "08_compare_and_debug.ipynb": {
        "accuracy": lambda v: len(v) % 9 == 0 and all(0 <= a <= 1 for a in v.values()),
        "size_ratio": lambda v: all(v[k] > 2.0 for k in v if k.endswith("/int8_per_channel"))
        and all(v[k] > 1.8 for k in v if k.endswith("/float16")),
        "latency_ratio": lambda v: len(v) % 9 == 0 and all(r > 0 for r in v.values()),  # qat_4bit has a file too
        "top1_agreement": lambda v: len(v) % 9 == 0 and all(0 <= a <= 1 for a in v.values())
        and all(v[k] == 1 for k in v if k.endswith("/float32")),
        "variants_tied_with_float": lambda v: isinstance(v, int) and v >= 1,  # float16 at least
        "lowest_output_sqnr_db": lambda v: len(v) == 1 and 0 < next(iter(v.values())) < 60,
        "broken_accuracy": lambda v: sorted(v) == ["float32", "int8_per_channel", "int8_per_tensor"]
        and v["int8_per_tensor"] < v["float32"],
        "worst_layers_rmse_over_scale": lambda v: len(v) >= 1 and max(v.values()) > 3 * 12 ** -0.5,
        "recovery_accuracy": lambda v: v["0"] < max(v.values()),
        # every layer kept in float stores its weights as float32 again
        "recovery_kb_added": lambda v: v["0"] == 0 and all(v[str(k + 1)] > v[str(k)]
                                                          for k in range(len(v) - 1)),
        "recovery_share": lambda v: _shares(v),
        "greedy_recovery_share": lambda v: _shares(v),
        "per_kb_recovery_share": lambda v: _shares(v),
        "per_kb_kb_added": lambda v: all(v[str(k + 1)] > v[str(k)] for k in range(len(v) - 1)),
        "recovery_layers": lambda v: len(v) >= 2 and len(set(v)) == len(v),
        "recovery_file_kb": lambda v: v["all int8"] < v["first layer in float"] <= 1.01 * v["float32"],
        "half_recovered": lambda v: set(v) == {"debugger", "greedy", "greedy_per_kb"}
        and all(x["recovered_share"] >= 0.5 for x in v.values() if _reached(x)),
        "depth_relative_rmse": lambda v: 0 < v["first"] <= v["max"] < 0.2 and 0 < v["last"] <= v["max"],
        "accumulated_over_same_input_median": lambda v: v >= 1,
        "same_input_relative_rmse": lambda v: 0 < v["min"] <= v["max"] < 0.2,
    },
    "09_deep_compression.ipynb": {
        "written_out_sparsity": lambda v: len(v) == 4 and all(abs(x - 0.75) <= 0.01 for x in v.values()),
        # a pruned file stores every zero: same bytes, and only the compressor sees them
        "pruned_file_bytes": lambda v: v["pruned"] == v["float32"],
        "pruned_file_gzip_bytes": lambda v: v["pruned"] < 0.5 * v["float32"],
        "sparse_storage": lambda v: v["densify_ops"] >= 1 and v["accuracy"] == v["pruned_accuracy"],
        "pruned_latency_ratio": lambda v: len(v) == 3 and all(r > 0 for r in v.values()),
        # the break and the repair: plain QAT loses the zeros and the clusters, the preserving schemes keep them
        "zeros_kept": lambda v: v["PQAT"] >= 0.95 and v["int8 PTQ"] >= 0.95 and v["plain QAT"] < 0.5,
        "zeros_gzip_bytes": lambda v: v["PQAT"] < 0.8 * v["plain QAT"] and v["PQAT"] < 1.1 * v["int8 PTQ"],
        "written_out_unique_values": lambda v: len(v) == 4 and all(1 < n <= 8 for n in v.values()),
        "values_per_channel": lambda v: v["CQAT"] <= 8 and v["int8 PTQ"] <= 8 and v["plain QAT"] > 8,
        "clusters_gzip_bytes": lambda v: v["CQAT"] < 0.8 * v["plain QAT"],
        "recipe": lambda v: v["sparsity"] == 0.75 and v["clusters"] == 8,
        # every stage compresses further; the int8 rows beat the float ones
        "stage_gzip_ratio": lambda v: all(
            v[f"{m}/PCQAT int8"] > v[f"{m}/pruned + clustered"] > v[f"{m}/pruned"] > 2
            and v[f"{m}/pruned, int8 PTQ"] > v[f"{m}/pruned"] for m in {k.split("/")[0] for k in v}),
        "stage_accuracy": lambda v: all(0 <= a <= 1 for a in v.values()),
        # "the stored size changes only at int8"
        "stage_bytes": lambda v: all(abs(v[f"{m}/{s}"] - v[f"{m}/float32"]) <= 64 for m in {k.split("/")[0] for k in v}
                                     for s in ("pruned", "clustered", "pruned + clustered"))
        and all(b < 0.4 * v[k.split("/")[0] + "/float32"] for k, b in v.items() if "int8" in k),
        "best_pipeline": lambda v: "mnist_cnn" in v,
        "untouched": lambda v: all(r["ceiling: float32 gzip / untouched gzip"] > r["PCQAT gzip ratio"]
                                   for r in v.values()),
        "claims": lambda v: len(v) >= 6 and all(r > 1 for r in v.values()),
    },
    "10_litert_quantizer.ipynb": {
        "shortcut_matches_written_out": lambda v: v is True,
        # "they differ before the first op: the input scale", under the Quantizer's calibration just under 1/255
        "first_difference_default": lambda v: v["what"] == "input parameters" and v["op_index"] == -1
        and _scale(v["a"]) < _scale(v["b"]) == pytest.approx(1 / 255, rel=1e-6),
        # each difference taken away brings the file closer to the converter's
        "ladder": lambda v: [r["calibration"] for r in v] == ["moving average", "min/max", "min/max, builtin kernels"]
        and v[0]["first difference"] == "input parameters" and v[0]["identical values"] < 0.1
        and min(v[1]["identical values"], v[2]["identical values"]) > 0.99,
        "calibrated_max": lambda v: v["XNNPACK"] == pytest.approx(v["builtin"], rel=1e-5),
        "weight_rounding": lambda v: v == {} or abs(v["a"] - v["b"]) == 1,
        "routes": lambda v: len(v) % 6 == 0 and all(
            r["first difference"] == "input parameters" for r in v if r["calibration"] == "moving average"),
        # the break: a single 4-bit config leaves the depthwise convs float; the layered recipe is integer-only
        "non_integer_ops_single_vs_layered": lambda v: v["single 4-bit config"] >= 3 and v["layered (aeq_int4_static)"] == 0,
        "four_bit": lambda v: len(v) % 11 == 0 and all(r["size ratio"] > 5 for r in v if r["file"] != "float32"),
        "four_bit_recovery": lambda v: len(v) >= 1,
        "four_bit_best": lambda v: len(v) >= 1,
        "custom_recipe": lambda v: v["weights"]["CONV_2D"] == {"FLOAT32": 1, "INT4": 1}
        and v["weights"]["FULLY_CONNECTED"] == {"INT4": 2} and v["non_integer_ops"] == 3,
        "typo_error": lambda v: "'conv9' matches no op" in v and "conv1" in v,
        "validation_snr_gap_db": lambda v: v["min"] > 0,
        "debugger_rmse_per_step": lambda v: len(v) == 4,
        # the op tables: full-integer files of both routes are integer-only, the float-activation ones are not
        "zoo_non_integer_ops": lambda v: len(v) == 12 and all(
            v[k] == 0 for k in ("int8_per_channel", "int8_per_tensor", "qat_4bit", "aeq_int8_per_channel",
                                "aeq_int8_per_tensor", "aeq_int4_static"))
        and v["int16x8"] == 2 and all(v[k] > 0 for k in ("dynamic_int8", "aeq_dynamic_int8", "aeq_int4_weight_only",
                                                         "aeq_int4_blockwise")),
        "zoo_accuracy": lambda v: len(v) == 12 and all(0 <= a <= 1 for a in v.values()),
    },
    "11_transformers.ipynb": {
        "float_accuracy": lambda v: 0 < v <= 1,
        # the full-int8 file's float islands are the LayerNorm's NEG and the borders around it
        "converter_files": lambda v: v["full int8"]["non_integer_ops"] < v["dynamic range"]["non_integer_ops"]
        and v["full int8"]["bytes"] < v["float32"]["bytes"] / 2,
        "int8_float_ops": lambda v: v == ["DEQUANTIZE", "NEG", "QUANTIZE"],
        "refusal_16x8": lambda v: "16x8" in v and "'NEG'" in v,
        "a16": lambda v: v["bytes"] > 0 and 0 <= v["accuracy"] <= 1,
        # Keras 3's int8 model does not convert; its int4 file is larger than float32 and computes in float
        "keras_files": lambda v: set(v) == {"int4, blocks of 128"}
        and v["int4, blocks of 128"]["ops"].get("BATCH_MATMUL", 0) > v["int4, blocks of 128"]["ops"].get(
            "FULLY_CONNECTED", 0) and all(v["int4, blocks of 128"]["ops"].get(op, 0) > 0 for op in ("CAST", "SUB", "MUL")),
        "keras_weight_bytes": lambda v: v["int4, blocks of 128"] < v["int8"] < v["float32"] / 3,
        "keras_accuracy": lambda v: len(v) == 3,
        "keras_table": lambda v: v[0]["mode"] == "float32" and v[0]["converted"] is True,
        "weight_bits_accuracy": lambda v: set(v) == {"8", "4", "2"},
        "bits_table": lambda v: len(v) == 4 and v[0]["recovered"] == pytest.approx(1) and v[1]["recovered"] == 0,
        "tfmot_refusals": lambda v: set(v) == {"the Keras 3 encoder", "MultiHeadAttention in tf_keras",
                                               "LayerNormalization in tf_keras"}
        and "is not supported" in v["MultiHeadAttention in tf_keras"],
        "fake_quant_levels": lambda v: v <= 3,
        "qat_table": lambda v: [r["method"][:3] for r in v] == ["PTQ", "con", "QAT"],
        "repairs": lambda v: len(v) == 5,
        # model.export runs the same converter: it refuses int8, and gives int4 the converter's ops
        "exported": lambda v: set(v) == {"int4, blocks of 128"} and v["int4, blocks of 128"]["same_ops"] is True,
        "outlier_ratio": lambda v: len(v) == 4 and all(r >= 1 for r in v.values()),
        "smooth_table": lambda v: v[0]["setting"] == "float" and len(v) >= 3,
    },
    "12_your_own_model.ipynb": {
        "unsupported_layers": lambda v: v == [],
        "accuracy": lambda v: len(v) == 6 and all(0 <= a <= 1 for a in v.values()),
        "size_ratio": lambda v: v["int8_per_channel"] > 2 and 1.5 < v["float16"] < 2,
        "layer_rmse_over_scale": lambda v: len(v) >= 4,
        # a Keras 3 model: every variant measured, its tf_keras rebuild within the tolerance
        "keras3_accuracy": lambda v: set(v) == {"float32", "float16", "dynamic_int8", "int8_per_channel",
                                                "int8_per_tensor", "int16x8", "qat_int8", "qat_partial",
                                                "qat_4bit"} and all(0 <= a <= 1 for a in v.values()),
        "keras3_rebuild_max_abs_diff": lambda v: 0 <= v <= 1e-4,
    },
    "13_microcontrollers.ipynb": {
        "first_image": lambda v: 0 <= v["digit"] <= 9,
        # TFLM follows LiteRT's reference kernels; its arena holds at least conv1's input and output at once
        "run": lambda v: v["reference_identical"] >= 0.9 and v["reference_max_steps"] <= 1
        and v["top1_agreement"] >= 0.9 and v["arena_bytes"] >= 28 * 28 + 26 * 26 * 32,
        "allocates_10000": lambda v: v is False,
        "runs": lambda v: all((r["refusal"] is None) == (r["micro accuracy"] is not None) for r in v)
        and _row(v, "mnist_cnn", "dynamic_int8")["refusal"].startswith("float ops")
        and _row(v, "mnist_cnn", "int8_per_channel")["refusal"] is None,
        "fits": lambda v: all(r["fits"] == (r["why not"] == "") for r in v),
        "depth": lambda v: all(0 <= r["identical"] <= 1 for r in v.values()),
        # width 0.35: a file under a quarter of the wide one's, and it fits the nRF52840
        "narrow": lambda v: v["narrow_bytes"] < v["wide_bytes"] / 4 and v["fits"]["mobilenet_v2_035 int8"] is True,
    },
}


def _row(rows: list[dict], model: str, variant: str) -> dict:
    """The record of one file of lesson 13's ``runs``."""
    return next(r for r in rows if r["model"] == model and r["variant"] == variant)


# notebook name -> {record name: predicate}, full mode only: the claims of the lesson text
FULL_CHECKS: dict[str, dict] = {
    "04_post_training_quantization.ipynb": {
        # at least two wrong representative sets cost 5 points or more (whole interval)
        # (blank images: near chance on every model; [0, 255] pixels: the CNN)
        "failures_costing_5_points": lambda v: {"mnist_cnn/blank", "mnist_cnn/pixels_0_255",
                                                "mobilenet_v1/blank", "mobilenet_v2/blank"} <= set(v),
        # int16 activations: outputs several dB closer to float where top-1 cannot tell
        "int16x8_sqnr_gain_db": lambda v: len(v) == 3 and all(g > 3 for g in v.values()),
        "minmax_route_vs_converter": lambda v: v["top1_agreement"] >= 0.999
        and v["matching_activation_params"][0] == v["matching_activation_params"][1],
        # at 3-bit activations the MSE-optimal range beats min-max on every model
        "estimator_accuracy": lambda v: all(v[f"{m}/mse/3"] > v[f"{m}/minmax/3"]
                                            for m in ("mnist_cnn", "mobilenet_v1", "mobilenet_v2")),
    },
    "05_per_channel.ipynb": {
        # per-tensor breaks on an unmodified zoo model: a gap of 5 points or more, interval above 0
        # live, on GAP_MODEL, the model the recorded sweep finds the largest gap in
        "largest_gap": lambda v: v["bits"] == 3 and v["points"] >= 5 and v["low"] > 0 and v["sweep_model"] == v["model"],
        "per_channel_gap_points": lambda v: max(lo for g, lo, hi in v.values()) >= 5,
        # equalization closes at least half of that gap, and changes the float scores by rounding only
        "cle_closed_share": lambda v: v["share"] >= 0.5
        and v["share_with_bias_correction"] >= v["share"] - 0.05,
        "cle_float_cost": lambda v: v["CLE, max |score diff| vs the ReLU model"] < 1e-3,
        # the constructed model: per-tensor int8 loses >= 20 points, CLE is within 1 point of float,
        # per-channel and 16x8 each repair part of it
        "constructed_accuracy": lambda v: _constructed_collapse(v, "constructed (x1000 rescaling)")
        and v["constructed (x100 rescaling)/float32"]
        - v["constructed (x100 rescaling)/int8_per_tensor"] >= 0.20,
    },
}


FULL_CHECKS["01_buckets.ipynb"] = {
    # section 2's text: min/max about 31.8 dB, percentile 32.1, MSE 32.2, a gain of only 0.4 dB at 8 bits ...
    "sqnr_db_by_range_method": lambda v: [round(v[k], 1) for k in ("min/max", "99.99th percentile", "min MSE")]
    == [31.8, 32.1, 32.2] and round(v["min MSE"] - v["min/max"], 1) == 0.4,
    # ... and 7.2 -> 12.6 dB at 4 bits, about 3.5x less error, the best range about a third of min/max
    "sqnr_db_4_bit": lambda v: (round(v["minmax"], 1), round(v["mse"], 1)) == (7.2, 12.6),
    "clipping_curve": lambda v: 0.9 <= v["8"]["best ratio"] <= 1.0 and 1.05 <= v["8"]["error ratio"] <= 1.2
    and 0.28 <= v["4"]["best ratio"] <= 0.4 and 3.2 <= v["4"]["error ratio"] <= 3.8,
    # section 4: a quarter of the values clipped, about 21 dB slid against 55 dB widened
    "range_shift": lambda v: 0.24 < v["clipped_fraction"]["requested [2, 10], slid by TensorFlow"] < 0.26
    and round(v["sqnr_db"]["requested [2, 10], slid by TensorFlow"]) == 21 and round(v["sqnr_db"]["widened to [0, 10]"]) == 55,
    # section 5: symmetric costs a fraction of a dB on weights, about 6 dB (one bit) on ReLU outputs
    "sqnr_db_by_scheme": lambda v: abs(v["weights (around 0)"]["asymmetric"] - v["weights (around 0)"]["symmetric"]) < 1
    and 5.5 < v["ReLU outputs (>= 0)"]["asymmetric"] - v["ReLU outputs (>= 0)"]["symmetric"] < 6.5,
}


FULL_CHECKS["02_error_accumulation.ipynb"] = {
    # about 32 dB after one layer, about 22 dB after 8 per-tensor; per-channel about 36 and 27, 3-5 dB better
    "chain_sqnr_db_per_tensor": lambda v: (round(v[0]), round(v[-1])) == (32, 22),
    "chain_sqnr_db_per_channel": lambda v: (round(v[0]), round(v[-1])) == (36, 27),
    "per_channel_gain_db": lambda v: 3 <= min(v) and max(v) <= 5.1,
    # int4 about 0 dB, int16 above 70; the 32-bit accumulator: 32 dB instead of 72; requantization 22.4 vs 23.9
    "what_if_sqnr_last_layer": lambda v: abs(v["int4"]) < 1 and v["int16 (int64 accumulator)"] > 70
    and (round(v["int16, int32 accumulator"]), round(v["int16 (int64 accumulator)"])) == (32, 72)
    and (round(v["int8, int32 accumulator (TFLite)"], 1), round(v["int8, activations not requantized"], 1)) == (22.4, 23.9),
}


FULL_CHECKS["06_quantization_aware_training.ipynb"] = {
    # section 2's text: per-tensor ruins the model, the best PTQ loses several points, the control's float model stays
    # good but its PTQ is no better, QAT comes back to within about a point of float, beyond the control
    "low_bit_contrast": lambda v: v["PTQ per-tensor"]["loss vs float (points)"] > 20
    and v["PTQ per-channel MSE"]["loss low"] >= 3
    and v["control: float fine-tune + PTQ per-channel MSE"]["loss vs float (points)"]
    >= v["PTQ per-channel MSE"]["loss vs float (points)"] - 0.5
    and v["float (control fine-tune)"]["loss vs float (points)"] < 0.5
    and v["QAT"]["loss vs float (points)"] < 1.5 and v["QAT"]["gain low"] > 3,
    # TFMOT's [-6, 6] start is still far from the data after the section-1 fine-tune ...
    "qat_range_mismatch": lambda v: v["matching"] < v["quantizers"],
    # ... and costs little at 8 bits (the lesson: "small"), with the same steps
    "range_start_difference": lambda v: abs(v["difference"]["int8"]) < 0.005,
    # the collapse and the recovery: QAT >= half of the best PTQ's loss beyond the control, MobileNets
    "qat_verdict": lambda v: all(v[m]["collapses"] and v[m]["meets bar"] and v[m]["gain low"] > 0
                                 and v[m]["share recovered beyond control and best PTQ"] >= 0.5
                                 and v[m]["control loss (points)"] >= 5 > v[m]["QAT loss (points)"]
                                 for m in ("mobilenet_v1", "mobilenet_v2"))
    and not v["mnist_cnn"]["collapses"] and v["mnist_cnn"]["QAT accuracy"] < v["mnist_cnn"]["best PTQ accuracy"]
    and all(r["control float accuracy"] >= r["float accuracy"] - 0.001 for r in v.values()),
    # "with 8-bit activations, at 8 and 4 weight bits every method is within about a point of float"
    # (against the best 8-bit PTQ, itself within 0.05 points of float)
    "bits_picture_accuracy": lambda v: all(abs(a - v[k.split("/")[0] + "/W8A8/PTQ per-channel MSE"]) < 0.015
                                           for k, a in v.items() if k.split("/")[1] in ("W8A8", "W4A8")),
    # min-max per channel beats MSE clipping at the verdict's width on the MobileNets
    "minmax_vs_mse_per_channel": lambda v: all(v[m][0] > v[m][1] for m in ("mobilenet_v1", "mobilenet_v2")),
    # "most codes at 8 bits, a few percent or less at 2 bits", for QAT and the control
    "changed_codes_percent": lambda v: all(min(v[f"{m}/8"].values()) > 50 and max(v[f"{m}/2"].values()) < 5
                                           for m in ("mnist_cnn", "mobilenet_v1", "mobilenet_v2")),
    # AdaRound: a few percent of the weights flipped repairs 2-bit rounding, beyond a short QAT
    "adaround_lowest_bits": lambda v: v["bits"] == 2 and v["flipped share"] < 0.1 and v["gain low"] > 40
    and v["AdaRound"] > v["qat"],
    "agreement_count": lambda v: v[0] >= 0.999 * v[1],
    "placement": lambda v: v["keras_tflite_agreement"]["correct"] >= 0.9999
    and v["keras_tflite_sqnr_db"]["correct"] > v["keras_tflite_sqnr_db"]["pre_activation"] + 10,
}


FULL_CHECKS["07_custom_quantization.ipynb"] = {
    # 4-bit QAT files: within 0.2 points of float, less than half the size of the 8-bit QAT files ...
    "qat_4bit_accuracy": lambda v: all(abs(v["qat_4bit"][m] - v["float32"][m]) < 0.002 for m in v["float32"]),
    "qat_4bit_size_ratio": lambda v: all(1.5 * v["qat_int8"][m] < v["qat_4bit"][m] < 2 * v["qat_int8"][m]
                                         for m in v["float32"]),
    # ... partial QAT by layer type: float islands, larger and slower than whole-model QAT
    "partial_qat": lambda v: v["float ops"]["qat_partial: Conv2D + Dense quantized, the rest float"] > 0
    and v["float32 size / size"]["qat_partial: Conv2D + Dense quantized, the rest float"]
    < v["float32 size / size"]["whole-model QAT, 8-bit (TFMOT default scheme)"]
    and v["latency / float32"]["qat_partial: Conv2D + Dense quantized, the rest float"]
    > v["latency / float32"]["whole-model QAT, 8-bit (TFMOT default scheme)"],
    # the measured pick beats the random one; a 2-bit file is no smaller than the 4-bit one, which is more accurate
    "partial_qat_gain_vs_random": lambda v: v[1] > 0,
    "two_bit_vs_four_bit": lambda v: v["4-bit size ratio"] >= 0.98 * v["2-bit size ratio"]
    and v["4-bit accuracy"] > v["best 2-bit accuracy"],
}


FULL_CHECKS["08_compare_and_debug.ipynb"] = {
    # the constructed model breaks per-tensor only
    "broken_accuracy": lambda v: v["float32"] - v["int8_per_tensor"] > 0.15
    and abs(v["float32"] - v["int8_per_channel"]) < 0.005,
    # the debugger's worst layer, kept in float, wins back at least half of the loss ...
    "recovery_share": lambda v: v["1"] >= 0.5,
    "recovery_layers": lambda v: v[0] == "dense",
    # ... at the cost of most of a float32 file; ordering by recovery per KB is far cheaper
    "recovery_file_kb": lambda v: v["first layer in float"] > 0.8 * v["float32"],
    "half_recovered": lambda v: _reached(v["greedy_per_kb"])
    and v["greedy_per_kb"]["kb_added"] < 0.2 * v["debugger"]["kb_added"]
    and v["greedy_per_kb"]["recovered_share"] < v["debugger"]["recovered_share"],
    # MobileNetV2's error grows with depth, well beyond the debugger's same-input error
    "depth_relative_rmse": lambda v: v["max"] > 2 * v["first"] and v["last"] < 0.8 * v["max"],
    "accumulated_over_same_input_median": lambda v: v > 1.5,
    "same_input_relative_rmse": lambda v: v["max"] < 10 * v["min"]
    and v["projections median"] > 1.5 * v["other median"],
}

FULL_CHECKS["09_deep_compression.ipynb"] = {
    # the Deep Compression bars (DC_BARS): mnist_cnn >= 12x within 0.3 points, the MobileNets >= 8x within 0.5 points
    "best_pipeline": lambda v: len(v) == 3 and all(r["meets bar"] for r in v.values()),
    # the recipe section 5 describes
    "recipe": lambda v: v == {"sparsity": 0.75, "clusters": 8, "prune_epochs": 3, "cluster_epochs": 1,
                              "qat_samples": 30000},
    # section 6: the MobileNets keep a larger untouched share than the CNN
    "untouched": lambda v: v["mnist_cnn"]["untouched share %"] < 5 < min(v["mobilenet_v1"]["untouched share %"],
                                                                          v["mobilenet_v2"]["untouched share %"]),
}

FULL_CHECKS["10_litert_quantizer.ipynb"] = {
    # min/max: a scale's last float32 bits, from a calibrated max one float32 step apart on the two kernels;
    # builtin kernels: one weight, a float32 tie that float64 rounds the other way
    "ladder": lambda v: v[1]["first difference"] == "output parameters" and v[1]["op"] == "CONV_2D"
    and _scale(v[1]["quantizer side"]) == pytest.approx(_scale(v[1]["converter side"]), rel=1e-6)
    and v[2]["first difference"] == "weights" and v[2]["identical values"] > 0.999,
    "calibrated_max": lambda v: v["XNNPACK"] != v["builtin"],
    "weight_rounding": lambda v: v["float32"] % 1 == 0.5 and v["float64"] % 1 != 0.5 and abs(v["a"] - v["b"]) == 1,
    "routes": lambda v: len(v) == 18 and _routes_as_the_lesson_says(v),
    # the done-when: a 4-bit file of each model within 1 point of float, mnist_cnn's at least 6x smaller
    "four_bit_best": lambda v: len(v) == 3 and all(r["vs float32 (points)"] > -1 for r in v)
    and all(r["size ratio"] >= 6 for r in v if r["model"] == "mnist_cnn"),
    "four_bit": lambda v: len(v) == 33 and all(r["size ratio"] >= 6 for r in v
                                               if r["model"] == "mnist_cnn" and r["file"] != "float32")
    # "MobileNet v1's static files have two ops that are not integer-only"; the converter's none
    and all(r["non-integer ops"] == 2 for r in v if r["model"] == "mobilenet_v1" and r["file"].startswith("static"))
    and all(r["non-integer ops"] == 0 for r in v if r["file"] == "QAT 4-bit (converter)"),
    # the break is measurable on MobileNet v1 only; MSE wins part back, per-channel more, QAT the most
    "four_bit_recovery": lambda v: [r["model"] for r in v if r["break measurable"]] == ["mobilenet_v1"] and all(
        0 < r["per-tensor MSE recovered"] < r["per-channel min-max recovered"] < r["QAT 4-bit recovered"]
        and r["per-tensor OCTAV recovered"] < 0 for r in v if r["break measurable"]),
    "validation_snr_gap_db": lambda v: v["min"] > 6,
    # "about one rounding": no conv or dense layer of the int8 file adds twice the rounding floor
    "debugger_rmse_per_step": lambda v: max(v.values()) < 2 * 12 ** -0.5,
}

FULL_CHECKS["11_transformers.ipynb"] = {
    "float_accuracy": lambda v: v >= 0.97,
    # "at 8 bits the encoder lost little"; "at 2 bits the encoder breaks" (the bar: 2 points)
    "weight_bits_accuracy": lambda v: v["8"] > v["4"] - 0.01 and v["4"] > v["2"] + 0.02 and v["8"] > 0.97,
    # "the attention projections are where the break comes from": attention alone at 2 bits stays broken, the
    # feed-forward alone costs far less; the repair recovers at least half (the bar)
    "bits_table": lambda v: v[2]["recovered"] < 0.5 < v[3]["recovered"] and v[3]["gain low"] > 0,
    "keras_accuracy": lambda v: all(abs(a - v["float32"]) < 0.005 for a in v.values()),  # "and as accurate"
    # "larger than the float32 one"
    "keras_files": lambda v: v["int4, blocks of 128"]["bytes"] > 322_000,
    # section 5: with blocks the file keeps a float32 copy of the kernels; per channel it is smaller than float32
    "keras_table": lambda v: [(r["mode"], r["block size"]) for r in v] == [("float32", "-"), ("int4", 32),
                                                                          ("int4", "per channel")]
    and v[1]["file bytes"] > v[0]["file bytes"] > v[2]["file bytes"] and "float32" in v[1]["file constants"]
    and "float32 287" not in v[2]["file constants"],
    # the done-when: Keras 3 QAT beats the float control with an interval above 0, Keras and the file agree on 99%
    "qat_table": lambda v: v[2]["gain low"] > 0 and v[2]["Keras-file agreement"] >= 0.99
    and v[2]["accuracy"] > v[1]["accuracy"],
    "repairs": lambda v: v["QAT in Keras 3"] > v["keep attention at 8 bits (section 3)"]
    > v["float fine-tune, then PTQ (the control)"] > v["broken"],
    # section 6: "no channel stands out"; at 8 bits no gain outside its interval of zero and nothing lost; the
    # simulation at 3-bit LayerNorm outputs breaks, and smoothing wins back part of it
    "outlier_ratio": lambda v: max(v.values()) < 2,
    "smooth_table": lambda v: v[1]["gain low"] <= 0 <= v[1]["gain high"] and abs(v[2]["loss (points)"]) < 0.2
    and v[3]["loss (points)"] >= 2 and v[3]["gain low"] > 0 and v[3]["recovered"] > 0.25,
}

FULL_CHECKS["13_microcontrollers.ipynb"] = {
    # "agree almost everywhere" with the reference kernels, "some scores a step apart" from XNNPACK, "the top class
    # agrees on nearly every image"
    "run": lambda v: v["reference_identical"] >= 0.98 and v["identical"] < v["reference_identical"]
    and v["top1_agreement"] >= 0.99,
    # section 3's three kinds of refusal, each where the text says; "MobileNet v2 fits neither board: its int8 file
    # alone is larger than either board's flash"; "the LiteRT Quantizer's [4-bit files] are refused, and the
    # converter's QAT 4-bit file trades flash for a larger arena"
    "runs": lambda v: len(v) >= 60
    and all(_row(v, m, "int16x8")["refusal"].startswith("float ops") for m in ("mnist_cnn", "mobilenet_v2"))
    and "NEG" in _row(v, "patch_encoder", "int8_per_channel")["refusal"]
    and _row(v, "mobilenet_v2", "aeq_int8_per_channel")["refusal"].startswith("weights after the FlatBuffer")
    and "FULLY_CONNECTED kernel refuses" in _row(v, "mnist_cnn", "aeq_int4_static")["refusal"]
    and all(r["refusal"] is not None for r in v if r["variant"].startswith("aeq_int4"))
    and _row(v, "mobilenet_v2", "int8_per_channel")["flash bytes"] > 2 * 1024 * 1024
    # section 4: "pruning and clustering shrink the compressed file; the .tflite [...] holds every weight"
    and all(abs(_row(v, m, s)["flash bytes"] / _row(v, m, "int8_per_channel")["flash bytes"] - 1) < 0.02
            for m in ("mnist_cnn", "mobilenet_v1", "mobilenet_v2") for s in ("pruned_int8", "clustered_int8"))
    and all(_row(v, m, "qat_4bit")["flash bytes"] < _row(v, m, "int8_per_channel")["flash bytes"]
            and _row(v, m, "qat_4bit")["arena bytes"] > _row(v, m, "int8_per_channel")["arena bytes"]
            for m in ("mnist_cnn", "mobilenet_v1", "mobilenet_v2")),
    # section 5: "the deeper the model, the fewer outputs stay identical; the top class rarely changes"
    "depth": lambda v: v["mobilenet_v2"]["identical"] < v["mnist_cnn"]["identical"]
    and min(r["top-1 agreement"] for r in v.values()) >= 0.99,
    # "it fits the smaller one"; "a fraction of a point" against the wide model's float32 file; the summary's "width
    # is the lever that shrinks both" (file and arena)
    "narrow": lambda v: v["fits"] == {"mobilenet_v2 int8": False, "mobilenet_v2_035 int8": True}
    and -1 < v["difference"] < 0 and v["micro_top1_agreement"] >= 0.99
    and v["arena_bytes"]["mobilenet_v2_035 int8"] < v["arena_bytes"]["mobilenet_v2 int8"],
}

FULL_CHECKS["12_your_own_model.ipynb"] = {
    # the example CNN: post-training int8 loses hardly anything, qat_int8 (more training) beats float
    "accuracy": lambda v: len(v) == 6 and v["qat_int8"] > v["float32"]
    and v["float32"] - min(v["int8_per_channel"], v["int8_per_tensor"]) < 0.002,
    # the Keras 3 CNN learns MNIST in its short epoch, and no variant (all 9) costs it a point
    "keras3_accuracy": lambda v: len(v) == 9 and v["float32"] > 0.95
    and all(abs(a - v["float32"]) < 0.01 for a in v.values()),
    # "every layer stays near the rounding floor" (1/sqrt(12) steps): none twice above it
    "layer_rmse_over_scale": lambda v: max(v.values()) < 2 * 12 ** -0.5,
}


def _scale(side: str) -> float:
    """The scale in a first_difference side, ``"scale 0.00392156886, zero point -128"``."""
    return float(side.split()[1].rstrip(","))


def _routes_as_the_lesson_says(rows: list) -> bool:
    """Lesson 10's text on the recorded side-by-side table, with min/max calibration."""
    by = {(r["model"], r["quantizer"]): r for r in rows if r["calibration"] == "min/max"}
    builtin = {(r["model"], r["quantizer"]): r for r in rows if r["calibration"] == "min/max, builtin kernels"}
    v2 = by[("mobilenet_v2", "aeq_int8_per_channel")]
    v1 = by[("mobilenet_v1", "aeq_int8_per_channel")]
    return (builtin[("mnist_cnn", "aeq_int8_per_tensor")]["identical values"] == 1.0
            and v2["first difference"] == "output parameters" and "add" in (v2["converter parameters found at"] or "")
            and v1["first difference"] == "output values"
            and v1["quantizer side"].split("op version ")[1] != v1["converter side"].split("op version ")[1]
            and all(r["quantizer non-integer ops"] > 0 for r in rows if r["model"] == "mobilenet_v1")
            and all(r["converter non-integer ops"] == 0 for r in rows))


def _reached(milestone: dict) -> bool:
    """Whether a recovery order reached its milestone (k is None, or NaN once in a table, if not)."""
    return milestone["k"] is not None and milestone["k"] == milestone["k"]


def _shares(shares: dict) -> bool:
    """Recovered shares of a recovery curve: 0 at k = 0, then plausible (NaN if nothing was lost)."""
    return shares["0"] == 0 and all(-2 <= x <= 2 for x in shares.values() if x == x)


def _constructed_collapse(v: dict, model: str) -> bool:
    return (v[f"{model}/float32"] - v[f"{model}/int8_per_tensor"] >= 0.20
            and abs(v[f"{model}/CLE + int8_per_tensor"] - v[f"{model}/float32"]) <= 0.01
            and v[f"{model}/int8_per_tensor"] < v[f"{model}/int8_per_channel"] < v[f"{model}/int16x8"]
            <= v[f"{model}/CLE + int8_per_tensor"])

MODE = os.environ.get("QLAB_NOTEBOOK_MODE", "smoke")
if MODE not in ("smoke", "full"):
    raise ValueError(f"QLAB_NOTEBOOK_MODE must be 'smoke' or 'full', got {MODE!r}")


def checks_for(name: str, mode: str) -> dict:
    """The predicates a run of notebook ``name`` in ``mode`` must satisfy."""
    return {**CHECKS.get(name, {}), **(FULL_CHECKS.get(name, {}) if mode == "full" else {})}


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory):
    """Executed copies go to a private folder; the smoke models they train go to the session's
    shared artifacts (conftest), so later notebooks and tests reuse what earlier ones trained."""
    return tmp_path_factory.mktemp("notebooks-smoke")


@pytest.mark.parametrize("notebook", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_runs_and_records_sane_numbers(notebook, smoke_dir, monkeypatch):
    if MODE == "full":  # use the full-size models already cached in the checkout, not retrain them
        monkeypatch.setenv("QLAB_ARTIFACTS", str(notebook.parents[1] / "artifacts"))
    run = run_notebook(notebook, smoke=(MODE == "smoke"), output_dir=smoke_dir, progress=False)
    checks = checks_for(notebook.name, MODE)
    assert checks, f"{notebook.name} has no CHECKS entry: say which numbers it must record"
    missing = sorted(set(checks) - set(run.records))
    assert not missing, f"{notebook.name} did not record {missing}"
    failed = {name: run.records[name] for name, ok in checks.items() if not ok(run.records[name])}
    assert not failed, f"{notebook.name}: implausible recorded values {failed}"
    # nothing the tests record shows: no output of the lesson mentions a record
    shown = [text for text in output_texts(run.output) if "recorded" in text]
    assert not shown, f"{notebook.name}: outputs mention records: {shown[:3]}"
    # the blanks as committed: every check says "not done yet", and the lesson still ran to the end
    assert attempts(run.records) == {i: ["not done"] for i in exercise_ids(json.loads(notebook.read_text()))}


def output_texts(executed: Path) -> list[str]:
    """The text of every output of an executed notebook (stdout, stderr and text/plain)."""
    texts = []
    for cell in json.loads(Path(executed).read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text", "") or output.get("data", {}).get("text/plain", "")
            texts.append(text if isinstance(text, str) else "".join(text))
    return texts


def attempts(records: dict) -> dict[str, list[str]]:
    """Exercise id -> the status of each check run, in order (from the records qlab.check.exercise makes)."""
    found = {}
    for name, value in records.items():
        if name.startswith("exercise "):
            exercise, number = name[len("exercise "):].split(" #")
            found.setdefault(exercise, {})[int(number)] = value
    return {exercise: [by[n]["status"] for n in sorted(by)] for exercise, by in found.items()}


def hints(records: dict) -> dict[str, str]:
    """Exercise id -> the message of its first check run."""
    return {name[len("exercise "):].split(" #")[0]: value["message"] for name, value in records.items()
            if name.startswith("exercise ") and name.endswith(" #1")}


WITH_EXERCISES = [p for p in notebook_paths() if exercise_ids(json.loads(p.read_text()))]


@pytest.mark.parametrize("notebook", WITH_EXERCISES, ids=lambda p: p.stem)
def test_solutions_pass_and_wrong_answers_get_their_hint(notebook, smoke_dir, tmp_path, monkeypatch):
    """The lesson with its solutions filled in, each after a deliberately wrong answer in a copy of its cell."""
    if MODE == "full":
        monkeypatch.setenv("QLAB_ARTIFACTS", str(notebook.parents[1] / "artifacts"))
    lesson = json.loads(notebook.read_text())
    ids = exercise_ids(lesson)
    expected = wrong_answers(notebook)
    wrong = {i: answer for i, (answer, _) in expected.items()}
    assert wrong, f"{notebook.name}: give at least one exercise a wrong answer in wrong_answers/{notebook.stem}.py"
    filled = filled_notebook(lesson, read_answers(solutions_path(notebook)), before=wrong)
    # up to the last exercise: what follows does not see the answers (the blank run executed it)
    filled["cells"] = filled["cells"][:1 + max(i for i, c in enumerate(filled["cells"]) if exercise_id(c))]
    solved = tmp_path / notebook.name
    solved.write_text(json.dumps(filled))
    run = run_notebook(solved, smoke=(MODE == "smoke"), output_dir=tmp_path / "out", progress=False,
                       cwd=notebook.parent)
    assert attempts(run.records) == {i: ["wrong", "correct"] if i in wrong else ["correct"] for i in ids}
    got = hints(run.records)
    for exercise in wrong:
        assert expected[exercise][1] in got[exercise], (exercise, got[exercise])
