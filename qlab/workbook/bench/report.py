"""``BENCHMARKS.md`` and its picture from a results dict; nothing is measured here.

The report's sentences live in the template ``report.md.tmpl`` beside this module (one
``<!-- name -->`` snippet per paragraph, filled with :class:`string.Template`); this
module builds the tables and lists and decides which paragraphs a run calls for.
"""

from __future__ import annotations

import functools
import json
import math
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Sequence

from qlab.workbook.bench.goals import (INT8_VARIANTS, WIDGET_P95_GOAL_MS, goal_results,
                                       notebook_totals, notes, result_row)
from qlab.workbook.bench.paths import plot_png, report_md, results_json

#: The template file, shipped inside the package (``qlab/workbook/bench/report.md.tmpl``).
TEMPLATE_NAME = "report.md.tmpl"
_SNIPPET_START = re.compile(r"^<!-- (\w+) -->\n", flags=re.MULTILINE)


@functools.cache
def report_template() -> dict[str, Template]:
    """The report's prose: every ``<!-- name -->`` snippet of the template file, by name."""
    text = resources.files(__package__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
    parts = _SNIPPET_START.split(text)[1:]  # [name, body, name, body, ...]
    return {name: Template(body.rstrip("\n")) for name, body in zip(parts[::2], parts[1::2])}


def _fill(name: str, **fields: Any) -> str:
    return report_template()[name].substitute(fields)


def _paragraph(name: str, **fields: Any) -> str:
    """A snippet as a paragraph of the document: followed by one blank line."""
    return _fill(name, **fields) + "\n\n"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str | None:
    return None if value is None else format(scale * value, spec)


def _range(row: dict[str, Any], key: str, spec: str) -> str | None:
    """``median (min-max)`` of a repeated measurement, or the bare value when not repeated."""
    if row.get(key) is None:
        return None
    low, high = row.get(f"{key}_min"), row.get(f"{key}_max")
    noise = f" ({format(low, spec)}-{format(high, spec)})" if low is not None else ""
    return f"{format(row[key], spec)}{noise}"


# ---------------------------------------------------------------- accuracy, size and latency
def _op_counts(row: dict[str, Any]) -> str | None:
    """``float ops / QUANTIZE / DEQUANTIZE`` of a row's file, or None (results from before they were counted)."""
    if row.get("float_ops") is None:
        return None
    return f"{row['float_ops']} / {row.get('quantize_ops')} / {row.get('dequantize_ops')}"


def _notes_once(rows: Sequence[dict[str, Any]]) -> list[str | None]:
    """Each row's note, a note already given higher up the same table shortened to "as above"."""
    seen: set[str] = set()
    notes = []
    for row in rows:
        note = row.get("note")
        notes.append("as above" if note in seen else note)
        if note:
            seen.add(note)
    return notes


def _model_table(results: dict[str, Any], model: str) -> str:
    base = (result_row(results, model, "float32") or {}).get("accuracy")
    rows = [r for r in results["rows"] if r["model"] == model]
    table = [[f"`{r['variant']}`", _fmt(r.get("accuracy"), ".2f", 100),
              None if base is None or r.get("accuracy") is None
              else f"{100 * (r['accuracy'] - base):+.2f}",
              _fmt(r.get("size_bytes"), ".1f", 1 / 1024), _fmt(r.get("size_ratio"), ".2f"),
              _fmt(r.get("gzip_bytes"), ".1f", 1 / 1024), _fmt(r.get("gzip_ratio"), ".2f"),
              _fmt(r.get("non_integer_ops"), ".0f"), _op_counts(r), _range(r, "latency_ms", ".4f"),
              _range(r, "latency_ratio", ".2f"), _fmt(r.get("keras_tflite_agreement"), ".2f", 100), note]
             for r, note in zip(rows, _notes_once(rows))]
    return _md_table(["variant", "accuracy %", "vs float32 (points)", "size KB",
                      "float32 size / size", "gzip -9 KB", "float32 gzip / gzip", "ops not integer-only",
                      "float ops / QUANTIZE / DEQUANTIZE", "latency ms (min-max)", "latency / float32 (min-max)",
                      "Keras-TFLite agreement %", "note"], table)


def _model_tables(results: dict[str, Any]) -> str:
    return "".join(f"### {model}\n\n{_model_table(results, model)}\n\n"
                   for model in dict.fromkeys(r["model"] for r in results["rows"]))


def _fine_row(r: dict[str, Any]) -> list[Any]:
    delta = None if r.get("delta_low") is None else (
        f"{100 * r['accuracy_delta']:+.2f} [{100 * r['delta_low']:+.2f}, {100 * r['delta_high']:+.2f}]")
    # the float32 row's SQNR is infinite (identical scores): JSON stores null, shown as "-"
    return [r["model"], f"`{r['variant']}`", delta, _fmt(r.get("mcnemar_p"), ".2g"),
            _fmt(r.get("top1_agreement"), ".2f", 100), _fmt(r.get("output_sqnr_db"), ".1f"),
            _fmt(r.get("kl_divergence"), ".2g")]


def _fine_metrics(results: dict[str, Any]) -> str:
    """The finer-than-top-1 section: a table when the rows have the columns, else why not."""
    rows = [r for r in results["rows"] if r.get("top1_agreement") is not None]
    if not rows:
        return _paragraph("fine_metrics_missing")
    return _paragraph("fine_metrics", table=_md_table(
        ["model", "variant", "Δ accuracy vs float32, points [95% CI]", "McNemar p",
         "top-1 agreement with float32 %", "output SQNR dB", "KL(float32 || variant) nats"],
        [_fine_row(r) for r in rows]))


def _slower_than_float32(results: dict[str, Any]) -> str:
    slow = [r for r in results["rows"] if (r.get("latency_ratio") or 0) > 2]
    if not slow:
        return ""
    why = {name: " " + _fill(f"{name}_is_slow") if any(r["variant"] == name for r in slow) else ""
           for name in ("int16x8", "qat_4bit")}
    return _paragraph("slower_than_float32", variants=", ".join(
        f"`{r['model']}` `{r['variant']}` {r['latency_ratio']:.0f}x" for r in slow),
        int16x8_is_slow=why["int16x8"], qat_4bit_is_slow=why["qat_4bit"])


# ---------------------------------------------------------------- per-channel and file size
def _gaps_table(results: dict[str, Any]) -> str:
    spreads = results.get("scale_spread", {})
    table = []
    for g in results.get("gaps", []):
        s = spreads.get(g["model"], {})
        table.append([g["model"], _fmt(g["per_channel_minus_per_tensor"], "+.2f"),
                      _fmt(g["qat_int8_minus_int8_per_channel"], "+.2f"),
                      _fmt(s.get("max_min_scale"), ".0f"),
                      _fmt(s.get("levels_of_smallest_channel_if_per_tensor"), ".1f"),
                      None if not s else f"{s['tensors_over_10x']} of {s['per_channel_tensors']}"])
    return _md_table(["model", "per-channel - per-tensor (points)",
                      "QAT int8 - PTQ per-channel (points)", "widest max/min channel scale",
                      "levels left to its smallest channel if per-tensor",
                      "per-channel weight tensors spread > 10x"], table)


def _widest_spread(spreads: dict[str, dict[str, Any]]) -> str:
    spreads = {m: s for m, s in spreads.items() if s}
    if not spreads:
        return ""
    widest = max(spreads, key=lambda m: spreads[m]["max_min_scale"])
    s = spreads[widest]
    return " " + _fill("widest_spread", spread=f"{s['max_min_scale']:.1f}", model=widest,
                       levels=f"{s['levels_of_smallest_channel_if_per_tensor']:.0f}")


def _widest_tensors(spreads: dict[str, dict[str, Any]]) -> str:
    return "".join(_fill("widest_tensor", model=model, tensor=s["tensor"], channels=s["channels"],
                         spread=f"{s['max_min_scale']:.1f}") + "\n"
                   for model, s in spreads.items() if s)


def _size_row(model: str, variant: str, parts: dict[str, int], float_size: int) -> list[Any]:
    size = sum(parts.values())

    def kb(*keys: str) -> str:
        part = sum(parts.get(k, 0) for k in keys)
        return f"{part / 1024:.1f} ({100 * part / size:.0f}%)"

    return [model, f"`{variant}`", f"{size / 1024:.1f}",
            f"{float_size / size:.2f}" if float_size else None, kb("int8"),
            kb("int32", "int64"), kb("float32", "float16"), kb("scales_zero_points"), kb("other")]


def _size_table(results: dict[str, Any]) -> str:
    rows = [_size_row(model, variant, files[variant], sum(files.get("float32", {}).values()))
            for model, files in results.get("size_breakdown", {}).items()
            for variant in INT8_VARIANTS if files.get(variant)]
    return _md_table(["model", "variant", "file KB", "float32 / file", "int8 constants",
                      "bias constants (int32/int64)", "float constants", "scales and zero-points",
                      "graph, names, shapes"], rows)


# ---------------------------------------------------------------- run times
def _notebook_table(results: dict[str, Any]) -> str:
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results["notebooks"]:
        by_name.setdefault(r["notebook"], {})[r["mode"]] = r

    def cell(r: dict[str, Any] | None) -> str | None:
        return None if r is None else f"{r['seconds']:.0f}" + ("" if r["ok"] else " FAILED")

    names = list(dict.fromkeys([*results.get("notebooks_found", []), *by_name]))
    table = [[f"`{name}`", cell(by_name.get(name, {}).get("full")),
              cell(by_name.get(name, {}).get("smoke"))] for name in names]
    totals = notebook_totals(results)
    table.append(["**whole workbook**", _fmt(totals.get("full"), ".0f"),
                  _fmt(totals.get("smoke"), ".0f")])
    return _md_table(["notebook", "full s", "smoke s"], table)


def _notebook_times(results: dict[str, Any]) -> str:
    runs = results.get("notebooks", [])
    if not runs:
        return _paragraph("notebooks_skipped")
    text = _paragraph("notebook_times", table=_notebook_table(results))
    if results.get("partial"):
        text += _paragraph("notebooks_not_reached")
    failed = [_fill("notebook_failed", notebook=r["notebook"], mode=r["mode"], error=r["error"])
              for r in runs if not r["ok"]]
    return text + "".join(line + "\n" for line in failed) + ("\n" if failed else "")


def _control_labels(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Each row's control; a widget and control timed more than once are numbered in row order."""
    pairs = [(w["widget"], w["control"]) for w in rows]
    seen: dict[tuple[str, str], int] = {}
    labels = []
    for pair in pairs:
        seen[pair] = seen.get(pair, 0) + 1
        labels.append(f"`{pair[1]}`" + (f" #{seen[pair]}" if pairs.count(pair) > 1 else ""))
    return labels


def _widget_times(results: dict[str, Any]) -> str:
    rows = results.get("widgets", [])
    if not rows:
        return _paragraph("widgets_skipped")
    labels = _control_labels(rows)
    # results written before p95 and the CPU were recorded show "-" there
    table = [[w["widget"], label, w["updates"], f"{w['median_ms']:.1f}",
              f"{w['p95_ms']:.1f}" if "p95_ms" in w else "-", f"{w['max_ms']:.1f}",
              f"{w['cpu_median_ms']:.1f}"] for w, label in zip(rows, labels)]
    repeated = any(label.endswith(" #2") for label in labels)
    return _paragraph("widget_times", goal_ms=f"{WIDGET_P95_GOAL_MS:.0f}",
                      cpu=rows[0].get("cpu", "not recorded"), table=_md_table(
        ["widget", "control", "updates", "median ms", "p95 ms", "max ms", "CPU median ms"],
        table)) + (_paragraph("widgets_repeated") if repeated else "")


# ---------------------------------------------------------------- recorded lesson studies
#: The weight schemes of the ``weight_bits`` study the report shows, in its column order.
WEIGHT_SCHEMES = ("per-tensor", "per-channel", "per-tensor + CLE", "per-tensor + CLE + bias corr.")


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or NaN (shown as "-")."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _percent(value: Any) -> str | None:
    return _fmt(_number(value), ".2f", 100)


def _interval(delta: Any, low: Any, high: Any, scale: float = 1.0) -> str | None:
    """``delta [low, high]`` in points, or None when any of them is missing."""
    if any(_number(v) is None for v in (delta, low, high)):
        return None
    return f"{scale * delta:+.2f} [{scale * low:+.2f}, {scale * high:+.2f}]"


def _read_study(path: Path) -> dict[str, Any] | None:
    """A study file as a dict, its table as ``rows`` (a dict per row); None if unreadable."""
    try:
        data = json.loads(path.read_text())  # Python's json reads the files' Infinity and NaN
        columns = data["table"]["columns"]
        rows = [dict(zip(columns, values)) for values in data["table"]["data"]]
        return {"study": data["study"], "model": data["model"], "fingerprint": data["fingerprint"],
                "rows": rows}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded_studies(results: dict[str, Any], studies_dir: str | Path | None = None
                     ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The study files ``results["studies_recorded"]`` lists, by study, and those not found.

    ``studies_dir`` defaults to :func:`qlab.workbook.studies.recorded_dir`
    (the checkout's ``benchmarks/studies/``).
    """
    from qlab.workbook.studies import recorded_dir

    directory = Path(studies_dir) if studies_dir is not None else recorded_dir()
    found: dict[str, list[dict[str, Any]]] = {}
    missing = []
    for name in results.get("studies_recorded") or []:
        study = None if directory is None else _read_study(directory / name)
        if study is None:
            missing.append(name)
        else:
            found.setdefault(study["study"], []).append(study)
    return found, missing


def _weight_bits_table(studies: list[dict[str, Any]]) -> str:
    table = []
    for study in studies:
        by_key = {(r["num_bits"], r["scheme"]): r for r in study["rows"]}
        quantized = [r["num_bits"] for r in study["rows"] if r["scheme"] in WEIGHT_SCHEMES]
        for bits in dict.fromkeys(quantized):
            accuracy = [_percent(by_key.get((bits, s), {}).get("accuracy")) for s in WEIGHT_SCHEMES]
            gain = by_key.get((bits, "per-channel"), {})
            table.append([study["model"], bits, *accuracy,
                          _interval(gain.get("gain vs per-tensor (points)"), gain.get("gain low"),
                                    gain.get("gain high"))])
    return _md_table(["model", "weight bits", *(f"{s} %" for s in WEIGHT_SCHEMES),
                      "per-channel gain vs per-tensor, points [95% CI]"], table)


def _spread_without_and_with_cle(rows: list[dict[str, Any]]) -> str:
    """``"27.8 / 1.5"``: the widest weight channel spread of a version, before and after CLE."""
    def first(with_cle: bool) -> str:
        values = [_number(r.get("max channel spread")) for r in rows
                  if r["variant"].startswith("CLE") == with_cle]
        return "-" if not values or values[0] is None else f"{values[0]:.1f}"

    return f"{first(False)} / {first(True)}"


def _equalization_table(studies: list[dict[str, Any]]) -> str:
    variants = list(dict.fromkeys(r["variant"] for s in studies for r in s["rows"]))
    table = []
    for study in studies:
        by_key = {(r["version"], r["variant"]): r for r in study["rows"]}
        for version in dict.fromkeys(r["version"] for r in study["rows"]):
            rows = [r for r in study["rows"] if r["version"] == version]
            label = version if len(studies) == 1 else f"{study['model']}: {version}"
            table.append([label, _spread_without_and_with_cle(rows), *[
                _percent(by_key.get((version, v), {}).get("accuracy")) for v in variants]])
    return _md_table(["version", "max channel spread, without / with CLE",
                      *(f"`{v}` %" for v in variants)], table)


def _calibration_failures_table(studies: list[dict[str, Any]]) -> str:
    sets: dict[str, dict[str, Any]] = {}
    for study in studies:
        for r in study["rows"]:
            sets.setdefault(r["representative set"], r)
    table = []
    for name, first in sets.items():
        cells = []
        for study in studies:
            r = next((r for r in study["rows"] if r["representative set"] == name), {})
            cells.append(_interval(r.get("accuracy_delta"), r.get("delta_low"),
                                   r.get("delta_high"), scale=100))
        table.append([f"`{name}`", first.get("description"), first.get("images"), *cells])
    return _md_table(["representative set", "what it holds", "images",
                      *(f"{s['model']}: Δ points [95% CI]" for s in studies)], table)


def _range_estimators_table(studies: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys((s["model"], r["method"]) for s in studies for r in s["rows"]))
    by_key = {(s["model"], r["method"], r["num_bits"]): r for s in studies for r in s["rows"]}
    table = []
    for bits in dict.fromkeys(r["num_bits"] for s in studies for r in s["rows"]):
        row_group = [r for s in studies for r in s["rows"] if r["num_bits"] == bits]
        how = ", ".join(dict.fromkeys(r.get("evaluated_with") or "?" for r in row_group))
        table.append([bits, how, *[_percent(by_key.get(column + (bits,), {}).get("accuracy"))
                                   for column in columns]])
    return _md_table(["activation bits", "evaluated_with",
                      *(f"{model} `{method}` %" for model, method in columns)], table)


def _adaround_table(studies: list[dict[str, Any]]) -> str:
    table = []
    for study in studies:
        by_key = {(r["num_bits"], r["scheme"], r["rounding"]): r for r in study["rows"]}
        for bits, scheme, rounding in by_key:
            if rounding != "AdaRound":
                continue
            ada, nearest = by_key[(bits, scheme, rounding)], by_key.get((bits, scheme, "nearest"), {})
            table.append([study["model"], bits, scheme, _percent(nearest.get("accuracy")),
                          _percent(ada.get("accuracy")),
                          _interval(ada.get("gain vs nearest (points)"), ada.get("gain low"), ada.get("gain high")),
                          _fmt(_number(ada.get("flipped share")), ".1f", 100),
                          _fmt(_number(ada.get("AdaRound seconds")), ".0f")])
    return _md_table(["model", "weight bits", "scheme", "nearest %", "AdaRound %",
                      "AdaRound - nearest, points [95% CI]", "weights rounded the other way %",
                      "AdaRound s"], table)


def _partial_qat_table(studies: list[dict[str, Any]]) -> str:
    table = []
    for study in studies:
        for r in study["rows"]:
            if r.get("part") == "sensitivity":
                continue
            table.append([study["model"], r["arm"], _percent(r.get("accuracy")),
                          _interval(r.get("accuracy_delta"), r.get("delta_low"), r.get("delta_high"), 100),
                          _fmt(_number(r.get("size_ratio")), ".2f"), _fmt(_number(r.get("latency_ratio")), ".2f"),
                          _fmt(_number(r.get("float_ops")), ".0f"),
                          _fmt(_number(r.get("quantize_ops", 0) + r.get("dequantize_ops", 0)), ".0f"),
                          _interval(r.get("gain vs random (points)"), r.get("gain vs random low"),
                                    r.get("gain vs random high"))])
    return _md_table(["model", "arm", "accuracy %", "Δ vs float32, points [95% CI]", "float32 size / size",
                      "latency / float32", "float ops", "QUANTIZE + DEQUANTIZE",
                      "pick by sensitivity - random pick, points [95% CI]"], table)


def _study_frame(studies: list[dict[str, Any]]) -> "Any":
    """The tables of ``studies`` as one pandas DataFrame (the recorded rows, unchanged)."""
    import pandas as pd

    return pd.DataFrame([row for study in studies for row in study["rows"]])


def _bits_picture_table(studies: list[dict[str, Any]]) -> str:
    from qlab.workbook.studies.bits_picture import qat_verdict

    table = []
    for row in qat_verdict(_study_frame(studies)).to_dict(orient="records"):
        verdict = "no collapse" if not row["collapses"] else ("yes" if row["meets bar"] else "**NO**")
        table.append([row["model"], row["weight_bits"], _percent(row["float accuracy"]),
                      _percent(row["control float accuracy"]), _percent(row.get("best PTQ accuracy")),
                      _percent(row.get("control accuracy")), _percent(row.get("QAT accuracy")),
                      _interval(row.get("QAT gain vs control (points)"), row.get("gain low"), row.get("gain high")),
                      _fmt(_number(row.get("share recovered beyond control and best PTQ")), ".0f", 100), verdict])
    return _md_table(["model", "weight bits", "float %", "control, float %", "best PTQ %", "control + best PTQ %",
                      "QAT %", "QAT - control, points [95% CI]", "share of the PTQ loss QAT wins back beyond both %",
                      "QAT recovers >= half"], table)


#: The studies the report shows, in its order, and the table of each.
def _deep_compression_table(studies: list[dict[str, Any]]) -> str:
    table = [[study["model"], r["stage"], _fmt(_number(r.get("bytes")), ".1f", 1 / 1024),
              _fmt(_number(r.get("gzip bytes")), ".1f", 1 / 1024), _fmt(_number(r.get("gzip ratio")), ".2f"),
              _fmt(_number(r.get("zip ratio")), ".2f"), _percent(r.get("accuracy")),
              _interval(r.get("vs float32 (points)"), r.get("vs float32 low"), r.get("vs float32 high")),
              _interval(r.get("vs control (points)"), r.get("vs control low"), r.get("vs control high")),
              _fmt(_number(r.get("zeros kept")), ".4f"), r.get("values per channel")]
             for study in studies for r in study["rows"]]
    return _md_table(["model", "stage", "size KB", "gzip -9 KB", "float32 gzip / gzip", "float32 zip / zip",
                      "accuracy %", "vs float32, points [95% CI]", "vs control, points [95% CI]",
                      "pruned zeros kept", "most values per channel"], table)


def _routes_table(studies: list[dict[str, Any]]) -> str:
    table = [[study["model"], f"`{r['quantizer']}` / `{r['converter']}`", r["calibration"],
              _percent(r.get("quantizer accuracy")), _percent(r.get("converter accuracy")),
              _fmt(_number(r.get("quantizer bytes")), ".0f"), _fmt(_number(r.get("converter bytes")), ".0f"),
              _fmt(_number(r.get("identical values")), ".2f", 100), _fmt(_number(r.get("identical images")), ".2f", 100),
              r.get("first difference"), None if r.get("op index") is None else f"{r['op index']} {r.get('op')}",
              r.get("quantizer side"), r.get("converter side")]
             for study in studies for r in study["rows"]]
    return _md_table(["model", "Quantizer / converter", "Quantizer calibration", "Quantizer %", "converter %",
                      "Quantizer bytes", "converter bytes", "identical output values %", "identical images %",
                      "first difference", "at op", "Quantizer", "converter"], table)


def _four_bit_table(studies: list[dict[str, Any]]) -> str:
    table = [[study["model"], r["file"], _percent(r.get("accuracy")),
              _interval(r.get("vs float32 (points)"), r.get("vs float32 low"), r.get("vs float32 high")),
              _fmt(_number(r.get("bytes")), ".1f", 1 / 1024), _fmt(_number(r.get("size ratio")), ".2f"),
              r.get("non-integer ops")]
             for study in studies for r in study["rows"]]
    return _md_table(["model", "file", "accuracy %", "vs float32, points [95% CI]", "size KB", "float32 size / size",
                      "ops not integer-only"], table)


def _text(value: Any) -> Any:
    """A recorded text cell, or None when it is missing (NaN in a study's table)."""
    return None if _number(value) is None else value


def _keras3_quantization_table(studies: list[dict[str, Any]]) -> str:
    table = []
    for study in studies:
        for r in study["rows"]:
            converted = bool(r.get("converted"))
            table.append([study["model"], f"`{r['mode']}`", r.get("block size"), _percent(r.get("Keras accuracy")),
                          _percent(r.get("agreement with float")),
                          _fmt(_number(r.get("weight bytes in memory")), ".1f", 1 / 1024),
                          _fmt(_number(r.get("int8 bytes in memory")), ".1f", 1 / 1024),
                          "yes" if converted else "**no**", _fmt(_number(r.get("file bytes")), ".1f", 1 / 1024),
                          *(_fmt(_number(r.get(k)), ".0f") for k in (
                              "FULLY_CONNECTED", "BATCH_MATMUL", "dequantize ops (CAST, DEQUANTIZE)",
                              "ops not integer-only")),
                          _percent(r.get("LiteRT accuracy")),
                          _text(r.get("file constants")) if converted else _text(r.get("note"))])
    return _md_table(["model", "mode", "block size", "Keras accuracy %", "top-1 agreement with float %",
                      "weights in memory KB", "of which int8 KB", "converts", "file KB", "FULLY_CONNECTED",
                      "BATCH_MATMUL", "CAST + DEQUANTIZE", "ops not integer-only", "LiteRT accuracy %",
                      "the file's constants, or the converter's refusal"], table)


def _layer_bits_table(studies: list[dict[str, Any]]) -> str:
    table = [[study["model"], r["weights"], _percent(r.get("accuracy")),
              _interval(r.get("accuracy_delta"), r.get("delta_low"), r.get("delta_high"), 100),
              _percent(r.get("top1_agreement")), _fmt(_number(r.get("output_sqnr_db")), ".1f"),
              _fmt(_number(r.get("file bytes")), ".1f", 1 / 1024),
              _interval(r.get("gain over the break (points)"), r.get("gain low"), r.get("gain high")),
              _fmt(_number(r.get("recovered")), ".0f", 100)]
             for study in studies for r in study["rows"]]
    return _md_table(["model", "weights", "accuracy %", "vs float32, points [95% CI]",
                      "top-1 agreement with float32 %", "output SQNR dB", "file KB",
                      "gain over the break, points [95% CI]", "share of the break won back %"], table)


def _keras3_qat_table(studies: list[dict[str, Any]]) -> str:
    table = [[study["model"], r["method"], _percent(r.get("accuracy")),
              _interval(r.get("accuracy_delta"), r.get("delta_low"), r.get("delta_high"), 100),
              _percent(r.get("Keras accuracy")), _percent(r.get("Keras-file agreement")),
              _fmt(_number(r.get("steps")), ".0f"), _fmt(_number(r.get("fine-tune seconds")), ".0f"),
              _interval(r.get("QAT gain vs control (points)"), r.get("gain low"), r.get("gain high"))]
             for study in studies for r in study["rows"]]
    return _md_table(["model", "method", "file accuracy %", "vs float32, points [95% CI]", "Keras accuracy %",
                      "Keras-file top-1 agreement %", "fine-tune steps", "fine-tune s",
                      "QAT - control, points [95% CI]"], table)


def _steps(row: dict[str, Any]) -> str:
    """``XNNPACK / reference`` integer steps; "-" for a side not measured."""
    return " / ".join(_fmt(_number(row.get(k)), ".0f") or "-"
                      for k in ("max steps", "max steps to reference kernels"))


#: The micro_runs columns the report shows as percentages, in its order.
MICRO_PERCENTS = ("micro accuracy", "litert accuracy", "identical", "identical to reference kernels", "top-1 agreement")


def _micro_runs_table(studies: list[dict[str, Any]]) -> str:
    from qlab.conversion.micro_boards import BOARDS, why_not

    table = []
    for study in studies:
        for r in study["rows"]:
            refusal, arena = _text(r.get("refusal")), _number(r.get("arena bytes"))
            fits = [None if refusal else why_not(int(r["flash bytes"]), None if arena is None else int(arena),
                                                 None, board) or "fits" for board in BOARDS]
            ran = ([None] * (len(MICRO_PERCENTS) + 1) if refusal
                   else [*(_percent(r.get(k)) for k in MICRO_PERCENTS), _steps(r)])
            table.append([study["model"], r["variant"], _fmt(_number(r.get("flash bytes")), ".1f", 1 / 1024),
                          _fmt(arena, ".1f", 1 / 1024), *ran, refusal, *fits])
    return _md_table(["model", "variant", "flash KB", "arena KB", "TFLM accuracy %", "LiteRT accuracy %",
                      "identical to LiteRT (XNNPACK) %", "identical to LiteRT's reference kernels %",
                      "top-1 agreement %", "most steps (XNNPACK / reference)", "TFLM refuses",
                      *(board.name for board in BOARDS)], table)


STUDY_TABLES = {"weight_bits": _weight_bits_table, "equalization": _equalization_table,
                "calibration_failures": _calibration_failures_table,
                "range_estimators": _range_estimators_table, "bits_picture": _bits_picture_table,
                "adaround": _adaround_table, "partial_qat": _partial_qat_table,
                "deep_compression": _deep_compression_table, "litert_quantizer_routes": _routes_table,
                "litert_quantizer_4bit": _four_bit_table, "keras3_quantization": _keras3_quantization_table,
                "layer_bits": _layer_bits_table, "keras3_qat": _keras3_qat_table,
                "micro_runs": _micro_runs_table}


def _recorded_studies(results: dict[str, Any], studies_dir: str | Path | None,
                      bits_figure: str = "benchmarks/bits_picture.png") -> str:
    """The recorded-studies section: a table per study, or why there is none."""
    found, missing = recorded_studies(results, studies_dir)
    missing_text = "" if not missing else _paragraph(
        "studies_missing", files=", ".join(f"`{name}`" for name in missing))
    if not found:
        return missing_text or _paragraph("studies_none")
    text = _paragraph("studies_intro")
    for name, table in STUDY_TABLES.items():
        if name in found:
            weights = ", ".join(f"`{s['model']}` sha256 `{s['fingerprint']}`" for s in found[name])
            text += _paragraph(f"study_{name}", weights=weights, table=table(found[name]),
                               figure=bits_figure)
    others = [name for name in found if name not in STUDY_TABLES]
    if others:
        text += _paragraph("studies_not_tabulated", studies=", ".join(f"`{n}`" for n in others))
    return text + missing_text


# ---------------------------------------------------------------- the whole report
def _header_fields(results: dict[str, Any], goals: list[dict[str, Any]]) -> dict[str, Any]:
    missed = [g for g in goals if not g["ok"]]
    extra = notes(results)
    load, env = results.get("load_average") or {}, results.get("environment", {})
    return {
        "command": results.get("command", "qlab bench"), "started": results.get("started", "?"),
        "finished": results.get("finished") or "NOT YET (partial results)",
        "minutes": f"{results.get('total_seconds', 0) / 60:.0f}",
        "verdict": "all goals met" if not missed else
                   f"{len(missed)} of {len(goals)} goals MISSED (listed below)",
        "machine_table": _md_table(["", ""], [[k, v] for k, v in env.items()]),
        "load_average": "" if load.get("start") is None else _paragraph(
            "load_average", start=load["start"], now=load["now"], cores=env.get("cores", "?")),
        "notes": _paragraph("notes", notes="\n".join(f"- {line}" for line in extra))
                 if extra else ""}


def render_markdown(results: dict[str, Any],
                    plot_name: str = "benchmarks/accuracy_size_latency.png",
                    studies_dir: str | Path | None = None,
                    bits_figure: str = "benchmarks/bits_picture.png") -> str:
    """``BENCHMARKS.md`` from the results dict (nothing is measured here).

    ``studies_dir`` holds the study files the results list (default: the checkout's
    ``benchmarks/studies/``, :func:`qlab.workbook.studies.recorded_dir`); ``bits_figure``
    is the link to the accuracy-versus-bits picture (:func:`save_bits_picture`).
    """
    goals = goal_results(results)
    config, spreads = results.get("config", {}), results.get("scale_spread", {})
    return _fill(
        "document", **_header_fields(results, goals),
        num_threads=config.get("num_threads", 1),
        latency_repeats=config.get("latency_repeats", "?"),
        latency_runs=config.get("latency_runs", "?"),
        model_tables=_model_tables(results), slower_than_float32=_slower_than_float32(results),
        fine_metrics=_fine_metrics(results),
        plot_name=plot_name, gaps_table=_gaps_table(results),
        widest_spread=_widest_spread(spreads), widest_tensors=_widest_tensors(spreads),
        size_table=_size_table(results),
        recorded_studies=_recorded_studies(results, studies_dir, bits_figure),
        notebook_times=_notebook_times(results),
        widget_times=_widget_times(results),
        goals_table=_md_table(["goal", "measured", "met"],
                              [[g["goal"], g["measured"], "yes" if g["ok"] else "**NO**"]
                               for g in goals])) + "\n"


# ---------------------------------------------------------------- files
def save_plot(results: dict[str, Any], path: str | Path) -> Path:
    """Save the picture of :mod:`qlab.plots.benchmark` as a PNG, atomically; return the path."""
    from qlab.files.io import atomic_path
    from qlab.plots.benchmark import benchmark_view, draw_benchmark

    fig = draw_benchmark(benchmark_view(results))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def save_bits_picture(results: dict[str, Any], path: str | Path,
                      studies_dir: str | Path | None = None) -> Path | None:
    """Draw the recorded ``bits_picture`` studies of ``results`` (all models, one figure) as a PNG.

    Returns the path, or None when the run recorded no such study.
    """
    from qlab.files.io import atomic_path
    from qlab.plots.bits_picture import plot_bits_picture

    studies = recorded_studies(results, studies_dir)[0].get("bits_picture")
    if not studies:
        return None
    fig = plot_bits_picture(_study_frame(studies))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def _link(target: Path, report_path: Path) -> str:
    """``target`` as the report links it: relative to the report's folder when it can be."""
    try:
        return target.resolve().relative_to(report_path.resolve().parent).as_posix()
    except ValueError:
        return target.as_posix()


def write_report(results: dict[str, Any], json_path: str | Path | None = None,
                 report_path: str | Path | None = None, plot_path: str | Path | None = None,
                 studies_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the JSON, the plot and the markdown report (each atomically); return the paths.

    Paths left out are the repository's ``benchmarks/results.json``, ``BENCHMARKS.md``,
    ``benchmarks/accuracy_size_latency.png`` and ``benchmarks/studies/`` (read, not written);
    the accuracy-versus-bits picture goes beside the plot as ``bits_picture.png``.
    """
    from qlab.files.io import write_bytes_atomic, write_json_atomic

    json_path = Path(json_path) if json_path is not None else results_json()
    report_path = Path(report_path) if report_path is not None else report_md()
    plot_path = Path(plot_path) if plot_path is not None else plot_png()
    bits_path = plot_path.with_name("bits_picture.png")
    write_json_atomic(json_path, results)
    save_plot(results, plot_path)
    save_bits_picture(results, bits_path, studies_dir)
    text = render_markdown(results, _link(plot_path, report_path), studies_dir, _link(bits_path, report_path))
    write_bytes_atomic(report_path, text.encode())
    return {"json": json_path, "report": report_path, "plot": plot_path, "bits_picture": bits_path}
