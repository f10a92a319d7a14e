"""qlab.plots.benchmark: the benchmark's accuracy/size/latency picture from a small results dict."""

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from qlab.plots.benchmark import benchmark_view, draw_benchmark

MODELS = ("mnist_cnn", "mobilenet_v2", "mobilenet_v1")
VARIANTS = ("float32", "int8_per_channel", "int8_per_tensor", "qat_int8")


def row(model, variant, i):
    """A row with a file: accuracy, size and latency with its min-max, all different per variant."""
    return {"model": model, "variant": variant, "accuracy": 0.99 - 0.001 * i,
            "size_bytes": 400_000 / (1 + i), "latency_ms": 0.1 / (1 + i),
            "latency_ms_min": 0.09 / (1 + i), "latency_ms_max": 0.12 / (1 + i)}


def results():
    """Four variants with a file per model, plus qat_4bit (accuracy only) for mnist_cnn."""
    rows = [row(m, v, i) for m in MODELS for i, v in enumerate(VARIANTS)]
    rows.insert(4, {"model": "mnist_cnn", "variant": "qat_4bit", "accuracy": 0.985,
                    "size_bytes": None, "latency_ms": None})
    return {"rows": rows}


def test_plot_has_a_size_and_a_latency_panel_per_model():
    fig = draw_benchmark(benchmark_view(results()))
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == ["mnist_cnn", "mobilenet_v2", "mobilenet_v1"]
    assert len(axes[3].containers) == 4  # one error bar per variant with a latency (not qat_4bit)


def test_points_sit_at_size_and_accuracy_with_latency_bars_from_min_to_max():
    fig = draw_benchmark(benchmark_view(results()))
    top, bottom = fig.axes[0], fig.axes[3]
    offsets = np.array([c.get_offsets()[0] for c in top.collections])
    expected = [(400_000 / (1 + i) / 1024, 99.0 - 0.1 * i) for i in range(4)]
    np.testing.assert_allclose(offsets, expected)
    segments = bottom.containers[1].lines[2][0].get_segments()[0]  # int8_per_channel's x bar
    assert segments[:, 0] == pytest.approx([0.045, 0.06]) and segments[:, 1] == pytest.approx(98.9)
    assert top.get_xscale() == bottom.get_xscale() == "log"


def test_a_variant_without_a_file_is_a_dotted_line_in_both_panels_and_the_legend_names_all():
    fig = draw_benchmark(benchmark_view(results()))
    for ax in (fig.axes[0], fig.axes[3]):
        dotted = [line for line in ax.lines if line.get_linestyle() == ":"]
        assert len(dotted) == 1 and dotted[0].get_ydata()[0] == pytest.approx(98.5)
    assert not any(line.get_linestyle() == ":" for line in fig.axes[1].lines)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["float32", "int8_per_channel", "int8_per_tensor", "qat_int8", "qat_4bit"]


def test_the_view_keeps_results_order_and_redrawing_reuses_the_figure():
    view = benchmark_view(results())
    assert view.models == list(MODELS) and len(view.points) == 13
    assert view.variants == [*VARIANTS, "qat_4bit"]
    assert "13 points" in repr(view)
    fig = Figure()
    assert draw_benchmark(view, fig) is fig and draw_benchmark(view, fig) is fig
    assert len(fig.axes) == 6 and len(fig.legends) == 1


def test_results_without_an_accuracy_are_refused():
    with pytest.raises(ValueError, match="no rows with an accuracy"):
        benchmark_view({"rows": [{"model": "m", "variant": "float32", "accuracy": None}]})


def test_drawing_needs_neither_pyplot_nor_tensorflow():
    code = ("import sys; from qlab.plots.benchmark import benchmark_view, draw_benchmark; "
            "draw_benchmark(benchmark_view({'rows': [{'model': 'm', 'variant': 'v', "
            "'accuracy': 0.9, 'size_bytes': 1000, 'latency_ms': 0.1}]})); "
            "print(sorted(m for m in ('matplotlib.pyplot', 'tensorflow') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
