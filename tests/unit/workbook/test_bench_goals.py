"""qlab.workbook.bench.goals on a small fake results dict: gaps, goals met and missed, notes.

``fake_results``, ``fake_row`` and ``set_row`` are also the fixtures of test_bench_report.py.
"""

import copy

import pytest

from qlab.workbook.bench import goals

ACCURACY = {  # model -> variant -> accuracy; every bound met, qat_int8 of mnist_cnn exactly on it
    "mnist_cnn": {"float32": 0.9925, "int8_per_channel": 0.9920, "int8_per_tensor": 0.9918,
                  "qat_int8": 0.9910, "qat_4bit": 0.9900, "pruned_int8": 0.9920, "pcqat_int8": 0.9895},
    "mobilenet_v2": {"float32": 0.9890, "int8_per_channel": 0.9850, "int8_per_tensor": 0.9500,
                     "qat_int8": 0.9880, "pcqat_int8": 0.9840},
    "mobilenet_v1": {"float32": 0.9885, "int8_per_channel": 0.9870, "int8_per_tensor": 0.9700,
                     "qat_int8": 0.9870, "pcqat_int8": 0.9835},
    # the transformer's best full-integer int8 file exactly 1 point under float32
    "patch_encoder": {"float32": 0.9755, "dynamic_int8": 0.9750, "int8_per_channel": 0.9600,
                      "int8_per_tensor": 0.9550, "aeq_int8_per_channel": 0.9655},
}
#: The transformer's rows without a file: (variant, evaluated_with, note)
ENCODER_NO_FILE = [("int16x8", "refused", "the converter refused: Quantization to 16x8-bit not yet supported "
                                          "for op: 'NEG'"),
                   ("qat_int8", "not applicable", "not applicable: TFMOT needs tf_keras"),
                   ("pcqat_int8", "not applicable", "not applicable: TFMOT needs tf_keras")]
#: What qlab bench keeps of the transformer's recorded studies, every bar hit exactly.
STUDY_FIGURES = {
    "layer_bits": {"patch_encoder": {
        "baseline": "8-bit weights", "break": "all groups at 2 bits",
        "best_repair": "attention (query, key, value, output) at 2 bits, the rest 8",
        "baseline_accuracy": 0.9750, "break_accuracy": 0.9550, "repair_accuracy": 0.9650, "break_points": 2.0,
        "recovered": 0.5, "recovered_low": 0.4, "recovered_high": 0.6}},
    "keras3_qat": {"patch_encoder": {
        "ptq_accuracy": 0.9286, "control_accuracy": 0.9400, "qat_accuracy": 0.9700, "gain_points": 3.0,
        "gain_low": 0.01, "gain_high": 3.5, "keras_file_agreement": 0.99, "steps": 470}},
    "micro_runs": {model: {"files": 4, "ran": 2, "lowest top-1 agreement": 0.99,
                           "fitting": {goals.MICRO_FIT[1]: 1 if model == goals.MICRO_FIT[0] else 0}}
                   for model in goals.MICRO_MODELS},
}
#: float32 gzip / gzip per variant (default 3.8): the Deep Compression bars hit exactly
GZIP_RATIO = {"float32": 1.0, "qat_4bit": 7.0, "pruned_int8": 9.0, "pcqat_int8": None}
DC_BARS = {"mnist_cnn": 12.0, "mobilenet_v1": 8.0, "mobilenet_v2": 8.0}


def fake_row(model, variant, accuracy):
    """One row as qlab bench writes it: 3.5x smaller and faster than float32 (qat_4bit: 6.5x)."""
    ratio = {"float32": 1.0, "qat_4bit": 6.5}.get(variant, 3.5)
    gzip_ratio = GZIP_RATIO.get(variant, 3.8) or DC_BARS[model]
    return {"model": model, "variant": variant, "accuracy": accuracy,
            "size_bytes": int(400_000 / ratio), "size_ratio": ratio,
            "gzip_bytes": int(380_000 / gzip_ratio), "gzip_ratio": gzip_ratio,
            "latency_ms": 0.1 / ratio, "latency_ms_min": 0.09 / ratio, "latency_ms_max": 0.12 / ratio,
            "latency_ratio": 1 / ratio, "latency_ratio_min": 0.9 / ratio,
            "latency_ratio_max": 1.1 / ratio, "keras_accuracy": None,
            "keras_tflite_agreement": 0.999 if variant.startswith("qat") else None,
            "evaluated_with": "litert", "note": None}


