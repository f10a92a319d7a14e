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
        base = goals.result_row(results, row["model"], "float32")["accuracy"]
        delta, identical = row["accuracy"] - base, row["variant"] == "float32"
        row.update(top1_agreement=1.0 if identical else 0.985, kl_divergence=0.0 if identical else 0.0123,
                   output_sqnr_db=None if identical else 31.25, accuracy_delta=delta,
                   delta_low=delta - (0 if identical else 0.002), delta_high=delta + (0 if identical else 0.001),
                   mcnemar_p=1.0 if identical else 0.0312)
    return results


def varied_results():
    """Results that between them call for every paragraph of the template."""
    plain = fake_results()
    eventful = with_fine_metrics(fake_results())
    eventful.update(partial=True, finished=None, load_average={"start": 1.5, "now": 2.25},
                    notebooks_found=eventful["notebooks_found"][:4])
    eventful["notebooks"][1].update(ok=False, error="RuntimeError: boom")
    eventful["rows"].append(fake_row("mnist_cnn", "int16x8", 0.99) | {"latency_ratio": 30.0})
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
    assert "| **whole workbook** | 1000 | 100 |" in text
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


def test_rendering_twice_gives_the_same_text_and_leaves_the_results_alone():
    for results in varied_results():
        before = copy.deepcopy(results)
        assert report.render_markdown(results) == report.render_markdown(results)
        assert results == before


def test_no_placeholder_of_the_template_is_left_unfilled():
    for results in varied_results():
        text = report.render_markdown(results)
        assert re.search(r"\$(\w|\{)", text) is None, re.search(r".*\$.*", text).group()
        assert text.startswith("# Benchmarks\n\n") and text.endswith(" |\n")


def test_every_paragraph_of_the_template_appears_in_some_report():
    texts = [report.render_markdown(results) for results in varied_results()]
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


def test_results_from_before_the_fine_metrics_still_render_and_say_why_the_section_is_empty():
    committed = json.loads((repository_root() / "benchmarks" / "results.json").read_text())
    for text in (report.render_markdown(fake_results()), report.render_markdown(committed)):
        section = text[text.index("## Finer than top-1"):text.index("## Accuracy against size")]
        assert "Not in these results" in section and "| model |" not in section
