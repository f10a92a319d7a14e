"""The benchmark's goals and how a results dict is judged against them.

Everything here only reads the results dict of :func:`qlab.workbook.bench.collect`
(``benchmarks/results.json``): ``benchmarks/check.py`` and the report use the same
judgement, and the unit tests run it on a small fake dict.
"""

from __future__ import annotations

from typing import Any, Sequence

from qlab.conversion.converter import DC_BARS, DC_VARIANTS

#: Accuracy bounds of the pipeline issue, as fractions: float minimum and the largest
#: drop (float32 - variant) allowed for each bounded variant.
ACCURACY_GOALS: dict[str, dict[str, float]] = {
    "mnist_cnn": {"float_min": 0.990, "int8_per_channel": 0.003, "qat_int8": 0.0015},
    "mobilenet_v2": {"float_min": 0.985, "qat_int8": 0.003},
    "mobilenet_v1": {"float_min": 0.985, "qat_int8": 0.003},
    "patch_encoder": {"float_min": 0.970},
}
#: Full-integer int8 files (int8 weights and activations), by the converter and the LiteRT Quantizer.
FULL_INT8_VARIANTS = ("int8_per_channel", "int8_per_tensor", "aeq_int8_per_channel", "aeq_int8_per_tensor")
#: The transformer issue's bar: its most accurate full-integer int8 file within this many points of float32.
BEST_INT8_MAX_DROP_POINTS = {"patch_encoder": 1.0}
#: The transformer issue's bars on its recorded studies (``study_figures`` of the results): the 2-bit
#: break costs the 8-bit file at least this many points, and the best repair wins back at least this share.
MIN_BREAK_POINTS = 2.0
MIN_REPAIR_SHARE = 0.5
#: ... and Keras 3 QAT's fake-quantized model and its LiteRT file pick the same class on at least this share.
MIN_QAT_FILE_AGREEMENT = 0.99
#: The microcontroller issue's bars on the ``micro_runs`` study: every file TFLM runs gives LiteRT's top class on at
#: least this share of the test images, and the narrow MobileNet has a file that fits the smaller board.
MIN_MICRO_TOP1_AGREEMENT = 0.99
MICRO_MODELS = ("mnist_cnn", "mobilenet_v1", "mobilenet_v2", "mobilenet_v2_035")
MICRO_FIT = ("mobilenet_v2_035", "Nordic nRF52840 (Arduino Nano 33 BLE Sense)")
#: Rows without a file: the converter refused the variant, or it does not apply to the model.
NOT_MEASURED = ("refused", "not applicable")
#: Variants whose every weight tensor is stored as int8: each must be >= MIN_INT8_SIZE_RATIO
#: times smaller than float32. (qat_partial leaves layers float by design.)
INT8_VARIANTS = ("dynamic_int8", "int8_per_channel", "int8_per_tensor", "int16x8", "qat_int8", *DC_VARIANTS,
                 "aeq_int8_per_channel", "aeq_int8_per_tensor", "aeq_dynamic_int8")
