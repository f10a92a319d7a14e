"""The bucket explorer: the float number line cut into ``2**num_bits`` buckets.

:func:`bucket_view` computes where values land and what that costs (pure numpy);
:func:`draw_bucket_explorer` draws it. Taught in ``01_buckets``; the live widget is
:class:`qlab.widgets.BucketExplorer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from qlab.numerics import calibration, metrics, quant
from qlab.numerics.synthetic import SYNTHETIC_SOURCES, synthetic_tensor
from qlab.numerics.validate import check_num_bits
from qlab.plots.figure import (fixed_title, new_figure, no_axis_labels, reuse_artists, set_yscale,
                               stacked_axes)

__all__ = ["RANGE_METHODS", "BucketView", "range_from_data", "bucket_view", "bucket_edges",
           "draw_bucket_explorer", "static_bucket_explorer"]

#: How the bucket explorer may choose its range: typed in, or from the data.
RANGE_METHODS: tuple[str, ...] = ("manual", "minmax", "percentile", "mse")
# More lines than this on a number line is a grey smear and slows drawing down.
MAX_EDGES_DRAWN = 257


@dataclass(frozen=True)
class BucketView:
    """Everything the bucket explorer shows for one setting of its controls."""

    x: np.ndarray  #: the float tensor, flattened
    params: Any  #: the :class:`qlab.numerics.quant.QuantParams` in use
    x_hat: np.ndarray  #: ``dequantize(quantize(x))``
    report: Any  #: :class:`qlab.numerics.metrics.QuantErrorReport` of ``x`` under ``params``
    window: tuple[float, float]  #: the interval whose values are followed into buckets
    window_values: np.ndarray  #: evenly spaced values inside ``window``
    window_codes: np.ndarray  #: their integer codes
    source: str = ""

    @property
    def window_buckets(self) -> int:
        """How many distinct buckets the values in ``window`` land in."""
        return int(np.unique(self.window_codes).size)

    def error_split(self) -> tuple[float, float]:
        """The MSE split into ``(rounding, clipping)`` parts; they add up to the MSE.

        Values inside the quantized range only suffer rounding (at most half a
        bucket); values outside it are clipped to the end bucket. A wider range
        trades clipping error for rounding error - that is the whole game of
        choosing a range.
        """
        squared = (self.x - self.x_hat) ** 2
        clipped = (self.x < float(np.asarray(self.params.min))) | (
            self.x > float(np.asarray(self.params.max)))
        n = self.x.size
        return float(squared[~clipped].sum() / n), float(squared[clipped].sum() / n)

    def summary(self) -> dict[str, float]:
        """The error numbers, the rounding/clipping split, scale and zero point, as a flat dict."""
        out = dict(self.report.as_dict())
        out["rounding_mse"], out["clipping_mse"] = self.error_split()
        out["scale"] = float(np.asarray(self.params.scale))
        out["zero_point"] = int(np.asarray(self.params.zero_point))
        out["window_buckets"] = self.window_buckets
        return out

    def __repr__(self) -> str:
        r = self.report
        return (f"BucketView(int{self.params.num_bits}, range [{float(self.params.min):.4g}, "
                f"{float(self.params.max):.4g}], SQNR {r.sqnr_db:.1f} dB, "
                f"{r.buckets_used}/{r.levels} buckets used, {100 * r.clipped_fraction:.2f} % clipped)")


def range_from_data(x: np.ndarray, method: str = "minmax", num_bits: int = 8) -> tuple[float, float]:
    """The (min, max) range that calibration ``method`` picks for ``x``."""
    if method == "minmax":
        lo, hi = calibration.minmax_range(x)
    elif method == "percentile":
        lo, hi = calibration.percentile_range(x)
    elif method == "mse":
        lo, hi = calibration.mse_optimal_range(x, num_bits=num_bits)
    else:
        valid = [m for m in RANGE_METHODS if m != "manual"]
        raise ValueError(f"method must be one of {valid}, got {method!r}")
    return float(lo), float(hi)


def bucket_view(x: np.ndarray, num_bits: int = 8, range_min: float | None = None,
                range_max: float | None = None, symmetric: bool = False,
                narrow_range: bool = False, window: tuple[float, float] = (2.0, 2.3),
                window_points: int = 16, source: str = "") -> BucketView:
    """Quantize ``x`` with the given settings and collect what the explorer draws.

    Args:
        x: the float tensor (any shape; it is flattened).
        num_bits: bits per value, 2..16 (int8 is 8: 256 buckets).
        range_min, range_max: the float range to quantize; ``None`` takes it
            from the data (min/max).
        symmetric, narrow_range: as in TFLite / TFMOT.
        window: an interval whose values are followed into their buckets.
        window_points: how many evenly spaced values in ``window`` to follow.
    """
    num_bits = check_num_bits(num_bits)
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("x must be a non-empty array of finite numbers")
    data_lo, data_hi = float(x.min()), float(x.max())
    lo = data_lo if range_min is None else float(range_min)
    hi = data_hi if range_max is None else float(range_max)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo >= hi:
        raise ValueError(f"range min must be below range max, got min={lo:g}, max={hi:g}; "
                         "type a min smaller than the max")
    w_lo, w_hi = float(window[0]), float(window[1])
    if w_lo > w_hi:
        raise ValueError(f"window must be (low, high) with low <= high, got {window}")
    params = quant.choose_quant_params(lo, hi, num_bits=num_bits, signed=True,
                                       symmetric=bool(symmetric), narrow_range=bool(narrow_range))
    x_hat = np.asarray(quant.dequantize(quant.quantize(x, params), params), dtype=np.float64)
    report = metrics.error_report(x, params)
    values = np.linspace(w_lo, w_hi, int(window_points))
    codes = np.asarray(quant.quantize(values, params))
    return BucketView(x, params, x_hat, report, (w_lo, w_hi), values, codes, source)


def bucket_edges(params: Any, lo: float | None = None, hi: float | None = None,
                 max_edges: int = MAX_EDGES_DRAWN) -> tuple[np.ndarray, int]:
    """Float positions of the bucket edges of per-tensor ``params`` (every ``step``-th one).

    Bucket ``q`` covers ``[(q - zero_point - 0.5) * scale, (q - zero_point + 0.5) * scale)``.
    Only edges inside ``[lo, hi]`` (default: the whole quantized range) are
    returned, thinned to at most ``max_edges``. Returns ``(edges, step)``.
    """
    scale = float(np.asarray(params.scale))
    zp = float(np.asarray(params.zero_point))
    q_lo, q_hi = params.qmin, params.qmax + 1  # edge k sits below bucket k
    if lo is not None:
        q_lo = max(q_lo, int(np.floor(lo / scale + zp + 0.5)))
    if hi is not None:
        q_hi = min(q_hi, int(np.ceil(hi / scale + zp + 0.5)))
    count = max(q_hi - q_lo + 1, 0)
    step = max(1, int(np.ceil(count / max_edges)))
    q = np.arange(q_lo, q_hi + 1, step)
    return (q - zp - 0.5) * scale, step


@dataclass(frozen=True)
class _BucketArtists:
    """The bucket explorer's artists, made once per Figure and updated from each view."""

    number_line: Any
    clipped_low: Any
    clipped_high: Any
    edges: LineCollection
    window_span: Any
    zero_label: Any
    window_ax: Any
    window_edges: LineCollection
    floats: Any
    quantized: Any
    links: LineCollection
    histogram: Any
    float_counts: Any
    level_lines: LineCollection
    level_counts: Any
    legend: Any
    numbers: Any
    suptitle: Any


