"""qlab.workbook.bench on a small fake results dict: gaps, goals, report, plot, checker script, CLI."""

import copy
import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

from qlab.workbook import bench
from qlab.cli import main
from qlab.files.paths import repository_root

REPO_ROOT = repository_root()

matplotlib.use("Agg")

ACCURACY = {  # model -> variant -> accuracy; every bound met, qat_int8 of mnist_cnn exactly on it
    "mnist_cnn": {"float32": 0.9925, "int8_per_channel": 0.9920, "int8_per_tensor": 0.9918,
                  "qat_int8": 0.9910, "qat_4bit": 0.9900},
    "mobilenet_v2": {"float32": 0.9890, "int8_per_channel": 0.9850, "int8_per_tensor": 0.9500,
                     "qat_int8": 0.9880},
    "mobilenet_v1": {"float32": 0.9885, "int8_per_channel": 0.9870, "int8_per_tensor": 0.9700,
                     "qat_int8": 0.9870},
}


def _row(model, variant, accuracy):
    if variant == "qat_4bit":
        return {"model": model, "variant": variant, "accuracy": accuracy, "size_bytes": None,
                "size_ratio": None, "latency_ms": None, "latency_ratio": None,
                "evaluated_with": "keras", "note": "no 4-bit kernels"}
    ratio = 1.0 if variant == "float32" else 3.5
    return {"model": model, "variant": variant, "accuracy": accuracy,
            "size_bytes": int(400_000 / ratio), "size_ratio": ratio,
            "latency_ms": 0.1 / ratio, "latency_ms_min": 0.09 / ratio, "latency_ms_max": 0.12 / ratio,
            "latency_ratio": 1 / ratio, "latency_ratio_min": 0.9 / ratio,
            "latency_ratio_max": 1.1 / ratio, "keras_accuracy": None,
            "keras_tflite_agreement": 0.999 if variant.startswith("qat") else None,
            "evaluated_with": "litert", "note": None}


def fake_results():
    rows = [_row(m, v, a) for m, accs in ACCURACY.items() for v, a in accs.items()]
    names = [f"{i:02d}_lesson.ipynb" for i in range(10)]
    return {
        "schema": 1, "command": "qlab bench", "started": "2026-11-22T08:35:00+00:00",
        "finished": "2026-11-22T09:00:00+00:00", "total_seconds": 1500.0, "skipped": [],
        "environment": {"cpu": "AMD EPYC", "cores": "2", "tensorflow": "2.21.0"},
        "config": {"num_threads": 1, "latency_repeats": 7, "latency_runs": 400},
        "rows": rows, "gaps": bench.accuracy_gaps(rows),
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
    }


def _set(results, model, variant, **values):
    next(r for r in results["rows"] if r["model"] == model and r["variant"] == variant).update(values)
    return results


def test_summarize_repeats_takes_median_and_min_max_of_per_repeat_ratios():
    repeats = [{"float32": 1.0, "int8": 0.5}, {"float32": 2.0, "int8": 0.6},
               {"float32": 1.0, "int8": 0.4}]
    summary = bench.summarize_repeats(repeats)
    assert summary["int8"]["latency_ms"] == 0.5
    assert (summary["int8"]["latency_ms_min"], summary["int8"]["latency_ms_max"]) == (0.4, 0.6)
    # ratios per repeat: 0.5, 0.3, 0.4 (not 0.5 / 1.0 from the overall medians)
    assert summary["int8"]["latency_ratio"] == pytest.approx(0.4)
    assert summary["int8"]["latency_ratio_min"] == pytest.approx(0.3)
    assert summary["int8"]["latency_ratio_max"] == pytest.approx(0.5)
    assert summary["float32"]["latency_ratio"] == 1.0 and summary["int8"]["latency_repeats"] == 3


def test_summarize_repeats_needs_the_baseline_in_every_repeat():
    with pytest.raises(ValueError, match="baseline 'float32'"):
        bench.summarize_repeats([{"float32": 1.0, "int8": 0.5}, {"int8": 0.5}])
    with pytest.raises(ValueError, match="non-empty"):
        bench.summarize_repeats([])


def test_accuracy_gaps_in_points():
    gaps = {g["model"]: g for g in bench.accuracy_gaps(fake_results()["rows"])}
    assert gaps["mobilenet_v2"]["per_channel_minus_per_tensor"] == pytest.approx(3.5)
    assert gaps["mobilenet_v2"]["qat_int8_minus_int8_per_channel"] == pytest.approx(0.3)
    assert gaps["mnist_cnn"]["drop_qat_int8"] == pytest.approx(0.15)
    assert gaps["mnist_cnn"]["float32_accuracy"] == 0.9925


def test_all_goals_met_on_the_fake_results_with_a_bound_hit_exactly():
    assert bench.check_goals(fake_results()) == []


