"""qlab.workbook.bench.measure without measuring anything: repeated latencies, the order of collect's steps.

The measurements themselves (models, notebooks, widgets) are tested in
tests/integration/workbook/test_bench_measure.py.
"""

from pathlib import Path

import pytest

from qlab.workbook.bench import measure


def test_summarize_repeats_takes_median_and_min_max_of_per_repeat_ratios():
    repeats = [{"float32": 1.0, "int8": 0.5}, {"float32": 2.0, "int8": 0.6},
               {"float32": 1.0, "int8": 0.4}]
    summary = measure.summarize_repeats(repeats)
    assert summary["int8"]["latency_ms"] == 0.5
    assert (summary["int8"]["latency_ms_min"], summary["int8"]["latency_ms_max"]) == (0.4, 0.6)
    # ratios per repeat: 0.5, 0.3, 0.4 (not 0.5 / 1.0 from the overall medians)
    assert summary["int8"]["latency_ratio"] == pytest.approx(0.4)
    assert summary["int8"]["latency_ratio_min"] == pytest.approx(0.3)
    assert summary["int8"]["latency_ratio_max"] == pytest.approx(0.5)
    assert summary["float32"]["latency_ratio"] == 1.0 and summary["int8"]["latency_repeats"] == 3


def test_summarize_repeats_needs_the_baseline_in_every_repeat():
    with pytest.raises(ValueError, match="baseline 'float32'"):
        measure.summarize_repeats([{"float32": 1.0, "int8": 0.5}, {"int8": 0.5}])
    with pytest.raises(ValueError, match="non-empty"):
        measure.summarize_repeats([])


def test_measure_latency_repeats_needs_at_least_one_repeat():
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        measure.measure_latency_repeats({}, repeats=0)


def test_collect_records_the_lesson_studies_after_the_comparison(monkeypatch):
    from qlab.workbook import studies
    from qlab.workbook.bench import measure

    calls = []

    def fake_compare(models, variants, seed, latency_repeats, latency_runs, verbose):
        calls.append("compare")
        return {"rows": [], "config": {}}

    def fake_record_all(models, seed, verbose):
        calls.append(("record_all", models, seed, verbose))
        return [Path("/somewhere/studies/accuracy_sweep-mnist_cnn-abc.json")]

    def fake_study_figures(paths):
        calls.append(("study_figures", [p.name for p in paths]))
        return {"accuracy_sweep": {"mnist_cnn": {"best": 0.99}}}

    monkeypatch.setattr(measure, "measure_compare", fake_compare)
    monkeypatch.setattr(studies, "record_all", fake_record_all)
    monkeypatch.setattr(studies, "study_figures", fake_study_figures)
    results = measure.collect(models="mnist_cnn", seed=3, skip_notebooks=True, skip_widgets=True,
                              verbose=False, notebooks=[])
    assert calls == ["compare", ("record_all", ["mnist_cnn"], 3, False),
                     ("study_figures", ["accuracy_sweep-mnist_cnn-abc.json"])]
    assert results["studies_recorded"] == ["accuracy_sweep-mnist_cnn-abc.json"] and not results["partial"]
    assert results["study_figures"] == {"accuracy_sweep": {"mnist_cnn": {"best": 0.99}}}
    calls.clear()  # "all": every study on each model it applies to, not only the compared ones
    measure.collect(models="all", seed=3, skip_notebooks=True, skip_widgets=True, verbose=False, notebooks=[])
    assert calls[1] == ("record_all", "all", 3, False)


def test_the_bench_measures_the_cnns_and_the_transformer_unless_told_otherwise():
    from qlab.zoo.models import MODELS

    assert measure.bench_models("all") == [*MODELS, "patch_encoder"]
    assert measure.bench_models("mobilenet_v2,patch_encoder") == ["mobilenet_v2", "patch_encoder"]
    with pytest.raises(ValueError, match="resnet"):
        measure.bench_models("resnet")