def _build_number_line(ax: Any) -> dict[str, Any]:
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.tick_params(labelbottom=False)  # the histogram below has the same x axis, labelled
    fixed_title(ax, fontsize=9)
    no_axis_labels(ax.xaxis, ax.yaxis)
    red = dict(color="tab:red", alpha=0.15, lw=0)
    clipped_low, clipped_high = ax.axvspan(0, 1, **red), ax.axvspan(0, 1, **red)
    edges = ax.add_collection(LineCollection([], colors="0.35", lw=0.6), autolim=False)
    window_span = ax.axvspan(0, 1, ymin=0.1, ymax=0.9, color="tab:orange", alpha=0.35, lw=0)
    ax.plot([0.0], [0.5], marker="v", ms=10, color="tab:green", ls="none")
    zero_label = ax.annotate(" ", (0.0, 0.8), ha="center", fontsize=8, color="tab:green")
    return dict(number_line=ax, clipped_low=clipped_low, clipped_high=clipped_high, edges=edges,
                window_span=window_span, zero_label=zero_label)


def _build_window(ax: Any) -> dict[str, Any]:
    ax.set_ylim(-0.3, 1.3)
    ax.set_yticks([0, 1], ["quantized", "float"], fontsize=8)
    fixed_title(ax, fontsize=9)
    no_axis_labels(ax.xaxis, ax.yaxis)
    window_edges = ax.add_collection(LineCollection([], colors="0.7", lw=0.6), autolim=False)
    (floats,) = ax.plot([], [], "o", color="tab:orange", ms=4)
    (quantized,) = ax.plot([], [], "s", color="tab:blue", ms=6)
    links = ax.add_collection(LineCollection([], colors="tab:orange", lw=0.6, alpha=0.7),
                              autolim=False)
    return dict(window_ax=ax, window_edges=window_edges, floats=floats, quantized=quantized,
                links=links)