@pytest.mark.parametrize("change, expected", [
    (lambda r: _set(r, "mnist_cnn", "qat_int8", accuracy=0.9909), "mnist_cnn qat_int8 within 0.15"),
    (lambda r: _set(r, "mnist_cnn", "int8_per_channel", accuracy=0.9890),
     "mnist_cnn int8_per_channel within 0.30"),
    (lambda r: _set(r, "mobilenet_v1", "float32", accuracy=0.984), "mobilenet_v1 float32 accuracy"),
    (lambda r: _set(r, "mobilenet_v2", "qat_int8", accuracy=0.9855), "mobilenet_v2 qat_int8"),
    (lambda r: _set(r, "mobilenet_v2", "int8_per_channel", size_ratio=2.9), "3x smaller"),
    (lambda r: _set(r, "mnist_cnn", "int8_per_tensor", latency_ratio=None), "latency ratio"),
    (lambda r: r["rows"].remove(next(x for x in r["rows"] if x["variant"] == "int8_per_tensor"
                                     and x["model"] == "mobilenet_v1")), "gap measured"),
])
def test_each_missed_goal_is_reported(change, expected):
    results = fake_results()
    change(results)
    missed = bench.check_goals(results)
    assert len(missed) == 1 and expected in missed[0], missed


def test_notebook_goals_fail_on_a_failure_a_slow_workbook_or_no_timing():
    failed = fake_results()
    failed["notebooks"][3].update(ok=False, error="RuntimeError: boom")
    assert any("03_lesson.ipynb runs to the end" in m for m in bench.check_goals(failed))
    slow = fake_results()
    slow["notebooks"][0]["seconds"] = 901.0  # 9 x 100 s + 901 s = 30.02 min
    assert any("<= 30 min" in m for m in bench.check_goals(slow))
    skipped = fake_results()
    skipped.update(notebooks=[], skipped=["notebooks"])
    assert any("not measured" in m for m in bench.check_goals(skipped))
    assert "notebooks skipped in this run" in bench.notes(skipped)


def test_notes_name_missing_notebooks_and_slow_widgets():
    results = fake_results()
    results["notebooks_found"] = results["notebooks_found"][:4]
    results["widgets"][0]["median_ms"] = 150.0
    text = " ".join(bench.notes(results))
    assert "missing: 04, 05, 06, 07, 08, 09" in text and "BucketExplorer.num_bits (150 ms)" in text
    assert bench.notes(fake_results()) == []


def test_goal_results_rejects_something_else():
    with pytest.raises(ValueError, match="'rows'"):
        bench.goal_results({"accuracy": 0.99})


def test_markdown_shows_numbers_noise_gaps_and_the_verdict():
    text = bench.render_markdown(fake_results())
    assert "all goals met" in text and "**NO**" not in text
    assert "| `int8_per_tensor` | 95.00 | -3.90 |" in text  # mobilenet_v2 accuracy and drop
    assert "0.0286 (0.0257-0.0343)" in text  # latency median (min-max) in ms
    assert "| mobilenet_v2 | +3.50 | +0.30 | 250 |" in text
    assert "widest spread is 250.0x (`mobilenet_v2`)" in text
    assert "| **whole workbook** | 1000 | 100 |" in text
    assert "| mnist_cnn | `int8_per_channel` | 111.3 | 3.51 | 95.2 (86%) | 0.5 (0%) | 0.0 (0%) " \
           "| 5.9 (5%) | 9.8 (9%) |" in text
    missed = fake_results()
    _set(missed, "mnist_cnn", "qat_int8", accuracy=0.98)
    text = bench.render_markdown(missed)
    assert "1 of" in text and "MISSED" in text and "**NO**" in text


def test_plot_has_a_size_and_a_latency_panel_per_model():
    fig = bench.plot_results(fake_results())
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == ["mnist_cnn", "mobilenet_v2", "mobilenet_v1"]
    assert len(axes[3].containers) == 4  # one error bar per variant with a latency (not qat_4bit)


def test_write_report_and_the_checker_script(tmp_path):
    results = fake_results()
    paths = bench.write_report(results, tmp_path / "r.json", tmp_path / "B.md",
                               tmp_path / "img" / "p.png")
    assert json.loads(paths["json"].read_text()) == results
    assert "![accuracy vs size and latency](img/p.png)" in paths["report"].read_text()
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"
    script = [sys.executable, str(REPO_ROOT / "benchmarks" / "check.py")]
    ok = subprocess.run(script + [str(paths["json"])], capture_output=True, text=True)
    assert ok.returncode == 0 and "goals met" in ok.stdout, ok.stderr
    bad = copy.deepcopy(results)
    _set(bad, "mobilenet_v1", "qat_int8", accuracy=0.95)
    bad["rows"].append(_row("mnist_cnn", "dynamic_int8", 0.99) | {"size_ratio": 2.0})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    failed = subprocess.run(script + [str(tmp_path / "bad.json")], capture_output=True, text=True)
    assert failed.returncode == 1
    assert "2 of" in failed.stdout and "mobilenet_v1 qat_int8" in failed.stdout
    assert "mnist_cnn dynamic_int8 file >= 3x smaller" in failed.stdout