MIN_INT8_SIZE_RATIO = 3.0
#: ... except where a model's graph is a large share of its file: the 72k-parameter transformer's int8 weights are
#: 4x smaller (287,536 -> 71,746 bytes), but its graph (27-31 % of the int8 file) and scales (5-12 %) do not shrink.
MIN_INT8_SIZE_RATIO_BY_MODEL = {"patch_encoder": 2.4}
#: Variants whose conv, depthwise and dense weights are stored as INT4: each file must be
#: smaller than the int8_per_channel file of the same model.
INT4_VARIANTS = ("qat_4bit", "aeq_int4_weight_only", "aeq_int4_static", "aeq_int4_blockwise")
#: The LiteRT Quantizer issue's bars for 4-bit weights: the best INT4 file of each model within this many
#: points of float32, and mnist_cnn's best at least this many times smaller (8x is 4-bit's limit).
INT4_MAX_DROP_POINTS = 1.0
INT4_MIN_SIZE_RATIO = {"mnist_cnn": 6.0}
#: A workbook run in full mode must take at most this long (all notebooks, one after another).
MAX_WORKBOOK_FULL_SECONDS = 30 * 60
#: Lessons with a time budget of their own, in seconds: (full mode, smoke mode).
LESSON_BUDGETS: dict[str, tuple[float, float]] = {
    "04_post_training_quantization.ipynb": (300.0, 60.0),
    "05_per_channel.ipynb": (300.0, 60.0),
    "06_quantization_aware_training.ipynb": (300.0, 60.0),
    "07_custom_quantization.ipynb": (300.0, 60.0),
    "08_compare_and_debug.ipynb": (300.0, 60.0),
    "09_deep_compression.ipynb": (300.0, 60.0),
    "10_litert_quantizer.ipynb": (300.0, 60.0),
    "11_transformers.ipynb": (300.0, 60.0),
    "13_microcontrollers.ipynb": (300.0, 60.0),
}
#: The widgets' goal: median update under this many milliseconds.
WIDGET_MEDIAN_GOAL_MS = 100.0
#: ... and every control's 95th percentile under this many (headroom for a slower laptop).
WIDGET_P95_GOAL_MS = 50.0
#: The lessons the workbook is planned to have (notebooks/00..13).
PLANNED_NOTEBOOKS = 14


def result_row(results: dict[str, Any], model: str, variant: str) -> dict[str, Any] | None:
    """The row of ``model`` x ``variant`` in the results, or None when it was not measured."""
    return next((r for r in results.get("rows", [])
                 if r["model"] == model and r["variant"] == variant), None)