def _build_histogram(ax: Any) -> dict[str, Any]:
    set_yscale(ax, "log")
    float_counts = ax.stairs([1.0], [0.0, 1.0], color="0.3")  # one artist: cheaper than hist()
    level_lines = ax.add_collection(LineCollection([], colors="tab:blue", lw=1.2), autolim=False)
    level_counts = ax.stairs([1.0], [0.0, 1.0], color="tab:blue", lw=1.2)
    # one legend for both ways of drawing the quantized values: only its label changes
    legend = ax.legend([float_counts, level_lines], ["float", "quantized"], fontsize=8,
                       loc="upper left")
    ax.set_xlabel("value")
    no_axis_labels(ax.yaxis)
    numbers = ax.text(0.99, 0.97, " ", transform=ax.transAxes, ha="right", va="top", fontsize=8,
                      family="monospace", bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    return dict(histogram=ax, float_counts=float_counts, level_lines=level_lines,
                level_counts=level_counts, legend=legend, numbers=numbers)


def _build_bucket_explorer(fig: Figure) -> _BucketArtists:
    """Axes and empty artists of the explorer; :func:`draw_bucket_explorer` fills them."""
    line_ax, window_ax, hist_ax = stacked_axes(fig, 3, hspace=0.55, height_ratios=[1.0, 1.3, 2.4])
    return _BucketArtists(**_build_number_line(line_ax), **_build_window(window_ax),
                          **_build_histogram(hist_ax), suptitle=fig.suptitle(" ", fontsize=10))


def _vertical_segments(x: np.ndarray, y0: Any, y1: Any) -> np.ndarray:
    """``(n, 2, 2)`` segments from ``(x, y0)`` to ``(x, y1)``, as ``vlines`` would draw."""
    x = np.asarray(x, dtype=np.float64)
    return np.stack([np.stack([x, np.broadcast_to(y0, x.shape)], axis=1),
                     np.stack([x, np.broadcast_to(y1, x.shape)], axis=1)], axis=1)


def _set_span(rect: Any, lo: float, hi: float) -> None:
    rect.set_x(lo)
    rect.set_width(hi - lo)


def _update_number_line(a: _BucketArtists, view: BucketView) -> tuple[float, float]:
    """Buckets and clipped regions on the number line; returns its x limits."""
    p = view.params
    qlo, qhi = float(np.asarray(p.min)), float(np.asarray(p.max))
    span_lo, span_hi = min(qlo, float(view.x.min())), max(qhi, float(view.x.max()))
    pad = 0.04 * (span_hi - span_lo or 1.0)
    xlim = (span_lo - pad, span_hi + pad)
    a.number_line.set_xlim(*xlim)
    _set_span(a.clipped_low, xlim[0], qlo)
    _set_span(a.clipped_high, qhi, xlim[1])
    edges, step = bucket_edges(p)
    a.edges.set_segments(_vertical_segments(edges, 0.25, 0.75))
    _set_span(a.window_span, *view.window)
    a.zero_label.set_text(f"0.0 -> zero_point {int(np.asarray(p.zero_point))}")
    thinned = "" if step == 1 else f" (every {step}th edge drawn)"
    scale = float(np.asarray(p.scale))
    a.number_line.title.set_text(f"{p.levels} buckets of width scale={scale:.4g} "
                                 f"over [{qlo:.4g}, {qhi:.4g}]{thinned}; red: clipped")
    return xlim


def _update_window(a: _BucketArtists, view: BucketView) -> None:
    """The followed values, the buckets around them and where each one lands."""
    p = view.params
    x_hat = np.asarray(quant.dequantize(view.window_codes, p), dtype=np.float64)
    lo = min(view.window[0], float(x_hat.min()))
    hi = max(view.window[1], float(x_hat.max()))
    pad = 0.08 * (hi - lo or float(np.asarray(p.scale)))
    a.window_ax.set_xlim(lo - pad, hi + pad)
    edges, _ = bucket_edges(p, lo - pad, hi + pad)
    a.window_edges.set_segments(_vertical_segments(edges, -0.2, 1.2))
    a.floats.set_data(view.window_values, np.ones_like(view.window_values))
    a.quantized.set_data(x_hat, np.zeros_like(x_hat))
    a.links.set_segments(np.stack([np.stack([view.window_values, np.ones_like(x_hat)], axis=1),
                                   np.stack([x_hat, np.zeros_like(x_hat)], axis=1)], axis=1))
    a.window_ax.title.set_text(f"the {len(view.window_values)} values in [{view.window[0]:g}, "
                               f"{view.window[1]:g}] land in {view.window_buckets} bucket(s)")


def _update_histogram(a: _BucketArtists, view: BucketView, xlim: tuple[float, float],
                      show_numbers: bool) -> None:
    """Float and quantized histograms on a log axis, and optionally the error numbers."""
    lo = min(float(view.x.min()), float(view.x_hat.min()))
    hi = max(float(view.x.max()), float(view.x_hat.max()))
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 121)
    counts_float, _ = np.histogram(view.x, bins)
    a.float_counts.set_data(counts_float, bins)
    levels, counts = np.unique(view.x_hat, return_counts=True)
    one_line_per_bucket = levels.size <= MAX_EDGES_DRAWN
    a.level_lines.set_visible(one_line_per_bucket)
    a.level_counts.set_visible(not one_line_per_bucket)
    if one_line_per_bucket:
        a.level_lines.set_segments(_vertical_segments(levels, 0.0, counts))
    else:
        a.level_counts.set_data(np.histogram(view.x_hat, bins)[0], bins)
    a.legend.texts[1].set_text("quantized (one line per bucket)" if one_line_per_bucket
                               else "quantized")
    a.histogram.set_xlim(*xlim)
    a.histogram.set_ylim(0.7, 2.0 * max(int(counts.max()), int(counts_float.max())))
    a.numbers.set_visible(show_numbers)
    if show_numbers:
        r = view.report
        rounding, clipping = view.error_split()
        a.numbers.set_text(f"MSE {r.mse:.3g}\n rounding {rounding:.3g}\n clipping {clipping:.3g}\n"
                           f"max error {r.max_abs_error:.3g}\nSQNR {r.sqnr_db:.1f} dB\n"
                           f"buckets used {r.buckets_used}/{r.levels}\n"
                           f"clipped {100 * r.clipped_fraction:.2f} %")