def test_cli_bench_from_json_rerenders_without_measuring(tmp_path, capsys):
    (tmp_path / "in.json").write_text(json.dumps(fake_results()))
    code = main(["bench", "--from-json", str(tmp_path / "in.json"), "--json",
                 str(tmp_path / "out.json"), "--report", str(tmp_path / "B.md"), "--plot",
                 str(tmp_path / "p.png")])
    assert code == 0
    assert "all goals met" in capsys.readouterr().out
    assert "# Benchmarks" in (tmp_path / "B.md").read_text()


def test_cli_bench_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for option in ("--skip-notebooks", "--skip-widgets", "--latency-repeats", "--from-json"):
        assert option in out


def test_size_breakdown_finds_the_weights_of_a_tiny_model():
    from qlab.lite.keras2 import keras
    from qlab.lite.conversion import convert

    model = keras.Sequential([keras.Input(shape=(8,)),
                              keras.layers.Dense(16, bias_initializer="ones")])
    model_bytes = convert(model, "float32")
    parts = bench.size_breakdown(model_bytes)
    # the 8x16 kernel and 16 biases; the input and the output are not constants
    assert parts == {"float32": 4 * (8 * 16 + 16), "scales_zero_points": 0,
                     "other": len(model_bytes) - 4 * (8 * 16 + 16)}
    assert parts["other"] > 0
    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    parts = bench.size_breakdown(convert(model, "int8_per_channel", x, 20))
    assert parts["int8"] == 8 * 16 and parts["int32"] == 4 * 16 and "float32" not in parts
    # 16 kernel + 16 bias channels with their own scale (4 bytes) and zero-point (8 bytes)
    assert parts["scales_zero_points"] >= 12 * 32


def test_a_partial_run_says_so():
    results = fake_results()
    results.update(partial=True, finished=None)
    assert bench.notes(results)[0].startswith("PARTIAL")
    assert "PARTIAL" in bench.render_markdown(results)


@pytest.mark.slow
def test_measure_notebooks_times_each_and_records_a_failure(tmp_path):
    import nbformat

    good, bad = tmp_path / "00_good.ipynb", tmp_path / "01_bad.ipynb"
    for path, source in ((good, "SMOKE = False"), (bad, "raise ValueError('broken lesson')")):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, path)
    seen = []
    rows = bench.measure_notebooks([good, bad], modes=("smoke",), verbose=False,
                                   on_run=lambda so_far: seen.append(len(so_far)))
    assert [(r["notebook"], r["ok"]) for r in rows] == [("00_good.ipynb", True),
                                                        ("01_bad.ipynb", False)]
    assert "broken lesson" in rows[1]["error"] and all(r["seconds"] > 0 for r in rows)
    assert seen == [1, 2]


def test_measure_widgets_times_every_case_of_the_widget_script():
    rows = bench.measure_widgets(repeats=2)
    assert len(rows) == len(bench._widget_benchmark().CASES)
    assert all(r["updates"] == 2 and 0 < r["median_ms"] <= r["max_ms"] for r in rows)


def test_a_variant_slower_than_float32_is_called_out():
    results = _set(fake_results(), "mnist_cnn", "int8_per_tensor", latency_ratio=60.0)
    assert "`mnist_cnn` `int8_per_tensor` 60x" in bench.render_markdown(results)
    assert "Slower than float32" not in bench.render_markdown(fake_results())


def test_a_model_that_failed_is_named_in_the_notes_and_misses_its_goals():
    results = fake_results()
    results["rows"] = [r for r in results["rows"] if r["model"] != "mobilenet_v1"]
    results["errors"] = {"mobilenet_v1": "RuntimeError: out of memory"}
    assert "`mobilenet_v1` could not be measured: RuntimeError: out of memory" in bench.notes(results)
    assert sum("mobilenet_v1" in m for m in bench.check_goals(results)) == 3


def test_the_machine_load_during_the_run_is_shown():
    results = fake_results()
    assert "load average" not in bench.render_markdown(results)
    results["load_average"] = {"start": 1.5, "now": 2.25}
    assert "load average 1.5 at the start and 2.25 at the end of the run on 2 cores" \
        in bench.render_markdown(results)


def test_a_size_ratio_far_from_4x_says_where_the_bytes_went():
    results = _set(fake_results(), "mnist_cnn", "int8_per_channel", size_ratio=2.5)
    missed = bench.check_goals(results)
    assert missed == ["mnist_cnn int8_per_channel file >= 3x smaller than float32: 2.50x "
                      "(scales and zero-points 5%, graph 9% of the file)"]


def test_a_run_cut_short_lists_the_notebooks_it_did_not_reach():
    results = fake_results()
    results.update(partial=True, notebooks=results["notebooks"][:3])
    text = bench.render_markdown(results)
    assert "| `03_lesson.ipynb` | - | - |" in text and "had not reached" in text
    results["notebooks"] = []
    assert "workbook run time measured (every notebook, full mode): not measured (run cut short)" \
        in bench.check_goals(results)