def fake_results():
    """A complete results dict in which every goal is met."""
    rows = [fake_row(m, v, a) for m, accs in ACCURACY.items() for v, a in accs.items()]
    rows += [{"model": "patch_encoder", "variant": v, "evaluated_with": how, "note": note}
             for v, how, note in ENCODER_NO_FILE]
    names = [f"{i:02d}_lesson.ipynb" for i in range(goals.PLANNED_NOTEBOOKS)]
    return {
        "schema": 1, "command": "qlab bench", "started": "2026-11-22T08:35:00+00:00",
        "finished": "2026-11-22T09:00:00+00:00", "total_seconds": 1500.0, "skipped": [],
        "environment": {"cpu": "AMD EPYC", "cores": "2", "tensorflow": "2.21.0"},
        "config": {"num_threads": 1, "latency_repeats": 7, "latency_runs": 400},
        "rows": rows, "gaps": goals.accuracy_gaps(rows),
        "scale_spread": {"mobilenet_v2": {"tensor": "depthwise", "channels": 96,
                                          "max_min_scale": 250.0,
                                          "levels_of_smallest_channel_if_per_tensor": 0.5,
                                          "tensors_over_10x": 12, "per_channel_tensors": 30}},
        "size_breakdown": {"mnist_cnn": {"float32": {"float32": 390_000, "other": 10_000},
                                         "int8_per_channel": {"int8": 97_500, "int32": 500,
                                                              "scales_zero_points": 6_000,
                                                              "other": 10_000}}},
        "notebooks_found": names,
        "notebooks": [{"notebook": n, "mode": mode, "seconds": 100.0 if mode == "full" else 10.0,
                       "ok": True, "error": None} for mode in ("full", "smoke") for n in names],
        "widgets": [{"widget": "BucketExplorer", "control": "num_bits", "updates": 15,
                     "median_ms": 40.0, "p90_ms": 55.0, "max_ms": 70.0, "cpu_median_ms": 38.0}],
        "study_figures": copy.deepcopy(STUDY_FIGURES),
    }


def set_row(results, model, variant, **values):
    """Change one row of ``results`` in place; return ``results``."""
    next(r for r in results["rows"] if r["model"] == model and r["variant"] == variant).update(values)
    return results


def test_accuracy_gaps_in_points():
    gaps = {g["model"]: g for g in goals.accuracy_gaps(fake_results()["rows"])}
    assert gaps["mobilenet_v2"]["per_channel_minus_per_tensor"] == pytest.approx(3.5)
    assert gaps["mobilenet_v2"]["qat_int8_minus_int8_per_channel"] == pytest.approx(0.3)
    assert gaps["mnist_cnn"]["drop_qat_int8"] == pytest.approx(0.15)
    assert gaps["mnist_cnn"]["float32_accuracy"] == 0.9925


def test_all_goals_met_on_the_fake_results_with_a_bound_hit_exactly():
    assert goals.check_goals(fake_results()) == []


