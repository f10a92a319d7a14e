"""What the benchmark measures: the full-size comparison, repeated latency, notebooks, widgets.

Every ``measure_*`` function and :func:`collect` runs models, notebooks or widgets and
returns plain dicts and lists; :mod:`~qlab.workbook.bench.goals` and
:mod:`~qlab.workbook.bench.report` only read them.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np

from qlab.workbook.bench.goals import accuracy_gaps
from qlab.workbook.bench.paths import widget_script

#: Version of the results dict's layout (``benchmarks/results.json``).
SCHEMA = 1


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
    """Run :func:`qlab.conversion.tflite.compare_latency` ``repeats`` times and summarize the medians."""
    from qlab.conversion.tflite import compare_latency

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    medians = []
    for _ in range(repeats):
        stats = compare_latency(files, runs=runs, warmup=warmup)
        medians.append({name: s.median_ms for name, s in stats.items()})
    return summarize_repeats(medians)


# ---------------------------------------------------------------- what the files hold
#: The ops at the borders of a float island: QUANTIZE (float to integer) and DEQUANTIZE (back).
BORDER_OPS = ("QUANTIZE", "DEQUANTIZE")


def op_counts(model_bytes: bytes) -> dict[str, int]:
    """How much of a ``.tflite`` computes in float, read from the file's own op table.

    ``float_ops``: ops other than QUANTIZE and DEQUANTIZE that read or write a float tensor
    (:data:`qlab.conversion.tflite_file.FLOAT_TYPES`: a float32 op, or a dynamic-range op with float
    activations); ``quantize_ops`` and ``dequantize_ops``: the QUANTIZE and DEQUANTIZE ops, wherever
    they sit (at a float island's borders, at float inputs and outputs, or unpacking stored weights).
    """
    from qlab.conversion.tflite_file import FLOAT_TYPES, file_ops

    ops = file_ops(model_bytes)
    return {"float_ops": sum(op["op"] not in BORDER_OPS and any(t in FLOAT_TYPES for t in op["types"])
                             for op in ops),
            "quantize_ops": sum(op["op"] == "QUANTIZE" for op in ops),
            "dequantize_ops": sum(op["op"] == "DEQUANTIZE" for op in ops)}


def scale_spread_summary(model_bytes: bytes) -> dict[str, Any]:
    """The widest-spread per-channel weight tensor of an int8 file (why per-tensor loses)."""
    from qlab.ptq.debug import weight_scale_spread

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
def bench_models(models: str | Sequence[str] = "all") -> list[str]:
    """The zoo models ``qlab bench`` measures: ``"all"`` is the three CNNs and the Keras 3 transformer.

    (``qlab compare``'s ``"all"`` is the CNNs alone, :func:`qlab.workbook.pipeline.check_models`.)
    """
    from qlab.workbook.pipeline import check_models
    from qlab.zoo.transformer import NAME

    return [*check_models("all"), NAME] if models == "all" else check_models(models)


def _read_files(model: str, variants: Sequence[str], seed: int) -> dict[str, bytes]:
    from qlab.workbook.pipeline import zoo_tflite_dir

    folder = zoo_tflite_dir(model, "full", seed)
    return {v: (folder / f"{v}.tflite").read_bytes() for v in variants
            if (folder / f"{v}.tflite").exists()}


def _measure_model(model: str, variants: Sequence[str], seed: int, latency_repeats: int,
                   latency_runs: int, verbose: bool) -> tuple[Any, dict[str, Any]]:
    """``(ComparisonResult, extras)`` of one model: compare rows plus repeated latency and op counts."""
    from qlab.conversion.tflite_file import size_breakdown
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
        if row["variant"] in files:
            row.update(op_counts(files[row["variant"]]))
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
    median and the min-max noise. Also records each file's float and QUANTIZE / DEQUANTIZE
    ops (:func:`op_counts`), each int8 file's size breakdown and each model's per-channel
    scale spread. ``models``: as :func:`bench_models`; ``variants``: as for
    :func:`qlab.workbook.pipeline.compare` (the transformer's ``"all"`` includes Keras 3's own
    ``keras_*`` modes). A model that fails is recorded under ``errors`` and the others are still measured.
    """
    from qlab.conversion.converter import check_variants
    from qlab.zoo.environment import environment_report

    models = bench_models(models)
    if variants != "all":  # a bad name fails before anything is measured; "all" is each model's own
        variants = check_variants(variants, keras3=True)
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


# ---------------------------------------------------------------- notebooks and widgets
def _run_one_notebook(path: Path, mode: str, progress: bool) -> dict[str, Any]:
    """One timed run; a failure is recorded with its error and the time until it failed."""
    from qlab.workbook.notebook import run_notebook

    start = time.perf_counter()
    try:
        run = run_notebook(path, smoke=(mode == "smoke"), progress=progress)
        return {"notebook": path.name, "mode": mode, "seconds": run.seconds, "ok": True,
                "error": None}
    except RuntimeError as exc:
        return {"notebook": path.name, "mode": mode, "ok": False, "error": str(exc),
                "seconds": time.perf_counter() - start}


def measure_notebooks(paths: Sequence[Path], modes: Sequence[str] = ("full", "smoke"),
                      progress: bool = False, verbose: bool = True,
                      on_run: Callable[[list[dict[str, Any]]], Any] | None = None
                      ) -> list[dict[str, Any]]:
    """Run every notebook in each mode (fresh kernel each, one after another) and time it.

    A failing notebook is recorded with its error and the time until it failed; the
    others still run. ``on_run`` is called with the rows so far after each notebook.
    """
    rows = []
    for mode in modes:
        for path in paths:
            _say(verbose, f"notebook {path.name} ({mode}) ...")
            row = _run_one_notebook(path, mode, progress)
            _say(verbose, f"  {'ok' if row['ok'] else 'FAILED'} in {row['seconds']:.1f} s")
            rows.append(row)
            if on_run:
                on_run(rows)
    return rows


def load_widget_benchmark() -> ModuleType:
    """``benchmarks/widget_update_times.py`` as a module (its ``main`` only runs as a script)."""
    spec = importlib.util.spec_from_file_location("widget_update_times", widget_script())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_widgets(repeats: int = 40) -> list[dict[str, Any]]:
    """Control change -> new picture per widget and control, timed by the widgets' script.

    Each row has the median, p90, p95 and worst wall time, the CPU time's median and
    p95, and the CPU model (the times depend on it).
    """
    script = load_widget_benchmark()
    rows = []
    for name, make, control_name, values in script.CASES:
        wall, cpu = script.time_case(make, control_name, values, repeats)
        rows.append({"widget": name, "control": control_name, "updates": int(len(wall)),
                     **script.summarize(wall, cpu), "p90_ms": float(np.percentile(wall, 90)),
                     "cpu": script.cpu_name()})
    return rows


# ---------------------------------------------------------------- everything
def _stamper(command: str, skipped: list[str], notebooks_found: list[str],
             checkpoint: Callable[[dict[str, Any]], Any] | None
             ) -> Callable[..., dict[str, Any]]:
    """``stamp(results, partial=True)``: note when, how and how long; checkpoint partial results."""
    started, start, load_at_start = _now(), time.perf_counter(), _load_average()

    def stamp(results: dict[str, Any], partial: bool = True) -> dict[str, Any]:
        results.update(schema=SCHEMA, command=command, started=started, skipped=skipped,
                       notebooks_found=notebooks_found, partial=partial,
                       finished=None if partial else _now(),
                       total_seconds=time.perf_counter() - start,
                       load_average={"start": load_at_start, "now": _load_average()})
        if checkpoint and partial:
            checkpoint(results)
        return results

    return stamp


def collect(models: str | Sequence[str] = "all", variants: str | Sequence[str] = "all",
            seed: int = 0, latency_repeats: int = 7, latency_runs: int = 400,
            notebooks: Sequence[str] | None = None, skip_notebooks: bool = False,
            skip_widgets: bool = False, widget_repeats: int = 40, verbose: bool = True,
            command: str = "qlab bench",
            checkpoint: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """Measure the comparison, record the lesson studies, measure the widgets and the notebooks.

    Returns the results dict. ``models``: as :func:`bench_models` (``"all"``: the CNNs and the
    transformer). The studies (:func:`qlab.workbook.studies.record_all`) are the slow sweeps the
    lessons load when the model's weights match; their file names are listed under
    ``studies_recorded`` (with ``"all"``, each on every model it applies to, the narrow MobileNet of the
    microcontroller study among them), and the numbers of them the goals check under ``study_figures``
    (:func:`qlab.workbook.studies.study_figures`).

    ``checkpoint`` is called with the results so far (marked ``partial``) after each
    step, so a run that is cut short still leaves its numbers behind.
    """
    from qlab.workbook.notebook import notebook_paths
    from qlab.workbook.studies import record_all, study_figures

    every_model, models, paths = models == "all", bench_models(models), notebook_paths(notebooks)
    skipped = [part for part, skip in (("widgets", skip_widgets), ("notebooks", skip_notebooks))
               if skip]
    stamp = _stamper(command, skipped, [p.name for p in paths], checkpoint)
    _say(verbose, "comparison: every model x variant at full size")
    results = measure_compare(models, variants, seed, latency_repeats, latency_runs, verbose)
    results.update(gaps=accuracy_gaps(results["rows"]), widgets=[], notebooks=[])
    stamp(results)
    _say(verbose, "lesson studies: the slow sweeps the notebooks load, recorded for these weights")
    recorded = record_all("all" if every_model else models, seed, verbose)
    results.update(studies_recorded=[path.name for path in recorded], study_figures=study_figures(recorded))
    stamp(results)
    if not skip_widgets:
        _say(verbose, f"widgets: {widget_repeats} updates per control")
        results["widgets"] = measure_widgets(widget_repeats)
        stamp(results)
    if not skip_notebooks:
        def on_run(rows: list[dict[str, Any]]) -> None:
            results["notebooks"] = list(rows)
            stamp(results)

        results["notebooks"] = measure_notebooks(paths, verbose=verbose, on_run=on_run)
    return stamp(results, partial=False)
