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
from qlab.plots.figure import fresh_axes, new_figure, set_yscale

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


def _draw_number_line(ax, view: BucketView) -> None:
    p = view.params
    qlo, qhi = float(np.asarray(p.min)), float(np.asarray(p.max))
    span_lo, span_hi = min(qlo, float(view.x.min())), max(qhi, float(view.x.max()))
    pad = 0.04 * (span_hi - span_lo or 1.0)
    ax.set_xlim(span_lo - pad, span_hi + pad)
    ax.set_ylim(0, 1)
    ax.tick_params(labelbottom=False)  # the histogram below has the same x axis, labelled
    ax.axvspan(span_lo - pad, qlo, color="tab:red", alpha=0.15, lw=0)
    ax.axvspan(qhi, span_hi + pad, color="tab:red", alpha=0.15, lw=0)
    edges, step = bucket_edges(p)
    ax.vlines(edges, 0.25, 0.75, color="0.35", lw=0.6)
    ax.axvspan(*view.window, ymin=0.1, ymax=0.9, color="tab:orange", alpha=0.35, lw=0)
    ax.plot([0.0], [0.5], marker="v", ms=10, color="tab:green", ls="none")
    ax.annotate(f"0.0 -> zero_point {int(np.asarray(p.zero_point))}", (0.0, 0.8),
                ha="center", fontsize=8, color="tab:green")
    thinned = "" if step == 1 else f" (every {step}th edge drawn)"
    ax.set_title(f"{p.levels} buckets of width scale={float(np.asarray(p.scale)):.4g} "
                 f"over [{qlo:.4g}, {qhi:.4g}]{thinned}; red: clipped", fontsize=9)
    ax.set_yticks([])


def _draw_window(ax, view: BucketView) -> None:
    p = view.params
    x_hat = np.asarray(quant.dequantize(view.window_codes, p), dtype=np.float64)
    lo = min(view.window[0], float(x_hat.min()))
    hi = max(view.window[1], float(x_hat.max()))
    pad = 0.08 * (hi - lo or float(np.asarray(p.scale)))
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.3, 1.3)
    edges, _ = bucket_edges(p, lo - pad, hi + pad)
    ax.vlines(edges, -0.2, 1.2, color="0.7", lw=0.6)
    ax.plot(view.window_values, np.ones_like(view.window_values), "o", color="tab:orange", ms=4)
    ax.plot(x_hat, np.zeros_like(x_hat), "s", color="tab:blue", ms=6)
    segments = np.stack([np.stack([view.window_values, np.ones_like(x_hat)], axis=1),
                         np.stack([x_hat, np.zeros_like(x_hat)], axis=1)], axis=1)
    ax.add_collection(LineCollection(segments, colors="tab:orange", lw=0.6, alpha=0.7))
    ax.set_yticks([0, 1], ["quantized", "float"], fontsize=8)
    ax.set_title(f"the {len(view.window_values)} values in [{view.window[0]:g}, "
                 f"{view.window[1]:g}] land in {view.window_buckets} bucket(s)", fontsize=9)


def _draw_histogram(ax, view: BucketView, xlim: tuple[float, float], show_numbers: bool) -> None:
    lo = min(float(view.x.min()), float(view.x_hat.min()))
    hi = max(float(view.x.max()), float(view.x_hat.max()))
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 121)
    counts_float, _ = np.histogram(view.x, bins)
    ax.stairs(counts_float, bins, color="0.3", label="float")  # one artist: cheaper than hist()
    levels, counts = np.unique(view.x_hat, return_counts=True)
    if levels.size <= MAX_EDGES_DRAWN:
        ax.vlines(levels, 0, counts, color="tab:blue", lw=1.2, label="quantized (one line per bucket)")
    else:
        ax.stairs(np.histogram(view.x_hat, bins)[0], bins, color="tab:blue", label="quantized")
    set_yscale(ax, "log")
    ax.set_xlim(*xlim)
    ax.set_ylim(0.7, 2.0 * max(int(counts.max()), int(counts_float.max())))
    ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("value")
    if not show_numbers:
        return
    r = view.report
    rounding, clipping = view.error_split()
    text = (f"MSE {r.mse:.3g}\n rounding {rounding:.3g}\n clipping {clipping:.3g}\n"
            f"max error {r.max_abs_error:.3g}\nSQNR {r.sqnr_db:.1f} dB\n"
            f"buckets used {r.buckets_used}/{r.levels}\nclipped {100 * r.clipped_fraction:.2f} %")
    ax.text(0.99, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=8,
            family="monospace", bbox=dict(boxstyle="round", fc="white", ec="0.7"))


def draw_bucket_explorer(view: BucketView, fig: Figure | None = None,
                         show_numbers: bool = True) -> Figure:
    """Draw ``view``: number line with buckets, where the window's values land, histograms.

    ``show_numbers`` adds the error numbers in a box (the live widget shows
    them in a table under the picture instead, which is quicker to redraw).
    """
    fig = new_figure() if fig is None else fig
    axes = fresh_axes(fig, "bucket_explorer", 3, height_ratios=[1.0, 1.3, 2.4], hspace=0.55)
    _draw_number_line(axes[0], view)
    _draw_window(axes[1], view)
    _draw_histogram(axes[2], view, axes[0].get_xlim(), show_numbers)
    p = view.params
    kind = "symmetric" if p.symmetric else "asymmetric"
    narrow = ", narrow_range" if p.narrow_range else ""
    fig.suptitle(f"{view.source or 'tensor'}: int{p.num_bits} {kind}{narrow}", fontsize=10)
    return fig


def static_bucket_explorer() -> Figure:
    """The bucket explorer's picture at its default settings (int8, min/max of the data).

    Taught in ``01_buckets``.
    """
    x = synthetic_tensor(SYNTHETIC_SOURCES[0])
    return draw_bucket_explorer(bucket_view(x, source=SYNTHETIC_SOURCES[0]))