def draw_bucket_explorer(view: BucketView, fig: Figure | None = None,
                         show_numbers: bool = True) -> Figure:
    """Draw ``view``: number line with buckets, where the window's values land, histograms.

    Drawing into a ``fig`` that already shows the explorer only updates its
    artists (the live widget's path); the picture is the same as a fresh draw.
    ``show_numbers`` adds the error numbers in a box (the live widget shows
    them in a table under the picture instead).
    """
    fig = new_figure() if fig is None else fig
    artists = reuse_artists(fig, "bucket_explorer", _build_bucket_explorer)
    xlim = _update_number_line(artists, view)
    _update_window(artists, view)
    _update_histogram(artists, view, xlim, show_numbers)
    p = view.params
    kind = "symmetric" if p.symmetric else "asymmetric"
    narrow = ", narrow_range" if p.narrow_range else ""
    artists.suptitle.set_text(f"{view.source or 'tensor'}: int{p.num_bits} {kind}{narrow}")
    return fig


def static_bucket_explorer() -> Figure:
    """The bucket explorer's picture at its default settings (int8, min/max of the data).

    Taught in ``01_buckets``.
    """
    x = synthetic_tensor(SYNTHETIC_SOURCES[0])
    return draw_bucket_explorer(bucket_view(x, source=SYNTHETIC_SOURCES[0]))
