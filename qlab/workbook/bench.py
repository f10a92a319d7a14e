"""The benchmark: accuracy, size, latency and workbook run time, measured side by side.

``qlab bench`` (and ``make bench``) measures everything in one process on one
machine and writes ``benchmarks/results.json``, ``BENCHMARKS.md`` and a plot;
``benchmarks/check.py`` reads the JSON back and fails when a goal is missed.

The functions come in two kinds: ``measure_*`` / :func:`collect` run models,
notebooks and widgets and return plain dicts; :func:`render_markdown`,
:func:`goal_results`, :func:`check_goals` and :func:`plot_results` only read such a
dict, so they are tested on a small fake one.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from qlab.files.paths import repository_root

REPO_ROOT = repository_root()

SCHEMA = 1
BENCH_DIR = REPO_ROOT / "benchmarks"
RESULTS_JSON = BENCH_DIR / "results.json"
REPORT_MD = REPO_ROOT / "BENCHMARKS.md"
PLOT_PNG = BENCH_DIR / "accuracy_size_latency.png"
WIDGET_SCRIPT = BENCH_DIR / "widget_update_times.py"

#: Accuracy bounds of the pipeline issue, as fractions: float minimum and the largest
#: drop (float32 - variant) allowed for each bounded variant.
ACCURACY_GOALS: dict[str, dict[str, float]] = {
    "mnist_cnn": {"float_min": 0.990, "int8_per_channel": 0.003, "qat_int8": 0.0015},
    "mobilenet_v2": {"float_min": 0.985, "qat_int8": 0.003},
    "mobilenet_v1": {"float_min": 0.985, "qat_int8": 0.003},
}
#: Variants whose every weight tensor is stored as int8: each must be >= MIN_INT8_SIZE_RATIO
#: times smaller than float32. (qat_partial leaves layers float by design; qat_4bit has no file.)
INT8_VARIANTS = ("dynamic_int8", "int8_per_channel", "int8_per_tensor", "int16x8", "qat_int8")
MIN_INT8_SIZE_RATIO = 3.0
#: A workbook run in full mode must take at most this long (all notebooks, one after another).
MAX_WORKBOOK_FULL_SECONDS = 30 * 60
#: The widgets' goal: median update under this many milliseconds.
WIDGET_MEDIAN_GOAL_MS = 100.0
#: The lessons the workbook is planned to have (notebooks/00..09).
PLANNED_NOTEBOOKS = 10


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _load_average() -> float | None:
    """1-minute load average: how busy the (shared) machine was around the timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(f"[bench {_dt.datetime.now(_dt.timezone.utc):%H:%M:%S}] {message}", flush=True)


# ---------------------------------------------------------------- latency noise
def summarize_repeats(repeats: Sequence[dict[str, float]], baseline: str = "float32"
                      ) -> dict[str, dict[str, float]]:
    """Median and min-max over repeated latency measurements, absolute and relative to ``baseline``.

    Args:
        repeats: one dict per repeat, ``{variant: median latency in ms}``, every repeat
            measured interleaved with ``baseline`` (so each repeat's ratio is a fair one).

    Returns:
        ``{variant: {latency_ms, latency_ms_min, latency_ms_max, latency_ratio,
        latency_ratio_min, latency_ratio_max, latency_repeats}}``.
    """
    if not repeats or any(baseline not in r for r in repeats):
        raise ValueError(f"repeats must be a non-empty list of dicts that all contain the "
                         f"baseline {baseline!r}, got {repeats!r}")
    summary = {}
    for variant in repeats[0]:
        ms = [r[variant] for r in repeats]
        ratios = [r[variant] / r[baseline] for r in repeats]
        summary[variant] = {
            "latency_ms": statistics.median(ms), "latency_ms_min": min(ms),
            "latency_ms_max": max(ms), "latency_ratio": statistics.median(ratios),
            "latency_ratio_min": min(ratios), "latency_ratio_max": max(ratios),
            "latency_repeats": len(repeats)}
    return summary