@pytest.mark.parametrize("change, expected", [
    (lambda r: set_row(r, "mnist_cnn", "qat_int8", accuracy=0.9909), "mnist_cnn qat_int8 within 0.15"),
    (lambda r: set_row(r, "mnist_cnn", "int8_per_channel", accuracy=0.9890),
     "mnist_cnn int8_per_channel within 0.30"),
    (lambda r: set_row(r, "mobilenet_v1", "float32", accuracy=0.984), "mobilenet_v1 float32 accuracy"),
    (lambda r: set_row(r, "mobilenet_v2", "qat_int8", accuracy=0.9855), "mobilenet_v2 qat_int8"),
    (lambda r: set_row(r, "mobilenet_v2", "int8_per_channel", size_ratio=2.9), "3x smaller"),
    (lambda r: set_row(r, "mnist_cnn", "int8_per_tensor", latency_ratio=None), "latency ratio"),
    (lambda r: set_row(r, "mnist_cnn", "qat_4bit", size_bytes=114_285), "smaller than its int8"),
    (lambda r: set_row(r, "mnist_cnn", "qat_4bit", size_bytes=None), "qat_4bit file smaller"),
    # the best Deep Compression variant: under the ratio bar, or over the accuracy bar with nothing else
    # as small (pruned_int8's 9x is then the best within the bar)
    (lambda r: set_row(r, "mobilenet_v1", "pcqat_int8", gzip_ratio=7.9), "mobilenet_v1: a Deep Compression"),
    (lambda r: set_row(r, "mnist_cnn", "pcqat_int8", accuracy=0.9894), "pruned_int8: 9.00x"),
    (lambda r: r["rows"].remove(next(x for x in r["rows"] if x["variant"] == "int8_per_tensor"
                                     and x["model"] == "mobilenet_v1")), "gap measured"),
    # the transformer: float accuracy, its best full-integer int8 file, the break, the repair, QAT
    (lambda r: set_row(r, "patch_encoder", "float32", accuracy=0.9699), "patch_encoder float32 accuracy >= 97.0%"),
    (lambda r: set_row(r, "patch_encoder", "aeq_int8_per_channel", accuracy=0.9654),
     "patch_encoder: its best full-integer int8 file (int8 weights and activations) within 1 point of float32: "
     "aeq_int8_per_channel: 96.54% (-1.01 points)"),
    (lambda r: r["study_figures"]["layer_bits"]["patch_encoder"].update(break_points=1.99),
     "break the 8-bit file by >= 2 points (layer_bits study): 1.99 points (97.50% -> 95.50%, all groups at 2 bits)"),
    (lambda r: r["study_figures"]["layer_bits"]["patch_encoder"].update(recovered=0.49),
     "wins back >= 50% of the break: 49% [40, 60] (attention (query, key, value, output) at 2 bits, the rest 8)"),
    (lambda r: r["study_figures"]["keras3_qat"]["patch_encoder"].update(gain_low=0.0),
     "Keras 3 QAT beats its float fine-tune control, 95% interval above 0 (keras3_qat study): "
     "+3.00 points [+0.00, +3.50] (94.00% -> 97.00%)"),
    (lambda r: r["study_figures"]["keras3_qat"]["patch_encoder"].update(keras_file_agreement=0.9899),
     "agree on >= 99% of top-1 predictions: 98.99%"),
    # the microcontroller runtime: agreement with LiteRT, and the narrow MobileNet on the smaller board
    (lambda r: r["study_figures"]["micro_runs"]["mobilenet_v2"].update({"lowest top-1 agreement": 0.9899}),
     "mobilenet_v2: every file TFLM runs gives LiteRT's top-1 class on >= 99% of test images (micro_runs study): "
     "lowest 98.99% of 2 files"),
    (lambda r: r["study_figures"]["micro_runs"]["mnist_cnn"].update(ran=0), "mnist_cnn: every file TFLM runs"),
    (lambda r: r["study_figures"]["micro_runs"]["mobilenet_v2_035"].update(fitting={}),
     "mobilenet_v2_035: a file fits the Nordic nRF52840 (Arduino Nano 33 BLE Sense) (micro_runs study): 0 file(s) fit"),
])
def test_each_missed_goal_is_reported(change, expected):
    results = fake_results()
    change(results)
    missed = goals.check_goals(results)
    assert len(missed) == 1 and expected in missed[0], missed


def test_notebook_goals_fail_on_a_failure_a_slow_workbook_or_no_timing():
    failed = fake_results()
    failed["notebooks"][3].update(ok=False, error="RuntimeError: boom")
    assert any("03_lesson.ipynb runs to the end" in m for m in goals.check_goals(failed))
    slow = fake_results()
    slow["notebooks"][0]["seconds"] = 601.0  # 12 x 100 s + 601 s = 30.02 min
    assert any("<= 30 min" in m for m in goals.check_goals(slow))
    skipped = fake_results()
    skipped.update(notebooks=[], skipped=["notebooks"])
    assert any("not measured" in m for m in goals.check_goals(skipped))
    assert "notebooks skipped in this run" in goals.notes(skipped)


