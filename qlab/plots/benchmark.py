"""The benchmark's picture: accuracy against file size and against latency, one column per model.

:func:`benchmark_view` picks the points out of ``qlab bench``'s results dict
(``benchmarks/results.json``); :func:`draw_benchmark` draws them on a
:class:`matplotlib.figure.Figure`. ``BENCHMARKS.md`` shows the saved PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.figure import Figure


@dataclass(frozen=True)
class BenchmarkPoint:
    """One model x variant: top-1 accuracy (%), file size (KB) and latency (ms) with its min-max."""

    model: str
    variant: str
    accuracy: float
    size_kb: float | None
    latency_ms: float | None
    latency_min_ms: float | None
    latency_max_ms: float | None


@dataclass(frozen=True)
class BenchmarkView:
    """The points to draw, with the models (columns) and variants (colours) in results order."""

    points: list[BenchmarkPoint]
    models: list[str]
    variants: list[str]

    def __repr__(self) -> str:
        return (f"BenchmarkView({len(self.points)} points, models {self.models}, "
                f"{len(self.variants)} variants)")


def _point(row: dict[str, Any]) -> BenchmarkPoint:
    latency = row.get("latency_ms")
    return BenchmarkPoint(
        model=row["model"], variant=row["variant"], accuracy=100 * row["accuracy"],
        # a variant evaluated without a file (qat_4bit in results saved before it was converted) has no size
        size_kb=row["size_bytes"] / 1024 if row.get("size_bytes") else None, latency_ms=latency,
        latency_min_ms=row.get("latency_ms_min", latency),
        latency_max_ms=row.get("latency_ms_max", latency))


def benchmark_view(results: dict[str, Any]) -> BenchmarkView:
    """Every row of ``results`` with an accuracy, as points to draw.

    Raises:
        ValueError: no row has an accuracy.
    """
    points = [_point(r) for r in results["rows"] if r.get("accuracy") is not None]
    if not points:
        raise ValueError("results has no rows with an accuracy to plot")
    return BenchmarkView(points, list(dict.fromkeys(p.model for p in points)),
                         list(dict.fromkeys(p.variant for p in points)))


def _draw_model(top: Any, bottom: Any, points: list[BenchmarkPoint], colour: dict[str, Any]
                ) -> None:
    """One column: accuracy against size (top) and against latency (bottom)."""
    for p in points:
        c = colour[p.variant]
        if p.size_kb is None:  # no file: its accuracy as a dotted line across both panels
            for ax in (top, bottom):
                ax.axhline(p.accuracy, color=c, linestyle=":", label=p.variant)
            continue
        top.scatter(p.size_kb, p.accuracy, s=36, color=c, label=p.variant)
        if p.latency_ms is not None:
            err = [[p.latency_ms - p.latency_min_ms], [p.latency_max_ms - p.latency_ms]]
            bottom.errorbar(p.latency_ms, p.accuracy, xerr=err, fmt="o", color=c, markersize=6,
                            capsize=3)
    top.set(xscale="log", xlabel="TFLite file size (KB, log)", ylabel="top-1 accuracy (%)",
            title=points[0].model)
    bottom.set(xscale="log", xlabel="batch-1 latency (ms, log; bars: min-max of repeats)",
               ylabel="top-1 accuracy (%)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3, which="both")


def draw_benchmark(view: BenchmarkView, fig: Figure | None = None) -> Figure:
    """Accuracy against file size (top) and latency with its min-max (bottom), one column per model.

    One colour per variant in every panel, named in the legend; a variant without a
    file (``qat_4bit`` in older results) is drawn as a dotted accuracy line.
    """
    if fig is None:
        fig = Figure(figsize=(4.5 * len(view.models), 7.5))
    fig.clear()
    cmap = matplotlib.colormaps["tab10"]
    colour = {v: cmap(i % 10) for i, v in enumerate(view.variants)}
    axes = fig.subplots(2, len(view.models), squeeze=False)
    for col, model in enumerate(view.models):
        _draw_model(axes[0][col], axes[1][col], [p for p in view.points if p.model == model],
                    colour)
    handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels())}
    ncol = min(len(handles), 3 * len(view.models))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=ncol, fontsize=8)
    fig.tight_layout(rect=(0, 0.02 + 0.03 * -(-len(handles) // ncol), 1, 1))
    return fig