def measure_latency_repeats(files: dict[str, bytes], repeats: int = 7, runs: int = 400,
                            warmup: int = 50) -> dict[str, dict[str, float]]:
    """Run :func:`qlab.lite.tflite.compare_latency` ``repeats`` times and summarize the medians."""
    from qlab.lite.tflite import compare_latency

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    medians = []
    for _ in range(repeats):
        stats = compare_latency(files, runs=runs, warmup=warmup)
        medians.append({name: s.median_ms for name, s in stats.items()})
    return summarize_repeats(medians)


# ---------------------------------------------------------------- what the files hold
def scale_spread_summary(model_bytes: bytes) -> dict[str, Any]:
    """The widest-spread per-channel weight tensor of an int8 file (why per-tensor loses)."""
    from qlab.lite.debug import weight_scale_spread

    spread = weight_scale_spread(model_bytes)
    if spread.empty:
        return {}
    top = spread.iloc[0]
    return {"tensor": str(top["tensor"]), "channels": int(top["channels"]),
            "max_min_scale": float(top["max/min scale"]),
            "levels_of_smallest_channel_if_per_tensor":
                float(top["levels_of_smallest_channel_if_per_tensor"]),
            "tensors_over_10x": int((spread["max/min scale"] > 10).sum()),
            "per_channel_tensors": int(len(spread))}


# ---------------------------------------------------------------- the comparison
def _read_files(model: str, variants: Sequence[str], seed: int) -> dict[str, bytes]:
    from qlab.workbook.pipeline import _tflite_dir

    folder = _tflite_dir(model, "full", seed)
    return {v: (folder / f"{v}.tflite").read_bytes() for v in variants
            if (folder / f"{v}.tflite").exists()}


def _measure_model(model: str, variants: Sequence[str], seed: int, latency_repeats: int,
                   latency_runs: int, verbose: bool) -> tuple[Any, dict[str, Any]]:
    """``(ComparisonResult, extras)`` of one model: compare rows plus repeated latency."""
    from qlab.workbook.pipeline import compare

    result = compare([model], variants, size="full", seed=seed, latency=False,
                     verbose=2 if verbose else 0)
    rows = result.rows()
    files = _read_files(model, ["float32"] + [r["variant"] for r in rows
                                              if r["evaluated_with"] == "litert"], seed)
    _say(verbose, f"{model}: latency of {len(files)} files, {latency_repeats} repeats")
    noise = measure_latency_repeats(files, latency_repeats, latency_runs)
    for row in rows:
        row.update(noise.get(row["variant"], {}))
    extras = {"rows": rows, "size_breakdown": {v: size_breakdown(b) for v, b in files.items()},
              "scale_spread": (scale_spread_summary(files["int8_per_channel"])
                               if "int8_per_channel" in files else {})}
    return result, extras


def measure_compare(models: str | Sequence[str] = "all", variants: str | Sequence[str] = "all",
                    seed: int = 0, latency_repeats: int = 7, latency_runs: int = 400,
                    verbose: bool = True) -> dict[str, Any]:
    """The full-size ``qlab compare`` table, with latency repeated and summarized per model.

    Accuracy and size come from :func:`qlab.workbook.pipeline.compare`; latency is measured here
    ``latency_repeats`` times (each interleaved with float32) so the report can show the
    median and the min-max noise. Also records each int8 file's size breakdown and each
    model's per-channel scale spread. A model that fails is recorded under ``errors``
    and the others are still measured.
    """
    from qlab.lite.conversion import check_variants
    from qlab.lite.environment import environment_report
    from qlab.workbook.pipeline import check_models

    models, variants = check_models(models), check_variants(variants)
    start = time.perf_counter()
    out: dict[str, Any] = {"rows": [], "size_breakdown": {}, "scale_spread": {}, "errors": {},
                           "environment": environment_report(), "config": {}}
    for model in models:
        try:
            result, extras = _measure_model(model, variants, seed, latency_repeats,
                                            latency_runs, verbose)
        except Exception as exc:  # noqa: BLE001 - one broken model must not hide the others
            out["errors"][model] = f"{type(exc).__name__}: {exc}"
            _say(verbose, f"{model} FAILED: {out['errors'][model]}")
            continue
        out["rows"] += extras["rows"]
        out["size_breakdown"][model] = extras["size_breakdown"]
        if extras["scale_spread"]:
            out["scale_spread"][model] = extras["scale_spread"]
        out["config"] = {**result.config, "models": models, "latency": True,
                         "latency_repeats": latency_repeats, "latency_runs": latency_runs}
    out["compare_seconds"] = time.perf_counter() - start
    return out


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