def test_budgeted_lessons_fail_when_slower_than_their_budget():
    results = fake_results()
    names = [r["notebook"] for r in results["notebooks"]]
    lesson = "05_per_channel.ipynb"
    for row in results["notebooks"]:
        if row["notebook"] == names[5]:
            row["notebook"] = lesson
    assert not any(lesson in m for m in goals.check_goals(results))  # 100 s full, 10 s smoke
    next(r for r in results["notebooks"] if r["notebook"] == lesson and r["mode"] == "smoke")["seconds"] = 61.0
    missed = goals.check_goals(results)
    assert any(f"{lesson} (smoke mode) <= 60 s" in m and "61 s" in m for m in missed), missed
    assert not any(f"{lesson} (full mode)" in m for m in missed)


def test_notebook_totals_add_up_each_mode():
    results = fake_results()
    planned = goals.PLANNED_NOTEBOOKS
    assert goals.notebook_totals(results) == {"full": 100.0 * planned, "smoke": 10.0 * planned}
    assert goals.notebook_totals({"rows": []}) == {}


def test_notes_name_missing_notebooks_and_slow_widgets():
    results = fake_results()
    results["notebooks_found"] = results["notebooks_found"][:4]
    results["widgets"][0]["median_ms"] = 150.0
    text = " ".join(goals.notes(results))
    assert "missing: 04, 05, 06, 07, 08, 09, 10, 11, 12" in text and "BucketExplorer.num_bits (150 ms)" in text
    assert goals.notes(fake_results()) == []


def test_every_widget_controls_p95_is_a_goal_when_the_run_recorded_p95s():
    results = fake_results()
    assert not any("95th percentile" in g["goal"] for g in goals.goal_results(results))  # no p95 yet
    results["widgets"] = [dict(results["widgets"][0], p95_ms=27.4),
                          dict(results["widgets"][0], control="window", p95_ms=31.0)]
    goal = next(g for g in goals.goal_results(results) if "95th percentile" in g["goal"])
    assert goal["ok"] and goal["measured"] == "worst p95 31.0 ms (BucketExplorer.window)"
    assert "(2 controls)" in goal["goal"]
    results["widgets"][1]["p95_ms"] = 50.5
    assert "worst p95 50.5 ms (BucketExplorer.window)" in " ".join(goals.check_goals(results))


def test_goal_results_rejects_something_else():
    with pytest.raises(ValueError, match="'rows'"):
        goals.goal_results({"accuracy": 0.99})


def test_a_model_that_failed_is_named_in_the_notes_and_misses_its_goals():
    results = fake_results()
    results["rows"] = [r for r in results["rows"] if r["model"] != "mobilenet_v1"]
    results["errors"] = {"mobilenet_v1": "RuntimeError: out of memory"}
    assert "`mobilenet_v1` could not be measured: RuntimeError: out of memory" in goals.notes(results)
    # float accuracy, qat_int8, the per-tensor gap and the Deep Compression bar
    assert sum("mobilenet_v1" in m for m in goals.check_goals(results)) == 4


def test_a_size_ratio_far_from_4x_says_where_the_bytes_went():
    results = set_row(fake_results(), "mnist_cnn", "int8_per_channel", size_ratio=2.5)
    missed = goals.check_goals(results)
    assert missed == ["mnist_cnn int8_per_channel file >= 3x smaller than float32: 2.50x "
                      "(scales and zero-points 5%, graph 9% of the file)"]


def test_the_4bit_size_goal_says_both_sizes_and_needs_the_int8_file():
    goal = next(g for g in goals.goal_results(fake_results()) if "qat_4bit" in g["goal"])
    assert goal == {"goal": "mnist_cnn qat_4bit file smaller than its int8_per_channel file",
                    "measured": "60 KB vs 112 KB (0.54x)", "ok": True}
    results = fake_results()
    results["rows"] = [r for r in results["rows"]
                       if (r["model"], r["variant"]) != ("mnist_cnn", "int8_per_channel")]
    missed = [m for m in goals.check_goals(results) if "qat_4bit" in m]
    assert missed == ["mnist_cnn qat_4bit file smaller than its int8_per_channel file: "
                      "int8_per_channel not measured"]


