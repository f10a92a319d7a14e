"""qlab.workbook.bench.report: BENCHMARKS.md from fake results, its template, the files, the CLI."""

import copy
import importlib.util
import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from qlab.cli import main
from qlab.files.paths import repository_root
from qlab.workbook.bench import goals, report


def _load_goals_tests():
    """test_bench_goals.py, whose fake results these tests share (test folders are no packages)."""
    path = Path(__file__).with_name("test_bench_goals.py")
    spec = importlib.util.spec_from_file_location("bench_goals_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fixtures = _load_goals_tests()
fake_results, fake_row, set_row = _fixtures.fake_results, _fixtures.fake_row, _fixtures.set_row


def with_fine_metrics(results):
    """``results`` as qlab bench now writes them: every row compared with float32 on the same images."""
    for row in results["rows"]:
        if row.get("accuracy") is None:  # refused or not applicable: no file to compare
            continue
        base = goals.result_row(results, row["model"], "float32")["accuracy"]
        delta, identical = row["accuracy"] - base, row["variant"] == "float32"
        row.update(top1_agreement=1.0 if identical else 0.985, kl_divergence=0.0 if identical else 0.0123,
                   output_sqnr_db=None if identical else 31.25, accuracy_delta=delta,
                   delta_low=delta - (0 if identical else 0.002), delta_high=delta + (0 if identical else 0.001),
                   mcnemar_p=1.0 if identical else 0.0312)
    return results


def _study_file(folder, study, model, columns, data, fingerprint="0123456789abcdef"):
    """A study file as qlab.workbook.studies writes it (JSON with Infinity/NaN); return its name."""
    name = f"{study}-v1-{model}-full-s0-{fingerprint}.json"
    (folder / name).write_text(json.dumps({
        "study": study, "model": model, "size": "full", "seed": 0, "fingerprint": fingerprint,
        "measured_at": "2026-01-01T00:00:00+00:00", "seconds": 1.0,
        "table": {"columns": columns, "data": data}}))
    return name


def fake_studies(folder):
    """One tiny file per tabulated study (two models for weight_bits) in ``folder``; their names."""
    nan, inf = float("nan"), float("inf")
    bits = ["model", "num_bits", "scheme", "accuracy", "gain vs per-tensor (points)", "gain low",
            "gain high"]
    schemes = report.WEIGHT_SCHEMES
    return [
        _study_file(folder, "weight_bits", "mnist_cnn", bits, [
            ["mnist_cnn", 32, "float", 0.9925, nan, nan, nan],
            *[["mnist_cnn", 8, s, a, g, g - 0.04, g + 0.03]
              for s, a, g in zip(schemes, (0.9927, 0.9926, 0.9927, 0.9926), (0, -0.01, 0, -0.01))],
            *[["mnist_cnn", 3, s, a, g, g - 0.21, g + 0.21]
              for s, a, g in zip(schemes, (0.9837, 0.9892, 0.9901, 0.9909), (0, 0.55, 0.64, 0.72))]],
            fingerprint="a75125d1b1c6a931"),
        _study_file(folder, "weight_bits", "mobilenet_v2", bits, [
            ["mobilenet_v2", 2, "per-tensor", 0.0974, 0.0, 0.0, 0.0],
            ["mobilenet_v2", 2, "per-channel", 0.3945, 29.71, 28.59, 30.88]],
            fingerprint="d38d9766330fb041"),
        _study_file(folder, "equalization", "mnist_cnn",
                    ["model", "version", "variant", "max channel spread", "accuracy", "output_sqnr_db"], [
            ["mnist_cnn", "original", "float32", 2.02, 0.9925, inf],
            ["mnist_cnn", "original", "int8_per_tensor", 2.02, 0.9928, 40.8],
            ["mnist_cnn", "original", "CLE + int8_per_tensor", 1.53, 0.9927, 41.0],
            ["mnist_cnn", "constructed (x1000 rescaling)", "float32", 88.3, 0.9925, 134.6],
            ["mnist_cnn", "constructed (x1000 rescaling)", "int8_per_tensor", 88.3, 0.098, 0.0],
            ["mnist_cnn", "constructed (x1000 rescaling)", "CLE + int8_per_tensor", 1.53, 0.9926, 41.0]]),
        _study_file(folder, "calibration_failures", "mnist_cnn",
                    ["model", "representative set", "description", "images", "accuracy_delta",
                     "delta_low", "delta_high"], [
            ["mnist_cnn", "proper", "the fix", 500, 0.0001, -0.0002, 0.0005],
            ["mnist_cnn", "blank", "all-black images", 500, -0.879, -0.8856, -0.8725975]]),
        _study_file(folder, "range_estimators", "mnist_cnn",
                    ["model", "method", "num_bits", "evaluated_with", "accuracy"], [
            ["mnist_cnn", "minmax", 8, "litert int8", 0.9927],
            ["mnist_cnn", "mse", 8, "litert int8", 0.9926],
            ["mnist_cnn", "minmax", 3, "keras fake-quant (no TFLite kernels)", 0.9746],
            ["mnist_cnn", "mse", 3, "keras fake-quant (no TFLite kernels)", 0.987]]),
        _study_file(folder, "bits_picture", "mobilenet_v1",
                    ["model", "weight_bits", "activation_bits", "method", "accuracy", "loss vs float (points)",
                     "loss low", "loss high", "QAT gain vs control (points)", "gain low", "gain high", "steps",
                     "learning_rate", "evaluated", "accuracy_delta", "delta_low", "delta_high"], [
            ["mobilenet_v1", 32, 32, "float (original)", 0.9885, 0, 0, 0, nan, nan, nan, 0, 0.001, "float Keras",
             0, 0, 0],
            ["mobilenet_v1", 32, 32, "float (control fine-tune)", 0.9879, 0.06, -0.1, 0.2, nan, nan, nan, 235,
             0.001, "float Keras", -0.0006, -0.002, 0.001],
            *[["mobilenet_v1", bits, 8, method, acc, 100 * (0.9885 - acc), 100 * (0.9885 - acc) - 0.5,
               100 * (0.9885 - acc) + 0.5, gain, gain - 0.7, gain + 0.7, 235, 0.001, "LiteRT file",
               acc - 0.9885, acc - 0.9885 - 0.005, acc - 0.9885 + 0.005]
              for bits, method, acc, gain in [
                  (8, "PTQ per-tensor", 0.9884, nan), (8, "PTQ per-channel MSE", 0.9887, nan),
                  (8, "control: float fine-tune + PTQ per-channel MSE", 0.9885, nan), (8, "QAT", 0.9876, -0.09),
                  (3, "PTQ per-tensor", 0.6257, nan), (3, "PTQ per-channel MSE", 0.9116, nan),
                  (3, "control: float fine-tune + PTQ per-channel MSE", 0.8537, nan), (3, "QAT", 0.9797, 12.6)]]]),
        _study_file(folder, "adaround", "mnist_cnn",
                    ["model", "num_bits", "scheme", "rounding", "accuracy", "flipped share", "AdaRound seconds",
                     "gain vs nearest (points)", "gain low", "gain high"], [
            ["mnist_cnn", 32, "float", "float", 0.9925, 0.0, 0.0, nan, nan, nan],
            ["mnist_cnn", 2, "per-channel", "nearest", 0.4393, 0.0, 0.0, nan, nan, nan],
            ["mnist_cnn", 2, "per-channel", "AdaRound", 0.9749, 0.059, 27.4, 53.56, 52.6, 54.58]]),
        _study_file(folder, "partial_qat", "mobilenet_v2",
                    ["model", "part", "arm", "accuracy", "accuracy_delta", "delta_low", "delta_high",
                     "size_ratio", "latency_ratio", "float_ops", "quantize_ops", "dequantize_ops",
                     "gain vs random (points)", "gain vs random low", "gain vs random high"], [
            ["mobilenet_v2", "anti-pattern", "qat_partial", 0.9921, -0.0002, -0.0012, 0.0008, 1.89, 0.72,
             105, 36, 41, nan, nan, nan],
            ["mobilenet_v2", "mixed precision", "QAT, 2 bits, 6 layers at 8 (sensitivity)", 0.879, -0.1133,
             -0.1194, -0.1067, 4.97, 2.86, 0, 0, 0, 10.4, 9.53, 11.32],
            ["mobilenet_v2", "sensitivity", "Conv1 alone at 2 bits", 0.5, nan, nan, nan, nan, nan,
             nan, nan, nan, nan, nan, nan]]),
        _study_file(folder, "deep_compression", "mnist_cnn",
                    ["model", "stage", "bytes", "gzip bytes", "zip bytes", "zeros kept", "values per channel",
                     "accuracy", "vs float32 (points)", "vs float32 low", "vs float32 high", "vs control (points)",
                     "vs control low", "vs control high", "gzip ratio", "zip ratio"], [
            ["mnist_cnn", "float32", 903400, 836034, 836148, nan, 1600, 0.9925, 0, 0, 0, -0.04, -0.14, 0.06, 1, 1],
            ["mnist_cnn", "PCQAT int8", 232480, 53696, 56661, 1.0, 8, 0.9916, -0.09, -0.23, 0.05, -0.13, -0.26, 0.0,
             15.57, 14.76]]),
        _study_file(folder, "litert_quantizer_routes", "mobilenet_v2",
                    ["model", "quantizer", "converter", "calibration", "quantizer accuracy", "converter accuracy",
                     "quantizer bytes", "converter bytes", "identical values", "identical images", "first difference",
                     "op index", "op", "quantizer side", "converter side"], [
            ["mobilenet_v2", "aeq_int8_per_channel", "int8_per_channel", "min_max", 0.9925, 0.9925, 2720576,
             2720536, 0.49507, 0.0107, "output parameters", 8, "CONV_2D", "scale 0.0518501773, zero point 3",
             "scale 0.083936125, zero point 10"]]),
        _study_file(folder, "litert_quantizer_4bit", "mobilenet_v1",
                    ["model", "file", "accuracy", "bytes", "size ratio", "non-integer ops", "vs float32 (points)",
                     "vs float32 low", "vs float32 high"], [
            ["mobilenet_v1", "static per-tensor (min_max)", 0.9845, 461520, 7.130352, 2, -0.40, -0.59, -0.22]]),
        *transformer_studies(folder),
        _study_file(folder, "micro_runs", "mobilenet_v1",
                    ["model", "variant", "flash bytes", "arena bytes", "refusal", "litert accuracy", "images",
                     "micro accuracy", "identical", "top-1 agreement", "max steps", "identical to reference kernels",
                     "max steps to reference kernels"], [
            ["mobilenet_v1", "dynamic_int8", 923808, nan, "float ops: CONV_2D x15, DEPTHWISE_CONV_2D x13", 0.9887,
             nan, nan, nan, nan, nan, nan, nan],
            ["mobilenet_v1", "int8_per_tensor", 856288, 64320, nan, 0.9885, 10000, 0.9881, 0.0193, 0.9993, 4, 1.0,
             0],
            ["mobilenet_v1", "int8_per_channel", 987328, 64320, nan, 0.9886, 10000, 0.9887, 0.0258, 0.9998, 5, 1.0,
             0],
            ["mobilenet_v1", "qat_4bit", 584232, 315424, nan, 0.988, 10000, 0.988, 0.9377, 1.0, 1, nan, nan]],
            fingerprint="e361c5cd40d4e503"),
    ]


def transformer_studies(folder):
    """The three studies of the Keras 3 transformer, as keras3_quantization, layer_bits and keras3_qat write them."""
    nan, inf = float("nan"), float("inf")
    fine = ["accuracy", "top1_agreement", "output_sqnr_db", "kl_divergence", "accuracy_delta", "delta_low",
            "delta_high", "mcnemar_p"]
    return [
        _study_file(folder, "keras3_quantization", "patch_encoder",
                    ["mode", "block size", "Keras accuracy", "agreement with float", "weight bytes in memory",
                     "int8 bytes in memory", "converted", "file bytes", "file constants", "FULLY_CONNECTED",
                     "BATCH_MATMUL", "dequantize ops (CAST, DEQUANTIZE)", "ops not integer-only",
                     "LiteRT accuracy", "note"], [
            ["float32", "-", 0.9755, 1.0, 287784, 0, True, 322380, "float32 287,536 B", 14, 4, 0, 130, 0.9755, nan],
            ["int8", "-", 0.9751, 0.9978, 80676, 71680, False, nan, nan, nan, nan, nan, nan, nan,
             "the converter refused: 'tfl.fully_connected' op operand #0 must be ..."],
            ["int4", 128, 0.9747, 0.9950, 54078, 36352, True, 468652, "float32 287,536 B, int8 36,352 B", 0, 17, 26,
             190, 0.9747, nan]], fingerprint="0dcac562075baf32"),
        _study_file(folder, "layer_bits", "patch_encoder",
                    ["weights", *fine, "file bytes", "gain over the break (points)", "gain low", "gain high",
                     "recovered"], [
            ["8-bit weights", 0.9756, 0.9989, 41.9, 0.0004, 0.0001, -0.0005, 0.0007, 1.0, 124496, 41.75, 40.7, 42.8,
             1.0],
            ["all groups at 2 bits", 0.5581, 0.56, 2.1, 1.2, -0.4174, -0.427, -0.408, 0.0, 88952, 0.0, 0.0, 0.0, 0.0],
            ["feed-forward at 2 bits, the rest 8", 0.6885, 0.70, 4.0, 0.9, -0.287, -0.296, -0.278, 0.0, 106000,
             13.04, 12.2, 13.9, 0.3123],
            ["attention (query, key, value, output) at 2 bits, the rest 8", 0.9286, 0.94, 12.0, 0.2, -0.0469,
             -0.051, -0.043, 0.0, 107000, 37.05, 36.1, 38.0, 0.8874]], fingerprint="0dcac562075baf32"),
        _study_file(folder, "keras3_qat", "patch_encoder",
                    ["method", *fine, "Keras accuracy", "Keras-file agreement", "steps", "fine-tune seconds",
                     "QAT gain vs control (points)", "gain low", "gain high"], [
            ["PTQ", 0.5581, 0.56, 2.1, 1.2, -0.4174, -0.427, -0.408, 0.0, 0.9755, 0.5650, 0, 0.0, nan, nan, nan],
            ["control: float fine-tune, then PTQ", 0.6012, 0.61, 2.5, 1.1, -0.3743, -0.384, -0.365, 0.0, 0.9771,
             0.6080, 470, 31.2, nan, nan, nan],
            ["QAT (Keras 3, fake-quantized kernels)", 0.9703, 0.975, 15.1, 0.05, -0.0052, -0.0075, -0.003, 0.0007,
             0.9705, 0.9961, 470, 39.8, 36.91, 35.9, 37.9]], fingerprint="0dcac562075baf32"),
    ]


def studies_section(text):
    return text[text.index("## Recorded lesson studies"):text.index("## Notebook run times")]


def rendered_studies(folder, make=fake_studies):
    """The studies section of a report on the study files ``make`` writes to ``folder``."""
    results = fake_results() | {"studies_recorded": make(folder)}
    return studies_section(report.render_markdown(results, studies_dir=folder))


def varied_results(studies_dir):
    """Results that between them call for every paragraph of the template (studies in ``studies_dir``)."""
    plain = fake_results()
    eventful = with_fine_metrics(fake_results())
    eventful.update(partial=True, finished=None, load_average={"start": 1.5, "now": 2.25},
                    notebooks_found=eventful["notebooks_found"][:4])
    eventful["notebooks"][1].update(ok=False, error="RuntimeError: boom")
    eventful["rows"].append(fake_row("mnist_cnn", "int16x8", 0.99) | {"latency_ratio": 30.0})
    eventful["rows"].append(fake_row("mobilenet_v2", "qat_4bit", 0.99) | {"latency_ratio": 3.8})
    eventful["widgets"].append(dict(eventful["widgets"][0]))  # one widget and control timed twice
    other = _study_file(studies_dir, "new_sweep", "mnist_cnn", ["model", "x"], [["mnist_cnn", 1]])
    eventful["studies_recorded"] = [*fake_studies(studies_dir), other, "gone-v1-mnist_cnn.json"]
    skipped = fake_results()
    skipped.update(notebooks=[], widgets=[], skipped=["widgets", "notebooks"])
    return [plain, eventful, skipped]


def test_markdown_shows_numbers_noise_gaps_and_the_verdict():
    text = report.render_markdown(fake_results())
    assert "all goals met" in text and "**NO**" not in text
    assert "| `int8_per_tensor` | 95.00 | -3.90 |" in text  # mobilenet_v2 accuracy and drop
    assert "0.0286 (0.0257-0.0343)" in text  # latency median (min-max) in ms
    assert "| mobilenet_v2 | +3.50 | +0.30 | 250 |" in text
    assert "widest spread is 250.0x (`mobilenet_v2`)" in text
    assert "| **whole workbook** | 1400 | 140 |" in text  # 14 notebooks, 100 s and 10 s each
    assert "| mnist_cnn | `int8_per_channel` | 111.3 | 3.51 | 95.2 (86%) | 0.5 (0%) | 0.0 (0%) " \
           "| 5.9 (5%) | 9.8 (9%) |" in text
    missed = fake_results()
    set_row(missed, "mnist_cnn", "qat_int8", accuracy=0.98)
    text = report.render_markdown(missed)
    assert "1 of" in text and "MISSED" in text and "**NO**" in text


def test_the_template_ships_inside_the_package():
    template = resources.files("qlab.workbook.bench").joinpath(report.TEMPLATE_NAME)
    assert template.is_file()
    snippets = report.report_template()
    assert "document" in snippets and "# Benchmarks" in snippets["document"].template
    assert all(t.is_valid() for t in snippets.values())


def test_rendering_twice_gives_the_same_text_and_leaves_the_results_alone(tmp_path):
    for results in varied_results(tmp_path):
        before = copy.deepcopy(results)
        assert report.render_markdown(results, studies_dir=tmp_path) == \
            report.render_markdown(results, studies_dir=tmp_path)
        assert results == before


def test_no_placeholder_of_the_template_is_left_unfilled(tmp_path):
    for results in varied_results(tmp_path):
        text = report.render_markdown(results, studies_dir=tmp_path)
        assert re.search(r"\$(\w|\{)", text) is None, re.search(r".*\$.*", text).group()
        assert text.startswith("# Benchmarks\n\n") and text.endswith(" |\n")


def test_every_paragraph_of_the_template_appears_in_some_report(tmp_path):
    texts = [report.render_markdown(results, studies_dir=tmp_path)
             for results in varied_results(tmp_path)]
    for name, snippet in report.report_template().items():
        fixed = max(re.split(r"\$\{?\w+\}?", snippet.template), key=len).strip()
        assert any(fixed in text for text in texts), f"snippet {name!r} never rendered: {fixed!r}"


def test_write_report_and_the_checker_script(tmp_path):
    results = fake_results()
    paths = report.write_report(results, tmp_path / "r.json", tmp_path / "B.md",
                                tmp_path / "img" / "p.png")
    assert json.loads(paths["json"].read_text()) == results
    assert "![accuracy vs size and latency](img/p.png)" in paths["report"].read_text()
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"
    assert not paths["bits_picture"].exists()  # no bits_picture study recorded in this run
    studied = results | {"studies_recorded": fake_studies(tmp_path)}
    again = report.write_report(studied, tmp_path / "r.json", tmp_path / "B.md", tmp_path / "img" / "p.png",
                                studies_dir=tmp_path)
    assert again["bits_picture"] == tmp_path / "img" / "bits_picture.png"
    assert again["bits_picture"].read_bytes()[:4] == b"\x89PNG"
    assert "(img/bits_picture.png)" in again["report"].read_text()
    script = [sys.executable, str(repository_root() / "benchmarks" / "check.py")]
    ok = subprocess.run(script + [str(paths["json"])], capture_output=True, text=True)
    assert ok.returncode == 0 and "goals met" in ok.stdout, ok.stderr
    bad = copy.deepcopy(results)
    set_row(bad, "mobilenet_v1", "qat_int8", accuracy=0.95)
    bad["rows"].append(fake_row("mnist_cnn", "dynamic_int8", 0.99) | {"size_ratio": 2.0})
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


def test_a_partial_run_says_so():
    results = fake_results()
    results.update(partial=True, finished=None)
    assert goals.notes(results)[0].startswith("PARTIAL")
    assert "PARTIAL" in report.render_markdown(results)


def test_a_variant_slower_than_float32_is_called_out():
    results = set_row(fake_results(), "mnist_cnn", "int8_per_tensor", latency_ratio=60.0)
    assert "`mnist_cnn` `int8_per_tensor` 60x" in report.render_markdown(results)
    assert "Slower than float32" not in report.render_markdown(fake_results())


def test_the_machine_load_during_the_run_is_shown():
    results = fake_results()
    assert "load average" not in report.render_markdown(results)
    results["load_average"] = {"start": 1.5, "now": 2.25}
    assert "load average 1.5 at the start and 2.25 at the end of the run on 2 cores" \
        in report.render_markdown(results)


def test_a_run_cut_short_lists_the_notebooks_it_did_not_reach():
    results = fake_results()
    results.update(partial=True, notebooks=results["notebooks"][:3])
    text = report.render_markdown(results)
    assert "| `03_lesson.ipynb` | - | - |" in text and "had not reached" in text
    results["notebooks"] = []
    assert "workbook run time measured (every notebook, full mode): not measured (run cut short)" \
        in goals.check_goals(results)


def test_fine_metrics_table_shows_interval_p_agreement_sqnr_and_kl():
    text = report.render_markdown(with_fine_metrics(fake_results()))
    section = text[text.index("## Finer than top-1"):text.index("## Accuracy against size")]
    assert "paired bootstrap" in section and "same 10,000 test images" in section and "McNemar" in section
    # mobilenet_v2 int8_per_tensor: 95.00% vs 98.90% float32 -> -3.90 points, interval -0.2/+0.1 around it
    assert "| mobilenet_v2 | `int8_per_tensor` | -3.90 [-4.10, -3.80] | 0.031 | 98.50 | 31.2 | 0.012 |" in section
    # float32 is the reference: no change, zero-width interval, identical scores (infinite SQNR -> "-")
    assert "| mnist_cnn | `float32` | +0.00 [+0.00, +0.00] | 1 | 100.00 | - | 0 |" in section
    assert "Not in these results" not in section


def test_results_from_before_the_fine_metrics_still_render_and_say_why_the_section_is_empty(tmp_path):
    text = report.render_markdown(fake_results(), studies_dir=tmp_path)  # the old format
    section = text[text.index("## Finer than top-1"):text.index("## Accuracy against size")]
    assert "Not in these results" in section and "| model |" not in section
    # the repository's results, whichever format they are in, render with one of the two
    committed = json.loads((repository_root() / "benchmarks" / "results.json").read_text())
    text = report.render_markdown(committed, studies_dir=tmp_path)
    section = text[text.index("## Finer than top-1"):text.index("## Accuracy against size")]
    assert ("Not in these results" in section) != ("| model |" in section)


def test_recorded_studies_are_tabulated_with_their_lesson_and_weights(tmp_path):
    section = rendered_studies(tmp_path)
    assert "None recorded" not in section and "not readable" not in section
    # weight_bits: accuracy % per scheme, the per-channel gain [low, high] in points; float rows left out
    assert "`05_per_channel.ipynb`" in section and "int8, with 8-bit activations" in section
    assert "`mnist_cnn` sha256 `a75125d1b1c6a931`, `mobilenet_v2` sha256 `d38d9766330fb041`" in section
    assert "| mnist_cnn | 8 | 99.27 | 99.26 | 99.27 | 99.26 | -0.01 [-0.05, +0.02] |" in section
    assert "| mnist_cnn | 3 | 98.37 | 98.92 | 99.01 | 99.09 | +0.55 [+0.34, +0.76] |" in section
    assert "| mobilenet_v2 | 2 | 9.74 | 39.45 | - | - | +29.71 [+28.59, +30.88] |" in section
    assert "| mnist_cnn | 32 |" not in section
    # equalization: version x variant, the widest channel spread without / with CLE
    assert "| version | max channel spread, without / with CLE | `float32` % | `int8_per_tensor` % " \
           "| `CLE + int8_per_tensor` % |" in section
    assert "| constructed (x1000 rescaling) | 88.3 / 1.5 | 99.25 | 9.80 | 99.26 |" in section
    # calibration failures: change in points [95% CI] per set and model
    assert "`04_post_training_quantization.ipynb`" in section
    assert "| `blank` | all-black images | 500 | -87.90 [-88.56, -87.26] |" in section
    # range estimators: which rows are LiteRT int8 and which fake-quantized Keras
    assert "| 8 | litert int8 | 99.27 | 99.26 |" in section
    assert "| 3 | keras fake-quant (no TFLite kernels) | 97.46 | 98.70 |" in section
    # bits picture: the figure, then the verdict at the width where the best PTQ first loses >= 5 points
    assert "![accuracy against weight bits, per model and activation width](benchmarks/bits_picture.png)" in section
    assert "| mobilenet_v1 | 3 | 98.85 | 98.79 | 91.16 | 85.37 | 97.97 | +12.60 [+11.90, +13.30] | 89 | yes |" in section
    # AdaRound: nearest beside AdaRound per bits and scheme, the gain [low, high]; the float row left out
    assert "| mnist_cnn | 2 | per-channel | 43.93 | 97.49 | +53.56 [+52.60, +54.58] | 5.9 | 27 |" in section
    # partial QAT: one row per file, the sensitivity rows left out
    assert "| mobilenet_v2 | qat_partial | 99.21 | -0.02 [-0.12, +0.08] | 1.89 | 0.72 | 105 | 77 | - |" in section
    assert "| +10.40 [+9.53, +11.32] |" in section and "Conv1 alone" not in section
    order = [section.index(f"### {title}") for title in ("Weight bit widths", "A constructed",
                                                          "Wrong representative", "Activation range",
                                                          "Where QAT earns", "AdaRound against", "Partial QAT")]
    assert order == sorted(order)


def test_the_studies_folder_defaults_to_the_checkouts_recorded_dir(tmp_path, monkeypatch):
    from qlab.workbook import studies

    results = fake_results() | {"studies_recorded": fake_studies(tmp_path)}
    monkeypatch.setattr(studies, "recorded_dir", lambda: tmp_path)
    assert "| mnist_cnn | 8 | 99.27 |" in studies_section(report.render_markdown(results))
    monkeypatch.setattr(studies, "recorded_dir", lambda: None)  # qlab installed from a wheel
    assert "not readable" in studies_section(report.render_markdown(results))


def test_no_or_missing_study_files_say_so_in_one_sentence(tmp_path):
    old = fake_results()  # results from before qlab bench recorded studies
    for results in (old, old | {"studies_recorded": []}):
        section = studies_section(report.render_markdown(results, studies_dir=tmp_path))
        assert "None recorded in this run" in section and "|" not in section
    gone = old | {"studies_recorded": ["weight_bits-v1-mnist_cnn-full-s0-0123456789abcdef.json"]}
    section = studies_section(report.render_markdown(gone, studies_dir=tmp_path))
    assert "not readable" in section and "`weight_bits-v1-mnist_cnn-full-s0-0123456789abcdef.json`" \
        in section and "|" not in section
    (tmp_path / "broken.json").write_text("{not json")
    names = [*fake_studies(tmp_path), "broken.json"]
    section = studies_section(report.render_markdown(old | {"studies_recorded": names},
                                                     studies_dir=tmp_path))
    assert "| mnist_cnn | 8 |" in section and "not readable" in section and "`broken.json`" in section


def test_a_widget_control_timed_on_two_set_ups_is_numbered():
    results = fake_results()
    results["widgets"].append(dict(results["widgets"][0]))
    widget, control = results["widgets"][0]["widget"], results["widgets"][0]["control"]
    text = report.render_markdown(results)
    assert f"| {widget} | `{control}` #1 |" in text and f"| {widget} | `{control}` #2 |" in text
    assert "`CASES`" in text
    plain = report.render_markdown(fake_results())
    assert f"| {widget} | `{control}` |" in plain and "`CASES`" not in plain


def test_the_deep_compression_study_is_a_table_of_stages_with_intervals(tmp_path):
    section = rendered_studies(tmp_path)
    assert "### Deep Compression, stage by stage" in section
    assert "| mnist_cnn | PCQAT int8 | 227.0 | 52.4 | 15.57 | 14.76 | 99.16 | -0.09 [-0.23, +0.05] |" in section


def test_the_litert_quantizer_studies_are_tables(tmp_path):
    section = rendered_studies(tmp_path)
    assert "### The LiteRT Quantizer's int8 beside the converter's" in section
    assert "| mobilenet_v2 | `aeq_int8_per_channel` / `int8_per_channel` | min_max | 99.25 | 99.25 | 2720576 | " \
           "2720536 | 49.51 | 1.07 | output parameters | 8 CONV_2D |" in section
    assert "| mobilenet_v1 | static per-tensor (min_max) | 98.45 | -0.40 [-0.59, -0.22] | 450.7 | 7.13 | 2 |" in section


def test_the_transformers_rows_show_op_counts_its_refusal_and_each_inapplicable_note_once():
    results = set_row(fake_results(), "patch_encoder", "aeq_int8_per_channel", float_ops=10, quantize_ops=5,
                      dequantize_ops=10)
    text = report.render_markdown(results)
    table = text[text.index("### patch_encoder"):text.index("## Finer than top-1")]
    assert "| variant | accuracy % | vs float32 (points) |" in table and "float ops / QUANTIZE / DEQUANTIZE" in table
    assert "| `aeq_int8_per_channel` | 96.55 | -1.00 |" in table and "| 10 / 5 / 10 |" in table
    assert "| `int16x8` | - | - | - | - | - | - | - | - | - | - | - | the converter refused: Quantization to " \
           "16x8-bit not yet supported for op: 'NEG' |" in table
    # the same note twice in one table: written out once, then "as above"
    assert table.count("not applicable: TFMOT needs tf_keras") == 1 and "| `pcqat_int8` |" in table
    assert table.rstrip().endswith("| as above |")
    # a row without op counts (results written before they were counted): "-" in that column
    assert "| `dynamic_int8` | 97.50 | -0.05 | 111.6 | 3.50 | 97.7 | 3.80 | - | - | 0.0286 (0.0257-0.0343) |" in table


def test_the_transformer_studies_are_tables(tmp_path):
    section = rendered_studies(tmp_path, transformer_studies)
    assert "### Keras 3's own quantization: in Keras, and what reaches a `.tflite`" in section
    assert "`patch_encoder` sha256 `0dcac562075baf32`" in section and "`11_transformers.ipynb`" in section
    # mode, Keras accuracy and agreement, bytes in memory, then the file or the converter's refusal
    assert "| patch_encoder | `int8` | - | 97.51 | 99.78 | 78.8 | 70.0 | **no** | - | - | - | - | - | - | " \
           "the converter refused: 'tfl.fully_connected' op operand #0 must be ... |" in section
    assert "| patch_encoder | `int4` | 128 | 97.47 | 99.50 | 52.8 | 35.5 | yes | 457.7 | 0 | 17 | 26 | 190 | 97.47 | " \
           "float32 287,536 B, int8 36,352 B |" in section
    # the break and the repairs: the gain over the break and the share of it won back
    assert "| patch_encoder | all groups at 2 bits | 55.81 | -41.74 [-42.70, -40.80] | 56.00 | 2.1 | 86.9 | " \
           "+0.00 [+0.00, +0.00] | 0 |" in section
    assert "| patch_encoder | attention (query, key, value, output) at 2 bits, the rest 8 | 92.86 | " \
           "-4.69 [-5.10, -4.30] | 94.00 | 12.0 | 104.5 | +37.05 [+36.10, +38.00] | 89 |" in section
    # QAT against its control, with the Keras model's agreement with its file
    assert "| patch_encoder | QAT (Keras 3, fake-quantized kernels) | 97.03 | -0.52 [-0.75, -0.30] | 97.05 | " \
           "99.61 | 470 | 40 | +36.91 [+35.90, +37.90] |" in section
    assert "| patch_encoder | PTQ | 55.81 | -41.74 [-42.70, -40.80] | 97.55 | 56.50 | 0 | 0 | - |" in section
    order = [section.index(f"### {title}") for title in ("Keras 3's own", "Where the transformer breaks",
                                                          "QAT written in Keras 3")]
    assert order == sorted(order)


def test_the_micro_study_shows_each_files_run_or_refusal_and_why_it_does_not_fit_each_board(tmp_path):
    section = rendered_studies(tmp_path)
    assert "### The microcontroller runtime: what TFLM runs, how closely, and what fits" in section
    assert "`13_microcontrollers.ipynb`" in section and "`mobilenet_v1` sha256 `e361c5cd40d4e503`" in section
    # a refused file: its reason once, nothing measured, no board verdict
    assert "| mobilenet_v1 | dynamic_int8 | 902.2 | - | - | - | - | - | - | - | float ops: CONV_2D x15, " \
           "DEPTHWISE_CONV_2D x13 | - | - |" in section
    # 836.2 KiB fits the nRF52840's 896 KiB model budget, 964.2 KiB does not
    assert "| mobilenet_v1 | int8_per_tensor | 836.2 | 62.8 | 98.81 | 98.85 | 1.93 | 100.00 | 99.93 | 4 / 0 | - | " \
           "fits | fits |" in section
    assert "| mobilenet_v1 | int8_per_channel | 964.2 | 62.8 | 98.87 | 98.86 | 2.58 | 100.00 | 99.98 | 5 / 0 | - | " \
           "file 964.2 KiB > 896.0 KiB of flash | fits |" in section
    # 4-bit weights: the arena is over the nRF52840's RAM budget; no reference-kernel run ("-")
    assert "| mobilenet_v1 | qat_4bit | 570.5 | 308.0 | 98.80 | 98.80 | 93.77 | - | 100.00 | 1 / - | - | " \
           "arena 308.0 KiB > 224.0 KiB of RAM | fits |" in section