def accuracy_gaps(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, in percentage points: drops from float32, per-channel - per-tensor, QAT - PTQ."""
    gaps = []
    for model in dict.fromkeys(r["model"] for r in rows):
        acc = {r["variant"]: r["accuracy"] for r in rows
               if r["model"] == model and r.get("accuracy") is not None}

        def points(a: str, b: str) -> float | None:
            return round(100 * (acc[a] - acc[b]), 4) if a in acc and b in acc else None

        gaps.append({"model": model, "float32_accuracy": acc.get("float32"),
                     "per_channel_minus_per_tensor": points("int8_per_channel", "int8_per_tensor"),
                     "qat_int8_minus_int8_per_channel": points("qat_int8", "int8_per_channel"),
                     "drop_int8_per_channel": points("float32", "int8_per_channel"),
                     "drop_int8_per_tensor": points("float32", "int8_per_tensor"),
                     "drop_qat_int8": points("float32", "qat_int8")})
    return gaps


def notebook_totals(results: dict[str, Any]) -> dict[str, float]:
    """Seconds for the whole workbook per mode (failed notebooks count until they failed)."""
    totals: dict[str, float] = {}
    for row in results.get("notebooks", []):
        totals[row["mode"]] = totals.get(row["mode"], 0.0) + row["seconds"]
    return totals


def _accuracy(results: dict[str, Any], model: str, variant: str) -> float | None:
    row = result_row(results, model, variant)
    return row.get("accuracy") if row else None


def _float_goal(results: dict[str, Any], model: str, float_min: float) -> dict[str, Any]:
    acc = _accuracy(results, model, "float32")
    return {"goal": f"{model} float32 accuracy >= {100 * float_min:.1f}%",
            "measured": "not measured" if acc is None else f"{100 * acc:.2f}%",
            "ok": acc is not None and acc >= float_min}


def _drop_goal(results: dict[str, Any], model: str, variant: str, max_drop: float
               ) -> dict[str, Any]:
    base, acc = _accuracy(results, model, "float32"), _accuracy(results, model, variant)
    drop = None if acc is None or base is None else 100 * (base - acc)
    return {"goal": f"{model} {variant} within {100 * max_drop:.2f} points of float32",
            "measured": "not measured" if drop is None
                        else f"{100 * acc:.2f}% ({-drop:+.2f} points)",
            # 1e-9: 0.15 points stored as a float must not fail 0.15
            "ok": drop is not None and drop <= 100 * max_drop + 1e-9}


def _per_tensor_gap_goal(results: dict[str, Any], model: str) -> dict[str, Any]:
    pc = _accuracy(results, model, "int8_per_channel")
    pt = _accuracy(results, model, "int8_per_tensor")
    measured = pc is not None and pt is not None
    return {"goal": f"{model} int8_per_tensor vs int8_per_channel gap measured",
            "measured": f"{100 * (pc - pt):+.2f} points (per-channel - per-tensor)" if measured
                        else "not measured",
            "ok": measured}


def _accuracy_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    for model, bounds in ACCURACY_GOALS.items():
        goals.append(_float_goal(results, model, bounds["float_min"]))
        goals += [_drop_goal(results, model, variant, max_drop)
                  for variant, max_drop in bounds.items() if variant != "float_min"]
        if "int8_per_channel" not in bounds:
            goals.append(_per_tensor_gap_goal(results, model))
    return goals


def _where_the_bytes_went(parts: dict[str, int] | None, ratio: float | None) -> str:
    """Why a file is well short of 4x smaller, from its size breakdown ("" when it is not)."""
    if not parts or ratio is None or ratio >= 3.5:
        return ""
    size = sum(parts.values())
    return (f" (scales and zero-points {100 * parts.get('scales_zero_points', 0) / size:.0f}%"
            f", graph {100 * parts.get('other', 0) / size:.0f}% of the file)")


def _measured_rows(results: dict[str, Any], variants: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of ``variants`` that should have a file: not refused by the converter, not inapplicable."""
    return [row for row in results.get("rows", [])
            if row["variant"] in variants and row.get("evaluated_with") not in NOT_MEASURED]


def _size_and_latency_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    for row in _measured_rows(results, INT8_VARIANTS):
        ratio, name = row.get("size_ratio"), f"{row['model']} {row['variant']}"
        parts = results.get("size_breakdown", {}).get(row["model"], {}).get(row["variant"])
        why = _where_the_bytes_went(parts, ratio)
        least = MIN_INT8_SIZE_RATIO_BY_MODEL.get(row["model"], MIN_INT8_SIZE_RATIO)
        goals.append({"goal": f"{name} file >= {least:g}x smaller than float32",
                      "measured": "no file" if ratio is None else f"{ratio:.2f}x{why}",
                      "ok": ratio is not None and ratio >= least})
        latency = row.get("latency_ratio")
        goals.append({"goal": f"{name} latency ratio vs float32 measured in the same run",
                      "measured": "not measured" if latency is None else f"{latency:.2f}x",
                      "ok": latency is not None})
    return goals


def _int4_size_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    for row in _measured_rows(results, INT4_VARIANTS):
        int8 = result_row(results, row["model"], "int8_per_channel") or {}
        size, int8_size = row.get("size_bytes"), int8.get("size_bytes")
        measured = "no file" if size is None else (
            "int8_per_channel not measured" if int8_size is None
            else f"{size / 1024:.0f} KB vs {int8_size / 1024:.0f} KB ({size / int8_size:.2f}x)")
        goals.append({"goal": f"{row['model']} {row['variant']} file smaller than its "
                              "int8_per_channel file",
                      "measured": measured,
                      "ok": size is not None and int8_size is not None and size < int8_size})
    return goals


def _deep_compression_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model: its smallest compressed Deep Compression file within the accuracy bar, against the ratio bar."""
    goals = []
    for model, (ratio_bar, max_points) in DC_BARS.items():
        max_drop = max_points / 100
        base = _accuracy(results, model, "float32")
        rows = [r for v in DC_VARIANTS if (r := result_row(results, model, v)) is not None
                and r.get("gzip_ratio") is not None and r.get("accuracy") is not None]
        within = [r for r in rows if base is not None and base - r["accuracy"] <= max_drop + 1e-9]
        best = max(within, key=lambda r: r["gzip_ratio"], default=None)
        goal = (f"{model}: a Deep Compression variant >= {ratio_bar:g}x smaller than float32 compressed "
                f"(gzip -9), losing <= {100 * max_drop:.1f} points")
        if best is None:
            measured = "not measured" if not rows else "none within the accuracy bar"
        else:
            measured = (f"{best['variant']}: {best['gzip_ratio']:.2f}x, "
                        f"{100 * (best['accuracy'] - base):+.2f} points")
        goals.append({"goal": goal, "measured": measured,
                      "ok": best is not None and best["gzip_ratio"] >= ratio_bar})
    return goals


def _four_bit_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model: its most accurate INT4 file (QAT or the LiteRT Quantizer's) within the bar, and its size ratio."""
    goals = []
    for model in dict.fromkeys(r["model"] for r in results.get("rows", [])):
        base = _accuracy(results, model, "float32")
        rows = [r for v in INT4_VARIANTS if (r := result_row(results, model, v)) is not None
                and r.get("accuracy") is not None]
        best = max(rows, key=lambda r: r["accuracy"], default=None)
        min_ratio = INT4_MIN_SIZE_RATIO.get(model)
        goal = (f"{model}: a 4-bit-weight file within {INT4_MAX_DROP_POINTS:g} point of float32"
                + (f", at least {min_ratio:g}x smaller" if min_ratio else ""))
        if best is None:  # a run without the 4-bit variants
            continue
        if base is None:
            goals.append({"goal": goal, "measured": "float32 not measured", "ok": False})
            continue
        points = 100 * (best["accuracy"] - base)
        ok = points >= -INT4_MAX_DROP_POINTS and (min_ratio is None or best["size_ratio"] >= min_ratio)
        goals.append({"goal": goal, "measured": f"{best['variant']}: {points:+.2f} points, {best['size_ratio']:.2f}x",
                      "ok": ok})
    return goals


def _best_int8_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model with a bar: its most accurate full-integer int8 file, within the bar of float32."""
    goals = []
    for model, max_points in BEST_INT8_MAX_DROP_POINTS.items():
        base = _accuracy(results, model, "float32")
        rows = [r for v in FULL_INT8_VARIANTS if (r := result_row(results, model, v)) is not None
                and r.get("accuracy") is not None]
        best = max(rows, key=lambda r: r["accuracy"], default=None)
        goal = (f"{model}: its best full-integer int8 file (int8 weights and activations) within "
                f"{max_points:g} point of float32")
        if best is None or base is None:
            goals.append({"goal": goal, "measured": "not measured", "ok": False})
            continue
        points = 100 * (best["accuracy"] - base)
        goals.append({"goal": goal, "measured": f"{best['variant']}: {100 * best['accuracy']:.2f}% "
                                                f"({points:+.2f} points)",
                      "ok": points >= -max_points - 1e-9})
    return goals


def _figures(results: dict[str, Any], study: str, model: str) -> dict[str, Any] | None:
    """The figures ``qlab bench`` kept of a recorded study for ``model``, or None."""
    return (results.get("study_figures") or {}).get(study, {}).get(model)


def _break_goals(results: dict[str, Any], model: str = "patch_encoder") -> list[dict[str, Any]]:
    """The ``layer_bits`` study: the low-bit break is big enough to teach, and keeping a part at 8 bits repairs it."""
    f = _figures(results, "layer_bits", model)
    goals = [f"{model}: low-bit weights break the 8-bit file by >= {MIN_BREAK_POINTS:g} points (layer_bits study)",
             f"{model}: the best repair (a group of layers kept at 8 bits) wins back >= "
             f"{100 * MIN_REPAIR_SHARE:.0f}% of the break"]
    if f is None:
        return [{"goal": g, "measured": "not measured", "ok": False} for g in goals]
    share = f.get("recovered")
    interval = ("" if f.get("recovered_low") is None
                else f" [{100 * f['recovered_low']:.0f}, {100 * f['recovered_high']:.0f}]")
    return [{"goal": goals[0], "measured": f"{f['break_points']:.2f} points ({100 * f['baseline_accuracy']:.2f}% "
                                           f"-> {100 * f['break_accuracy']:.2f}%, {f['break']})",
             "ok": f["break_points"] >= MIN_BREAK_POINTS - 1e-9},
            {"goal": goals[1], "measured": "no break to repair" if share is None
                                           else f"{100 * share:.0f}%{interval} ({f['best_repair']})",
             "ok": share is not None and share >= MIN_REPAIR_SHARE - 1e-9}]


def _keras3_qat_goals(results: dict[str, Any], model: str = "patch_encoder") -> list[dict[str, Any]]:
    """The ``keras3_qat`` study: QAT beats its float fine-tune control, and its file computes what it trained."""
    f = _figures(results, "keras3_qat", model)
    goals = [f"{model}: Keras 3 QAT beats its float fine-tune control, 95% interval above 0 (keras3_qat study)",
             f"{model}: the Keras 3 QAT model and its LiteRT file agree on >= {100 * MIN_QAT_FILE_AGREEMENT:.0f}% "
             "of top-1 predictions"]
    if f is None:
        return [{"goal": g, "measured": "not measured", "ok": False} for g in goals]
    return [{"goal": goals[0], "measured": f"{f['gain_points']:+.2f} points [{f['gain_low']:+.2f}, "
                                           f"{f['gain_high']:+.2f}] ({100 * f['control_accuracy']:.2f}% -> "
                                           f"{100 * f['qat_accuracy']:.2f}%)",
             "ok": f["gain_low"] > 0},
            {"goal": goals[1], "measured": f"{100 * f['keras_file_agreement']:.2f}%",
             "ok": f["keras_file_agreement"] >= MIN_QAT_FILE_AGREEMENT - 1e-9}]


def _micro_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``micro_runs`` study: TFLM computes what LiteRT computes, and the narrow MobileNet fits the smaller board."""
    goals = []
    for model in MICRO_MODELS:
        f = _figures(results, "micro_runs", model)
        goal = (f"{model}: every file TFLM runs gives LiteRT's top-1 class on >= "
                f"{100 * MIN_MICRO_TOP1_AGREEMENT:.0f}% of test images (micro_runs study)")
        if f is None or not f.get("ran"):
            goals.append({"goal": goal, "measured": "not measured" if f is None else "no file runs", "ok": False})
            continue
        lowest = f["lowest top-1 agreement"]
        goals.append({"goal": goal, "measured": f"lowest {100 * lowest:.2f}% of {f['ran']} files",
                      "ok": lowest >= MIN_MICRO_TOP1_AGREEMENT - 1e-9})
    model, board = MICRO_FIT
    f = _figures(results, "micro_runs", model)
    count = None if f is None else f["fitting"].get(board, 0)
    goals.append({"goal": f"{model}: a file fits the {board} (micro_runs study)",
                  "measured": "not measured" if count is None else f"{count} file(s) fit",
                  "ok": bool(count)})
    return goals


def _notebook_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = results.get("notebooks", [])
    full = [r for r in rows if r["mode"] == "full"]
    if not full:
        why = "--skip-notebooks" if "notebooks" in results.get("skipped", []) else "run cut short"
        return [{"goal": "workbook run time measured (every notebook, full mode)",
                 "measured": f"not measured ({why})", "ok": False}]
    goals = [{"goal": f"{r['notebook']} runs to the end ({r['mode']} mode)",
              "measured": f"{'ok' if r['ok'] else 'FAILED'} after {r['seconds']:.0f} s",
              "ok": bool(r["ok"])} for r in rows]
    for r in rows:
        budget = LESSON_BUDGETS.get(r["notebook"])
        if budget:
            limit = budget[0] if r["mode"] == "full" else budget[1]
            goals.append({"goal": f"{r['notebook']} ({r['mode']} mode) <= {limit:.0f} s",
                          "measured": f"{r['seconds']:.0f} s",
                          "ok": bool(r["ok"]) and r["seconds"] <= limit})
    total = notebook_totals(results)["full"]
    goals.append({"goal": f"workbook full run <= {MAX_WORKBOOK_FULL_SECONDS // 60} min",
                  "measured": f"{total / 60:.1f} min ({len(full)} notebooks)",
                  "ok": total <= MAX_WORKBOOK_FULL_SECONDS})
    return goals


def _widget_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every widget control's p95 update under :data:`WIDGET_P95_GOAL_MS` (results with p95s)."""
    rows = [w for w in results.get("widgets", []) if "p95_ms" in w]
    if not rows:
        return []
    worst = max(rows, key=lambda w: w["p95_ms"])
    return [{"goal": f"every widget control updates in <= {WIDGET_P95_GOAL_MS:.0f} ms at the 95th "
                     f"percentile ({len(rows)} controls)",
             "measured": f"worst p95 {worst['p95_ms']:.1f} ms ({worst['widget']}.{worst['control']})",
             "ok": worst["p95_ms"] <= WIDGET_P95_GOAL_MS}]


def goal_results(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal with what was measured and whether it is met: ``{goal, measured, ok}``."""
    if not isinstance(results, dict) or "rows" not in results:
        raise ValueError("results must be the dict of qlab bench (benchmarks/results.json) with a "
                         f"'rows' list, got {type(results).__name__}")
    return (_accuracy_goals(results) + _best_int8_goals(results) + _size_and_latency_goals(results)
            + _int4_size_goals(results) + _deep_compression_goals(results) + _four_bit_goals(results)
            + _break_goals(results) + _keras3_qat_goals(results) + _micro_goals(results) + _notebook_goals(results)
            + _widget_goals(results))


def check_goals(results: dict[str, Any]) -> list[str]:
    """The missed goals, as readable lines (empty when every goal is met)."""
    return [f"{g['goal']}: {g['measured']}" for g in goal_results(results) if not g["ok"]]


def _missing_notebooks(found: Sequence[str]) -> str | None:
    if len(found) >= PLANNED_NOTEBOOKS:
        return None
    numbers = {name[:2] for name in found}
    missing = [f"{i:02d}" for i in range(PLANNED_NOTEBOOKS) if f"{i:02d}" not in numbers]
    return (f"only {len(found)} of the {PLANNED_NOTEBOOKS} planned notebooks existed when this "
            f"ran (missing: {', '.join(missing)}); the workbook time covers those that existed")


def notes(results: dict[str, Any]) -> list[str]:
    """What the results cannot vouch for (not failures): skipped parts, notebooks not written yet."""
    lines = [f"{part} skipped in this run" for part in results.get("skipped", [])]
    lines += [f"`{model}` could not be measured: {error}"
              for model, error in results.get("errors", {}).items()]
    if results.get("partial"):
        lines.insert(0, "PARTIAL: written while the run was still going (or after it was cut "
                        "short); the parts not listed here were not measured")
    missing = _missing_notebooks(results.get("notebooks_found", []))
    if missing:
        lines.append(missing)
    slow = [f"{w['widget']}.{w['control']} ({w['median_ms']:.0f} ms)"
            for w in results.get("widgets", []) if w["median_ms"] > WIDGET_MEDIAN_GOAL_MS]
    if slow:
        lines.append(f"widget updates over the {WIDGET_MEDIAN_GOAL_MS:.0f} ms median goal: "
                     + ", ".join(slow))
    return lines