def test_four_bit_goal_takes_the_most_accurate_int4_file_and_mnist_cnns_size_bar():
    results = fake_results()
    results["rows"].append(fake_row("mnist_cnn", "aeq_int4_static", 0.9920))
    goal = next(g for g in goals.goal_results(results) if g["goal"].startswith("mnist_cnn: a 4-bit"))
    # the most accurate INT4 file here is only 3.5x smaller (fake_row's default): below mnist_cnn's 6x bar
    assert not goal["ok"] and goal["measured"] == "aeq_int4_static: -0.05 points, 3.50x"
    set_row(results, "mnist_cnn", "aeq_int4_static", size_ratio=7.4)
    goal = next(g for g in goals.goal_results(results) if g["goal"].startswith("mnist_cnn: a 4-bit"))
    assert goal["ok"] and goal["measured"] == "aeq_int4_static: -0.05 points, 7.40x"
    set_row(set_row(results, "mnist_cnn", "aeq_int4_static", accuracy=0.9800), "mnist_cnn", "qat_4bit", accuracy=0.98)
    assert "mnist_cnn: a 4-bit-weight file within 1 point of float32, at least 6x smaller: qat_4bit: -1.25 points, " \
        "6.50x" in goals.check_goals(results)
    # the MobileNets have no INT4 rows in the fake results: no 4-bit goal for them
    assert not [g for g in goals.goal_results(results) if g["goal"].startswith("mobilenet_v1: a 4-bit")]


def test_refused_and_inapplicable_rows_have_no_file_goals_but_a_missing_file_still_misses():
    results = fake_results()
    names = [g["goal"] for g in goals.goal_results(results)]
    # int16x8 refused, qat_int8 and pcqat_int8 not applicable: no size or latency goal for them
    assert not [n for n in names if n.startswith("patch_encoder int16x8") or n.startswith("patch_encoder qat_int8")]
    assert "patch_encoder dynamic_int8 file >= 2.4x smaller than float32" in names  # its graph is a large share
    set_row(results, "patch_encoder", "int16x8", evaluated_with="litert")  # measured, yet no file
    assert goals.check_goals(results) == ["patch_encoder int16x8 file >= 2.4x smaller than float32: no file",
                                          "patch_encoder int16x8 latency ratio vs float32 measured in the same run: "
                                          "not measured"]


def test_the_transformer_goals_are_missed_when_its_studies_or_rows_were_not_measured():
    results = fake_results()
    del results["study_figures"]  # results from before qlab bench kept the studies' figures
    missed = goals.check_goals(results)
    assert all(m.endswith(": not measured") for m in missed), missed
    assert len([m for m in missed if m.startswith("patch_encoder: ")]) == 4
    assert len([m for m in missed if "micro_runs study" in m]) == len(goals.MICRO_MODELS) + 1
    results = fake_results()
    results["rows"] = [r for r in results["rows"] if r["model"] != "patch_encoder"]
    missed = goals.check_goals(results)
    assert "patch_encoder float32 accuracy >= 97.0%: not measured" in missed
    assert any(m.startswith("patch_encoder: its best full-integer int8 file") and m.endswith("not measured")
               for m in missed)


def test_the_break_goal_says_when_there_is_no_break_to_repair():
    results = fake_results()
    results["study_figures"]["layer_bits"]["patch_encoder"].update(
        break_points=-0.1, recovered=None, recovered_low=None, recovered_high=None)
    missed = goals.check_goals(results)
    assert len(missed) == 2 and missed[1].endswith("of the break: no break to repair"), missed


def test_the_transformer_has_its_own_int8_file_bar_and_the_cnns_keep_theirs():
    results = set_row(fake_results(), "patch_encoder", "dynamic_int8", size_ratio=2.51)
    assert not [m for m in goals.check_goals(results) if "dynamic_int8 file" in m]
    missed = goals.check_goals(set_row(results, "patch_encoder", "dynamic_int8", size_ratio=2.3))
    assert [m.split(":")[0] for m in missed if "dynamic_int8 file" in m] == [
        "patch_encoder dynamic_int8 file >= 2.4x smaller than float32"]
    missed = goals.check_goals(set_row(fake_results(), "mnist_cnn", "int8_per_channel", size_ratio=2.9))
    assert "mnist_cnn int8_per_channel file >= 3x smaller than float32" in [m.split(":")[0] for m in missed]