# ---------------------------------------------------------------- notebooks and widgets
def measure_notebooks(paths: Sequence[Path], modes: Sequence[str] = ("full", "smoke"),
                      progress: bool = False, verbose: bool = True,
                      on_run: Callable[[list[dict[str, Any]]], Any] | None = None
                      ) -> list[dict[str, Any]]:
    """Run every notebook in each mode (fresh kernel each, one after another) and time it.

    A failing notebook is recorded with its error and the time until it failed; the
    others still run. ``on_run`` is called with the rows so far after each notebook.
    """
    from qlab.workbook.notebook import run_notebook

    rows = []
    for mode in modes:
        for path in paths:
            _say(verbose, f"notebook {path.name} ({mode}) ...")
            start = time.perf_counter()
            try:
                run = run_notebook(path, smoke=(mode == "smoke"), progress=progress)
                row = {"notebook": path.name, "mode": mode, "seconds": run.seconds, "ok": True,
                       "error": None}
            except RuntimeError as exc:
                row = {"notebook": path.name, "mode": mode, "ok": False, "error": str(exc),
                       "seconds": time.perf_counter() - start}
            _say(verbose, f"  {'ok' if row['ok'] else 'FAILED'} in {row['seconds']:.1f} s")
            rows.append(row)
            if on_run:
                on_run(rows)
    return rows


def _widget_benchmark() -> Any:
    """The widgets engineer's script as a module (its ``main`` only runs as a script)."""
    spec = importlib.util.spec_from_file_location("widget_update_times", WIDGET_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_widgets(repeats: int = 15) -> list[dict[str, Any]]:
    """Control change -> new picture, per widget and control (``benchmarks/widget_update_times.py``)."""
    bench = _widget_benchmark()
    rows = []
    for name, make, control_name, values in bench.CASES:
        widget = make()
        try:
            wall, cpu = bench.time_changes(widget, getattr(widget, control_name), values, repeats)
        finally:
            widget.close()
        rows.append({"widget": name, "control": control_name, "updates": int(len(wall)),
                     "median_ms": float(np.median(wall)), "p90_ms": float(np.percentile(wall, 90)),
                     "max_ms": float(np.max(wall)), "cpu_median_ms": float(np.median(cpu))})
    return rows


# ---------------------------------------------------------------- everything
def collect(models: str | Sequence[str] = "all", variants: str | Sequence[str] = "all",
            seed: int = 0, latency_repeats: int = 7, latency_runs: int = 400,
            notebooks: Sequence[str] | None = None, skip_notebooks: bool = False,
            skip_widgets: bool = False, widget_repeats: int = 15, verbose: bool = True,
            command: str = "qlab bench",
            checkpoint: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """Measure the comparison, the widgets and the notebooks; return the results dict.

    ``checkpoint`` is called with the results so far (marked ``partial``) after each
    step, so a run that is cut short still leaves its numbers behind.
    """
    from qlab.workbook.notebook import notebook_paths

    started, start = _now(), time.perf_counter()
    load_at_start = _load_average()
    paths = notebook_paths(notebooks)
    skipped = [part for part, skip in (("widgets", skip_widgets), ("notebooks", skip_notebooks))
               if skip]

    def save(results: dict[str, Any], partial: bool = True) -> dict[str, Any]:
        results.update(schema=SCHEMA, command=command, started=started, skipped=skipped,
                       notebooks_found=[p.name for p in paths], partial=partial,
                       finished=None if partial else _now(),
                       total_seconds=time.perf_counter() - start,
                       load_average={"start": load_at_start, "now": _load_average()})
        if checkpoint and partial:
            checkpoint(results)
        return results

    _say(verbose, "comparison: every model x variant at full size")
    results = measure_compare(models, variants, seed, latency_repeats, latency_runs, verbose)
    results.update(gaps=accuracy_gaps(results["rows"]), widgets=[], notebooks=[])
    save(results)
    if not skip_widgets:
        _say(verbose, f"widgets: {widget_repeats} updates per control")
        results["widgets"] = measure_widgets(widget_repeats)
        save(results)
    if not skip_notebooks:
        def on_run(rows: list[dict[str, Any]]) -> None:
            results["notebooks"] = list(rows)
            save(results)

        results["notebooks"] = measure_notebooks(paths, verbose=verbose, on_run=on_run)
    return save(results, partial=False)


def notebook_totals(results: dict[str, Any]) -> dict[str, float]:
    """Seconds for the whole workbook per mode (failed notebooks count until they failed)."""
    totals: dict[str, float] = {}
    for row in results.get("notebooks", []):
        totals[row["mode"]] = totals.get(row["mode"], 0.0) + row["seconds"]
    return totals


# ---------------------------------------------------------------- goals
def _row(results: dict[str, Any], model: str, variant: str) -> dict[str, Any] | None:
    return next((r for r in results.get("rows", [])
                 if r["model"] == model and r["variant"] == variant), None)


def _accuracy_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    for model, bounds in ACCURACY_GOALS.items():
        base = _row(results, model, "float32")
        base_acc = base.get("accuracy") if base else None
        goals.append({"goal": f"{model} float32 accuracy >= {100 * bounds['float_min']:.1f}%",
                      "measured": "not measured" if base_acc is None else f"{100 * base_acc:.2f}%",
                      "ok": base_acc is not None and base_acc >= bounds["float_min"]})
        for variant, max_drop in bounds.items():
            if variant == "float_min":
                continue
            row = _row(results, model, variant)
            acc = row.get("accuracy") if row else None
            drop = None if acc is None or base_acc is None else 100 * (base_acc - acc)
            goals.append({"goal": f"{model} {variant} within {100 * max_drop:.2f} points of float32",
                          "measured": "not measured" if drop is None else
                          f"{100 * acc:.2f}% ({-drop:+.2f} points)",
                          # 1e-9: 0.15 points stored as a float must not fail 0.15
                          "ok": drop is not None and drop <= 100 * max_drop + 1e-9})
        if "int8_per_channel" not in bounds:
            pc, pt = _row(results, model, "int8_per_channel"), _row(results, model, "int8_per_tensor")
            measured = bool(pc and pt and pc.get("accuracy") is not None
                            and pt.get("accuracy") is not None)
            goals.append({"goal": f"{model} int8_per_tensor vs int8_per_channel gap measured",
                          "measured": f"{100 * (pc['accuracy'] - pt['accuracy']):+.2f} points "
                                      "(per-channel - per-tensor)" if measured else "not measured",
                          "ok": measured})
    return goals


def _size_and_latency_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    for row in results.get("rows", []):
        if row["variant"] not in INT8_VARIANTS:
            continue
        ratio, name = row.get("size_ratio"), f"{row['model']} {row['variant']}"
        parts = results.get("size_breakdown", {}).get(row["model"], {}).get(row["variant"])
        why = ""
        if parts and ratio is not None and ratio < 3.5:  # say where the bytes went
            size = sum(parts.values())
            why = (f" (scales and zero-points {100 * parts.get('scales_zero_points', 0) / size:.0f}%"
                   f", graph {100 * parts.get('other', 0) / size:.0f}% of the file)")
        goals.append({"goal": f"{name} file >= {MIN_INT8_SIZE_RATIO:g}x smaller than float32",
                      "measured": "no file" if ratio is None else f"{ratio:.2f}x{why}",
                      "ok": ratio is not None and ratio >= MIN_INT8_SIZE_RATIO})
        latency = row.get("latency_ratio")
        goals.append({"goal": f"{name} latency ratio vs float32 measured in the same run",
                      "measured": "not measured" if latency is None else f"{latency:.2f}x",
                      "ok": latency is not None})
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
    total = notebook_totals(results)["full"]
    goals.append({"goal": f"workbook full run <= {MAX_WORKBOOK_FULL_SECONDS // 60} min",
                  "measured": f"{total / 60:.1f} min ({len(full)} notebooks)",
                  "ok": total <= MAX_WORKBOOK_FULL_SECONDS})
    return goals


def goal_results(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal with what was measured and whether it is met: ``{goal, measured, ok}``."""
    if not isinstance(results, dict) or "rows" not in results:
        raise ValueError("results must be the dict of qlab bench (benchmarks/results.json) with a "
                         f"'rows' list, got {type(results).__name__}")
    return _accuracy_goals(results) + _size_and_latency_goals(results) + _notebook_goals(results)


def check_goals(results: dict[str, Any]) -> list[str]:
    """The missed goals, as readable lines (empty when every goal is met)."""
    return [f"{g['goal']}: {g['measured']}" for g in goal_results(results) if not g["ok"]]


def notes(results: dict[str, Any]) -> list[str]:
    """What the results cannot vouch for (not failures): skipped parts, notebooks not written yet."""
    lines = [f"{part} skipped in this run" for part in results.get("skipped", [])]
    lines += [f"`{model}` could not be measured: {error}"
              for model, error in results.get("errors", {}).items()]
    if results.get("partial"):
        lines.insert(0, "PARTIAL: written while the run was still going (or after it was cut "
                        "short); the parts not listed here were not measured")
    found = results.get("notebooks_found", [])
    if len(found) < PLANNED_NOTEBOOKS:
        numbers = {name[:2] for name in found}
        missing = [f"{i:02d}" for i in range(PLANNED_NOTEBOOKS) if f"{i:02d}" not in numbers]
        lines.append(f"only {len(found)} of the {PLANNED_NOTEBOOKS} planned notebooks existed when "
                     f"this ran (missing: {', '.join(missing)}); the workbook time covers those "
                     "that existed")
    slow = [f"{w['widget']}.{w['control']} ({w['median_ms']:.0f} ms)"
            for w in results.get("widgets", []) if w["median_ms"] > WIDGET_MEDIAN_GOAL_MS]
    if slow:
        lines.append(f"widget updates over the {WIDGET_MEDIAN_GOAL_MS:.0f} ms median goal: "
                     + ", ".join(slow))
    return lines


# ---------------------------------------------------------------- the report
def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str | None:
    return None if value is None else format(scale * value, spec)


def _range(row: dict[str, Any], key: str, spec: str) -> str | None:
    if row.get(key) is None:
        return None
    low, high = row.get(f"{key}_min"), row.get(f"{key}_max")
    noise = f" ({format(low, spec)}-{format(high, spec)})" if low is not None else ""
    return f"{format(row[key], spec)}{noise}"


def _results_section(results: dict[str, Any]) -> list[str]:
    config = results.get("config", {})
    out = ["## Accuracy, size and latency", "",
           f"Top-1 accuracy on the 10,000 MNIST test images through the LiteRT interpreter "
           f"(`qat_4bit`: the fake-quantized Keras model). Latency: batch 1, "
           f"{config.get('num_threads', 1)} thread, median of {config.get('latency_repeats', '?')} "
           f"repeats of {config.get('latency_runs', '?')} invokes each interleaved with float32; "
           "in brackets the min-max over the repeats (the noise). Ratios are float32 / variant "
           "for size (higher = smaller) and variant / float32 for latency (lower = faster), "
           "measured in the same run.", ""]
    for model in dict.fromkeys(r["model"] for r in results["rows"]):
        rows = [r for r in results["rows"] if r["model"] == model]
        base = next((r["accuracy"] for r in rows if r["variant"] == "float32"), None)
        table = [[f"`{r['variant']}`", _fmt(r.get("accuracy"), ".2f", 100),
                  None if base is None or r.get("accuracy") is None
                  else f"{100 * (r['accuracy'] - base):+.2f}",
                  _fmt(r.get("size_bytes"), ".1f", 1 / 1024), _fmt(r.get("size_ratio"), ".2f"),
                  _range(r, "latency_ms", ".4f"), _range(r, "latency_ratio", ".2f"),
                  _fmt(r.get("keras_tflite_agreement"), ".2f", 100), r.get("note")] for r in rows]
        out += [f"### {model}", "", _md_table(
            ["variant", "accuracy %", "vs float32 (points)", "size KB", "float32 size / size",
             "latency ms (min-max)", "latency / float32 (min-max)", "Keras-TFLite agreement %",
             "note"], table), ""]
    slow = [r for r in results["rows"] if (r.get("latency_ratio") or 0) > 2]
    if slow:
        out += ["Slower than float32: " + ", ".join(
            f"`{r['model']}` `{r['variant']}` {r['latency_ratio']:.0f}x" for r in slow) + "."
            + (" `int16x8` lacks optimized CPU kernels (TFLite's documentation of the 16x8 "
               "mode says inference is noticeably slower than 8-bit for that reason): it is a "
               "route for accuracy on hardware that supports it, not for speed on this CPU."
               if any(r["variant"] == "int16x8" for r in slow) else ""), ""]
    return out


def _spread_sentence(spreads: dict[str, dict[str, Any]]) -> str:
    spreads = {m: s for m, s in spreads.items() if s}
    if not spreads:
        return ""
    widest = max(spreads, key=lambda m: spreads[m]["max_min_scale"])
    s = spreads[widest]
    return (f" In these trained models the widest spread is {s['max_min_scale']:.1f}x "
            f"(`{widest}`), so even there the narrowest channel would keep about "
            f"{s['levels_of_smallest_channel_if_per_tensor']:.0f} levels under a per-tensor scale.")


def _gaps_section(results: dict[str, Any]) -> list[str]:
    spreads = results.get("scale_spread", {})
    table = []
    for g in results.get("gaps", []):
        s = spreads.get(g["model"], {})
        table.append([g["model"], _fmt(g["per_channel_minus_per_tensor"], "+.2f"),
                      _fmt(g["qat_int8_minus_int8_per_channel"], "+.2f"),
                      _fmt(s.get("max_min_scale"), ".0f"),
                      _fmt(s.get("levels_of_smallest_channel_if_per_tensor"), ".1f"),
                      None if not s else f"{s['tensors_over_10x']} of {s['per_channel_tensors']}"])
    out = ["## Per-tensor vs per-channel, PTQ vs QAT", "", _md_table(
        ["model", "per-channel - per-tensor (points)", "QAT int8 - PTQ per-channel (points)",
         "widest max/min channel scale", "levels left to its smallest channel if per-tensor",
         "per-channel weight tensors spread > 10x"], table), "",
        "How per-tensor loses: one scale per weight tensor must cover its widest output "
        "channel, so a channel whose range is k times smaller is rounded to about 127/k levels "
        "instead of 127; per-channel scales (TFLite's default for conv and dense weights) give "
        "every channel its own 127. Channels spread because training gives them different "
        "ranges and, in the MobileNets, because batch normalization is folded into the kernels "
        "(each channel multiplied by its own gamma/sigma)." + _spread_sentence(spreads) + " So the accuracy gap above stays "
        "small wherever the narrowest channels keep more than a few levels, and activation "
        "rounding (one scale per tensor in both schemes) dominates what remains. MobileNets "
        "trained long on ImageNet have depthwise channels whose ranges differ by 100x and more, "
        "where per-tensor int8 breaks down (notebook 05). Per-channel's price is size: its "
        "scales and zero-points (next section).", ""]
    for model, s in spreads.items():
        if s:
            out.append(f"- `{model}`: the widest tensor is `{s['tensor']}` ({s['channels']} "
                       f"channels, max/min scale {s['max_min_scale']:.1f}).")
    return out + [""]


def _size_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for model, files in results.get("size_breakdown", {}).items():
        float_size = sum(files.get("float32", {}).values())
        for variant in INT8_VARIANTS:
            parts = files.get(variant)
            if not parts:
                continue
            size = sum(parts.values())

            def kb(*keys: str) -> str:
                part = sum(parts.get(k, 0) for k in keys)
                return f"{part / 1024:.1f} ({100 * part / size:.0f}%)"

            rows.append([model, f"`{variant}`", f"{size / 1024:.1f}",
                         f"{float_size / size:.2f}" if float_size else None, kb("int8"),
                         kb("int32", "int64"), kb("float32", "float16"),
                         kb("scales_zero_points"), kb("other")])
    return ["## Why int8 files are not exactly 4x smaller", "",
            "4x is the limit for the weights alone (1 byte instead of 4). A file also stores "
            "the biases (int32, int64 in the 16x8 mode), the float tensors a variant keeps "
            "(dynamic range), the quantization parameters - TFLite writes every scale as a "
            "float32 and every zero-point as an int64, 12 bytes per channel, which is more than "
            "the 9 int8 weights of a 3x3 depthwise channel - and the op graph with tensor names "
            "and shapes. None of these shrinks, so the smaller and more per-channel the model, "
            "the further its ratio falls from 4x; per-tensor files, with one scale per tensor, "
            "come closest. What each int8 file holds, in KB (share of the file):", "",
            _md_table(["model", "variant", "file KB", "float32 / file", "int8 constants",
                       "bias constants (int32/int64)", "float constants", "scales and zero-points",
                       "graph, names, shapes"], rows), ""]


def _notebook_section(results: dict[str, Any]) -> list[str]:
    runs = results.get("notebooks", [])
    if not runs:
        return ["## Notebook run times", "", "Not measured in this run (`--skip-notebooks`).", ""]
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_name.setdefault(r["notebook"], {})[r["mode"]] = r

    def cell(r: dict[str, Any] | None) -> str | None:
        return None if r is None else f"{r['seconds']:.0f}" + ("" if r["ok"] else " FAILED")

    names = list(dict.fromkeys([*results.get("notebooks_found", []), *by_name]))
    table = [[f"`{name}`", cell(by_name.get(name, {}).get("full")),
              cell(by_name.get(name, {}).get("smoke"))] for name in names]
    totals = notebook_totals(results)
    table.append(["**whole workbook**", _fmt(totals.get("full"), ".0f"),
                  _fmt(totals.get("smoke"), ".0f")])
    out = ["## Notebook run times", "",
           "Seconds to execute each notebook top to bottom with papermill in a fresh kernel, one "
           "after another (`qlab run` does the same), with the trained models already cached in "
           "`artifacts/models/` (a fresh clone trains them first). Full mode is what a learner "
           "runs; smoke mode is what `make test` runs.", "",
           _md_table(["notebook", "full s", "smoke s"], table), ""]
    if results.get("partial"):
        out += ["A `-` is a notebook the run had not reached when these results were written; "
                "the totals cover only the runs listed.", ""]
    failed = [r for r in runs if not r["ok"]]
    for r in failed:
        out.append(f"- `{r['notebook']}` ({r['mode']}) FAILED: {r['error']}")
    return out + ([""] if failed else [])


def _widget_section(results: dict[str, Any]) -> list[str]:
    rows = results.get("widgets", [])
    if not rows:
        return ["## Widget update times", "", "Not measured in this run (`--skip-widgets`).", ""]
    table = [[w["widget"], f"`{w['control']}`", w["updates"], f"{w['median_ms']:.1f}",
              f"{w['p90_ms']:.1f}", f"{w['cpu_median_ms']:.1f}"] for w in rows]
    return ["## Widget update times", "",
            "Control change to new picture in the kernel (recompute, redraw, PNG encode), as "
            f"`benchmarks/widget_update_times.py` measures it; goal: median under "
            f"{WIDGET_MEDIAN_GOAL_MS:.0f} ms. The browser adds one comm round trip.", "",
            _md_table(["widget", "control", "updates", "median ms", "p90 ms", "CPU median ms"],
                      table), ""]


def render_markdown(results: dict[str, Any], plot_name: str = "benchmarks/accuracy_size_latency.png"
                    ) -> str:
    """``BENCHMARKS.md`` from the results dict (nothing is measured here)."""
    env = results.get("environment", {})
    goals = goal_results(results)
    missed = [g for g in goals if not g["ok"]]
    verdict = ("all goals met" if not missed else
               f"{len(missed)} of {len(goals)} goals MISSED (listed below)")
    out = ["# Benchmarks", "",
           f"Generated by `{results.get('command', 'qlab bench')}` from `benchmarks/results.json`, "
           f"started {results.get('started', '?')}, finished "
           f"{results.get('finished') or 'NOT YET (partial results)'} "
           f"({results.get('total_seconds', 0) / 60:.0f} min). Do not edit by hand: run "
           "`make bench` again. `python benchmarks/check.py` checks the goals: "
           f"**{verdict}**.", "",
           "## Machine", "",
           _md_table(["", ""], [[k, v] for k, v in env.items()]), ""]
    load = results.get("load_average") or {}
    if load.get("start") is not None:
        out += [f"1-minute load average {load['start']} at the start and {load['now']} at the end "
                f"of the run on {env.get('cores', '?')} cores: other work on the machine slows "
                "the notebook and widget timings and adds latency noise.", ""]
    extra = notes(results)
    if extra:
        out += ["## Notes", ""] + [f"- {line}" for line in extra] + [""]
    out += _results_section(results)
    out += ["## Accuracy against size and latency", "", f"![accuracy vs size and latency]({plot_name})",
            ""]
    out += _gaps_section(results) + _size_section(results)
    out += _notebook_section(results) + _widget_section(results)
    out += ["## Goals", "", _md_table(["goal", "measured", "met"],
                                      [[g["goal"], g["measured"], "yes" if g["ok"] else "**NO**"]
                                       for g in goals]), ""]
    return "\n".join(out)


def plot_results(results: dict[str, Any]) -> Any:
    """Accuracy against file size (top) and latency with its min-max (bottom), one column per model.

    One colour per variant in every panel, named in the legend; ``qat_4bit`` (no file)
    is drawn as a dotted accuracy line.
    """
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if r.get("accuracy") is not None]
    models = list(dict.fromkeys(r["model"] for r in rows))
    if not models:
        raise ValueError("results has no rows with an accuracy to plot")
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colour = {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(variants)}
    fig, axes = plt.subplots(2, len(models), figsize=(4.5 * len(models), 7.5), squeeze=False)
    for col, model in enumerate(models):
        top, bottom = axes[0][col], axes[1][col]
        for r in (r for r in rows if r["model"] == model):
            acc, c = 100 * r["accuracy"], colour[r["variant"]]
            if not r.get("size_bytes"):
                for ax in (top, bottom):
                    ax.axhline(acc, color=c, linestyle=":", label=r["variant"])
                continue
            top.scatter(r["size_bytes"] / 1024, acc, s=36, color=c, label=r["variant"])
            if r.get("latency_ms") is not None:
                err = [[r["latency_ms"] - r.get("latency_ms_min", r["latency_ms"])],
                       [r.get("latency_ms_max", r["latency_ms"]) - r["latency_ms"]]]
                bottom.errorbar(r["latency_ms"], acc, xerr=err, fmt="o", color=c, markersize=6,
                                capsize=3)
        top.set(xscale="log", xlabel="TFLite file size (KB, log)", ylabel="top-1 accuracy (%)",
                title=model)
        bottom.set(xscale="log", xlabel="batch-1 latency (ms, log; bars: min-max of repeats)",
                   ylabel="top-1 accuracy (%)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3, which="both")
    handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels())}
    ncol = min(len(handles), 3 * len(models))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=ncol, fontsize=8)
    fig.tight_layout(rect=(0, 0.02 + 0.03 * -(-len(handles) // ncol), 1, 1))
    return fig


def write_report(results: dict[str, Any], json_path: str | Path = RESULTS_JSON,
                 report_path: str | Path = REPORT_MD, plot_path: str | Path = PLOT_PNG
                 ) -> dict[str, Path]:
    """Write the JSON, the plot and the markdown report (each atomically); return the paths."""
    from qlab.files.io import atomic_path, write_bytes_atomic, write_json_atomic

    json_path, report_path, plot_path = Path(json_path), Path(report_path), Path(plot_path)
    write_json_atomic(json_path, results)
    fig = plot_results(results)
    with atomic_path(plot_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    try:
        plot_name = plot_path.resolve().relative_to(report_path.resolve().parent).as_posix()
    except ValueError:
        plot_name = plot_path.as_posix()
    write_bytes_atomic(report_path, render_markdown(results, plot_name).encode())
    return {"json": json_path, "report": report_path, "plot": plot_path}
