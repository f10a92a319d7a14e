"""What the interactive widgets compute and draw, as plain functions.

Every widget in :mod:`qlab.widgets` is a thin set of controls around the
functions here: a ``*_view`` function turns control values (and plain numpy
arrays) into a small result object, and a ``draw_*`` function turns that object
into a matplotlib :class:`~matplotlib.figure.Figure`. Both are tested without a
browser, and the ``static_*`` functions give the picture at the default settings
for notebooks to show before the live widget.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot,
so nothing is left open in pyplot's global figure list and a widget can redraw
into the same Figure on every change.

The three views:

* **bucket explorer** (:func:`bucket_view`, :func:`draw_bucket_explorer`): the
  float number line cut into ``2**num_bits`` buckets, where values land, and
  the error that costs;
* **error accumulation** (:func:`accumulation_view`,
  :func:`draw_error_accumulation`): the error against float layer by layer;
* **per-channel ranges** (:func:`channel_ranges_view`,
  :func:`draw_channel_ranges`): each output channel's weight range against the
  single per-tensor range.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from qlab.numerics import calibration
from qlab.numerics import metrics
from qlab.numerics import quant

#: Synthetic tensors the bucket explorer offers as data sources.
SYNTHETIC_SOURCES: tuple[str, ...] = (
    "normal + outliers",
    "normal",
    "uniform",
    "laplace (weight-like)",
    "relu activations",
)
#: How the bucket explorer may choose its range: typed in, or from the data.
RANGE_METHODS: tuple[str, ...] = ("manual", "minmax", "percentile", "mse")
#: Keras layer classes whose kernels TFLite quantizes per channel.
WEIGHT_LAYER_TYPES: tuple[str, ...] = ("Conv2D", "DepthwiseConv2D", "Dense")

# More lines than this on a number line is a grey smear and slows drawing down.
_MAX_EDGES_DRAWN = 257
_FIGSIZE = (9.0, 6.4)
_DPI = 72


# --------------------------------------------------------------------------- data


def synthetic_tensor(source: str = "normal + outliers", size: int = 20_000,
                     seed: int = 0) -> np.ndarray:
    """A 1-D float32 tensor with a shape of distribution seen in real networks.

    ``"normal + outliers"`` is mostly N(0, 1) with 0.1 % of values out near
    +-10 - the case where a min/max range wastes most buckets on the outliers.
    """
    if source not in SYNTHETIC_SOURCES:
        raise ValueError(f"source must be one of {SYNTHETIC_SOURCES}, got {source!r}")
    if size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    rng = np.random.default_rng(seed)
    if source == "normal + outliers":
        x = rng.normal(size=size)
        n_out = max(2, size // 1000)
        idx = rng.choice(size, n_out, replace=False)
        x[idx] = rng.choice([-1.0, 1.0], n_out) * rng.uniform(8.0, 12.0, n_out)
    elif source == "normal":
        x = rng.normal(size=size)
    elif source == "uniform":
        x = rng.uniform(-3.0, 3.0, size)
    elif source == "laplace (weight-like)":
        x = rng.laplace(scale=0.05, size=size)
    else:
        x = np.maximum(rng.normal(0.5, 1.5, size), 0.0)
    return x.astype(np.float32)


def synthetic_depthwise_kernel(channels: int = 32, seed: int = 0) -> np.ndarray:
    """A (3, 3, channels, 1) depthwise kernel whose channels differ in scale by ~100x.

    Trained MobileNets look like this after batch norm is folded into the
    depthwise kernels: a few channels are large, many are tiny - the case where
    one per-tensor range leaves the tiny channels with one or two buckets.
    """
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    rng = np.random.default_rng(seed)
    channel_scale = np.exp(rng.normal(-2.0, 1.2, channels))
    return (rng.normal(size=(3, 3, channels, 1)) * channel_scale[None, None, :, None]).astype(
        np.float32)


# ------------------------------------------------------------------ bucket explorer


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


def _check_num_bits(num_bits: int) -> None:
    if not isinstance(num_bits, (int, np.integer)) or not 2 <= num_bits <= 16:
        raise ValueError(f"num_bits must be an integer from 2 to 16, got {num_bits!r}")


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
    _check_num_bits(num_bits)
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
    params = quant.choose_quant_params(lo, hi, num_bits=int(num_bits), signed=True,
                                       symmetric=bool(symmetric), narrow_range=bool(narrow_range))
    x_hat = np.asarray(quant.dequantize(quant.quantize(x, params), params), dtype=np.float64)
    report = metrics.error_report(x, params)
    values = np.linspace(w_lo, w_hi, int(window_points))
    codes = np.asarray(quant.quantize(values, params))
    return BucketView(x, params, x_hat, report, (w_lo, w_hi), values, codes, source)


def bucket_edges(params: Any, lo: float | None = None, hi: float | None = None,
                 max_edges: int = _MAX_EDGES_DRAWN) -> tuple[np.ndarray, int]:
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
    if levels.size <= _MAX_EDGES_DRAWN:
        ax.vlines(levels, 0, counts, color="tab:blue", lw=1.2, label="quantized (one line per bucket)")
    else:
        ax.stairs(np.histogram(view.x_hat, bins)[0], bins, color="tab:blue", label="quantized")
    _set_yscale(ax, "log")
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


class WorkbookFigure(Figure):
    """A Figure that shows itself as a PNG when a notebook cell ends with it.

    Figures made without pyplot are not known to the inline backend until
    pyplot is imported; ``_repr_png_`` makes ``qlab.lite.widget_figures.static_*()``
    display in any notebook, executed or not.
    """

    def _repr_png_(self) -> bytes:
        return figure_png(self)


def new_figure(figsize: tuple[float, float] = _FIGSIZE) -> Figure:
    """A pyplot-free Figure with an Agg canvas, for drawing into again and again."""
    # A fixed layout: constrained_layout would cost hundreds of ms on every redraw.
    fig = WorkbookFigure(figsize=figsize, dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _fresh_axes(fig: Figure, kind: str, rows: int, hspace: float = 0.4,
                bottom: float = 0.08, height_ratios: Sequence[float] | None = None) -> list:
    """``rows`` empty stacked axes in ``fig``, reusing the ones a previous draw of ``kind`` made.

    Emptying existing axes is several times cheaper than rebuilding them (their
    tick objects survive), which is what keeps a widget update under 100 ms.
    """
    if getattr(fig, "_qlab_kind", None) == kind and len(fig.axes) == rows:
        axes = list(fig.axes)
        for ax in axes:
            _remove_artists(ax)
        for text in list(fig.texts):
            text.remove()
        return axes
    fig.clear()
    fig._qlab_kind = kind
    grid = fig.add_gridspec(rows, 1, height_ratios=height_ratios, hspace=hspace,
                            left=0.09, right=0.97, top=0.9, bottom=bottom)
    axes = [fig.add_subplot(grid[i, 0]) for i in range(rows)]
    for ax in axes:
        _few_ticks(ax)
    return axes


def _remove_artists(ax) -> None:
    """Empty ``ax`` but keep its axis and tick objects (``ax.clear()`` rebuilds them: slow)."""
    for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts, *ax.images]:
        artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    ax.set_title("")
    ax.relim()
    ax.set_autoscale_on(True)


def _set_yscale(ax, scale: str) -> None:
    # set_yscale resets the tick machinery even when the scale does not change.
    if ax.get_yscale() != scale:
        ax.set_yscale(scale)
        if scale == "log":
            ax.yaxis.set_major_locator(LogLocator(numticks=5))
            # plain "0.001" labels: the default 10^x labels go through mathtext (slow to draw)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(NullLocator())


def _few_ticks(ax) -> None:
    """At most ~6 major ticks and no minor ones: drawing ticks is most of the drawing time."""
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())


def draw_bucket_explorer(view: BucketView, fig: Figure | None = None,
                         show_numbers: bool = True) -> Figure:
    """Draw ``view``: number line with buckets, where the window's values land, histograms.

    ``show_numbers`` adds the error numbers in a box (the live widget shows
    them in a table under the picture instead, which is quicker to redraw).
    """
    fig = new_figure() if fig is None else fig
    axes = _fresh_axes(fig, "bucket_explorer", 3, height_ratios=[1.0, 1.3, 2.4], hspace=0.55)
    _draw_number_line(axes[0], view)
    _draw_window(axes[1], view)
    _draw_histogram(axes[2], view, axes[0].get_xlim(), show_numbers)
    p = view.params
    kind = "symmetric" if p.symmetric else "asymmetric"
    narrow = ", narrow_range" if p.narrow_range else ""
    fig.suptitle(f"{view.source or 'tensor'}: int{p.num_bits} {kind}{narrow}", fontsize=10)
    return fig


def static_bucket_explorer() -> Figure:
    """The bucket explorer's picture at its default settings (int8, min/max of the data)."""
    x = synthetic_tensor(SYNTHETIC_SOURCES[0])
    return draw_bucket_explorer(bucket_view(x, source=SYNTHETIC_SOURCES[0]))


# ------------------------------------------------------------- error accumulation


@dataclass(frozen=True)
class AccumulationView:
    """The synthetic chain's per-layer error, and optionally a real model's profile."""

    chain: Any  #: :class:`qlab.numerics.accumulate.ChainResult`
    settings: dict[str, Any]
    layer_error: np.ndarray  #: the chain's per-layer error, the quantity drawn
    error_name: str
    model_profile: tuple[list[str], np.ndarray] | None = None
    model_error_name: str = ""

    def __repr__(self) -> str:
        s = self.settings
        return (f"AccumulationView(int{s['num_bits']}, depth {s['depth']}, "
                f"{'per-channel' if s['per_channel'] else 'per-tensor'}, "
                f"int32_accumulate={s['int32_accumulate']}, requantize={s['requantize']}: "
                f"{self.error_name} after the last layer {float(self.layer_error[-1]):.4g})")


# Names a per-layer error array may carry, most telling first.
_CHAIN_ERROR_FIELDS = ("relative_error", "rel_error", "rmse", "mse", "sqnr_db")


def chain_layer_error(chain: Any) -> tuple[np.ndarray, str]:
    """The per-layer error array of a ``ChainResult`` and its name."""
    for name in _CHAIN_ERROR_FIELDS:
        value = getattr(chain, name, None)
        if value is not None:
            return np.asarray(value, dtype=np.float64).ravel(), name
    raise TypeError(f"chain has none of the per-layer error fields {_CHAIN_ERROR_FIELDS}: {chain!r}")


# Column names a per-layer table may use, in order of preference.
_NAME_COLUMNS = ("keras_layer", "layer", "layer_name", "name", "tensor_name")
_ERROR_COLUMNS = ("rmse/scale", "rmse", "relative_error", "mse", "mean_squared_error",
                  "max_abs_error")


def layer_error_profile(table: Any, error_column: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """Layer names and one error column from a per-layer table, in graph order.

    ``table`` may be the DataFrame of :func:`qlab.lite.debug.layer_error_table`
    (rows are put back in ``op_index`` order; ``keras_layer`` names them;
    ``rmse/scale`` - the error in units of the output's bucket width - is drawn
    unless ``error_column`` says otherwise), another DataFrame (the index or a
    ``layer``/``name`` column names the layers), a ``{layer: error}`` dict, or
    a 1-D array.
    """
    if isinstance(table, dict):
        return [str(k) for k in table], np.asarray(list(table.values()), dtype=np.float64), "error"
    if hasattr(table, "columns"):
        if "op_index" in table.columns:
            table = table.sort_values("op_index")
        names_col = next((c for c in _NAME_COLUMNS if c in table.columns), None)
        names = [str(v) for v in (table[names_col] if names_col else table.index)]
        numeric = [c for c in table.select_dtypes("number").columns
                   if c not in ("op_index", "num_elements", "zero_point")]
        if error_column is None:
            error_column = next((c for c in _ERROR_COLUMNS if c in numeric), None)
            error_column = error_column or (numeric[0] if numeric else None)
            if error_column is None:
                raise ValueError(f"table has no numeric error column; columns are {list(table.columns)}")
        elif error_column not in table.columns:
            raise ValueError(f"error_column {error_column!r} is not a column; choose from {numeric}")
        return names, np.asarray(table[error_column], dtype=np.float64), str(error_column)
    values = np.asarray(table, dtype=np.float64).ravel()
    return [str(i) for i in range(values.size)], values, "error"


def model_error_profile(model: Any, x: np.ndarray, num_samples: int = 100) -> Any:
    """The per-layer error table of ``model``'s int8 TFLite version (TFLite's QuantizationDebugger).

    A thin call of :func:`qlab.lite.debug.layer_error_table` (converts the model:
    seconds to minutes), for :class:`qlab.widgets.ErrorAccumulation`'s lower panel.
    """
    from qlab.lite.debug import layer_error_table

    return layer_error_table(model, x, num_samples=num_samples)


def accumulation_view(depth: int = 8, num_bits: int = 8, per_channel: bool = False,
                      int32_accumulate: bool = True, requantize: bool = True, seed: int = 0,
                      batch: int = 64, model_profile: Any = None,
                      model_error_column: str | None = None) -> AccumulationView:
    """Run the synthetic chain with these settings (see :func:`qlab.numerics.accumulate.simulate_chain`)."""
    from qlab.numerics import accumulate

    _check_num_bits(num_bits)
    if not isinstance(depth, (int, np.integer)) or not 1 <= depth <= 64:
        raise ValueError(f"depth must be an integer from 1 to 64, got {depth!r}")
    settings = dict(depth=int(depth), num_bits=int(num_bits), per_channel=bool(per_channel),
                    int32_accumulate=bool(int32_accumulate), requantize=bool(requantize))
    chain = accumulate.simulate_chain(seed=seed, batch=batch, **settings)
    errors, name = chain_layer_error(chain)
    profile, profile_name = None, ""
    if model_profile is not None:
        names, values, profile_name = layer_error_profile(model_profile, model_error_column)
        profile = (names, values)
    return AccumulationView(chain, settings, errors, name, profile, profile_name)


def draw_error_accumulation(view: AccumulationView, fig: Figure | None = None) -> Figure:
    """Draw the chain's error layer by layer (and the real model's profile beside it)."""
    fig = new_figure((9.0, 4.2) if view.model_profile is None else (9.0, 6.4)) if fig is None else fig
    rows = 1 if view.model_profile is None else 2
    axes = _fresh_axes(fig, f"accumulation{rows}", rows, hspace=0.6,
                       bottom=0.12 if rows == 1 else 0.2)
    ax = axes[0]
    layers = np.arange(1, view.layer_error.size + 1)
    s = view.settings
    label = (f"int{s['num_bits']} {'per-channel' if s['per_channel'] else 'per-tensor'}, "
             f"{'int32 accumulate' if s['int32_accumulate'] else 'low-precision accumulate'}, "
             f"{'requantize' if s['requantize'] else 'no requantize'}")
    ax.plot(layers, view.layer_error, "o-", color="tab:blue", label=label)
    errors = view.layer_error
    # log only when the error spans decades; otherwise a log axis has one label or none
    log = (view.error_name != "sqnr_db" and bool(np.all(errors > 0))
           and float(errors.max() / errors.min()) > 30)
    _set_yscale(ax, "log" if log else "linear")
    ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel(view.error_name.replace("_", " "))
    ax.set_title(f"synthetic chain: error against float after each of {layers.size} layers",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    if view.model_profile is not None:
        _draw_layer_profile(axes[1], *view.model_profile, view.model_error_name)
    return fig


def _draw_layer_profile(ax, names: Sequence[str], values: np.ndarray, error_name: str) -> None:
    ax.bar(np.arange(len(values)), values, color="tab:purple")
    ax.set_xticks(np.arange(len(values)), names, rotation=60, ha="right", fontsize=6)
    ax.set_xlim(-0.7, len(values) - 0.3)
    ax.set_ylabel(error_name.replace("_", " "))
    ax.set_title("int8 TFLite model: per-layer error against float", fontsize=10)


def draw_layer_profile(table: Any, error_column: str | None = None,
                       fig: Figure | None = None) -> Figure:
    """Draw a real model's per-layer error profile on its own (see :func:`layer_error_profile`)."""
    names, values, column = layer_error_profile(table, error_column)
    fig = new_figure((9.0, 3.0)) if fig is None else fig
    (ax,) = _fresh_axes(fig, "layer_profile", 1, bottom=0.32)
    _draw_layer_profile(ax, names, values, column)
    return fig


def static_error_accumulation() -> Figure:
    """The error-accumulation picture at its default settings."""
    return draw_error_accumulation(accumulation_view())


# ------------------------------------------------------------- per-channel ranges


@dataclass(frozen=True)
class ChannelRangesView:
    """Per-channel weight ranges against the per-tensor range, and the error of both schemes."""

    layer_name: str
    channel_min: np.ndarray
    channel_max: np.ndarray
    tensor_min: float
    tensor_max: float
    per_tensor_mse: np.ndarray  #: each channel's MSE under the one per-tensor scale
    per_channel_mse: np.ndarray  #: each channel's MSE under its own scale
    per_tensor_sqnr_db: float
    per_channel_sqnr_db: float
    num_bits: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.channel_min.size)

    def __repr__(self) -> str:
        return (f"ChannelRangesView({self.layer_name or 'kernel'}: {self.channels} channels, "
                f"int{self.num_bits} SQNR per-tensor {self.per_tensor_sqnr_db:.1f} dB, "
                f"per-channel {self.per_channel_sqnr_db:.1f} dB)")


def _sqnr_db(x: np.ndarray, x_hat: np.ndarray) -> float:
    noise = float(np.mean((x - x_hat) ** 2))
    signal = float(np.mean(x ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(signal / noise)


def channel_ranges_view(kernel: np.ndarray, channel_axis: int = -1, num_bits: int = 8,
                        layer_name: str = "") -> ChannelRangesView:
    """Quantize ``kernel`` per tensor and per channel (symmetric, narrow_range, as TFLite does).

    Args:
        kernel: a weight tensor, e.g. a Conv2D kernel (kh, kw, in, out).
        channel_axis: the output-channel axis (-1 for Conv2D/Dense, 2 for
            DepthwiseConv2D with depth multiplier 1).
        num_bits: bits per weight, 2..16.
    """
    _check_num_bits(num_bits)
    w = np.asarray(kernel, dtype=np.float64)
    if w.ndim == 0 or w.size == 0:
        raise ValueError(f"kernel must be a non-empty array, got shape {w.shape}")
    if not -w.ndim <= channel_axis < w.ndim:
        raise ValueError(f"channel_axis {channel_axis} is out of range for kernel shape {w.shape}")
    w2 = np.moveaxis(w, channel_axis, -1).reshape(-1, w.shape[channel_axis])
    c_min, c_max = w2.min(axis=0), w2.max(axis=0)
    t_min, t_max = float(c_min.min()), float(c_max.max())
    # Symmetric: only max|w| matters. An all-zero channel gets a tiny (harmless) range.
    c_bound = np.maximum(np.maximum(np.abs(c_min), np.abs(c_max)), 1e-12)
    t_bound = float(c_bound.max())
    tensor_params = quant.choose_quant_params(-t_bound, t_bound, num_bits=num_bits,
                                              symmetric=True, narrow_range=True)
    channel_params = quant.choose_quant_params(-c_bound, c_bound, num_bits=num_bits,
                                               symmetric=True, narrow_range=True, axis=1)
    w_tensor = np.asarray(quant.dequantize(quant.quantize(w2, tensor_params), tensor_params))
    w_channel = np.asarray(quant.dequantize(quant.quantize(w2, channel_params), channel_params))
    return ChannelRangesView(
        layer_name, c_min, c_max, t_min, t_max,
        np.mean((w2 - w_tensor) ** 2, axis=0), np.mean((w2 - w_channel) ** 2, axis=0),
        _sqnr_db(w2, w_tensor), _sqnr_db(w2, w_channel), int(num_bits))


def draw_channel_ranges(view: ChannelRangesView, fig: Figure | None = None,
                        sort: bool = False) -> Figure:
    """Draw each channel's [min, max] against the per-tensor range, and both schemes' error."""
    fig = new_figure() if fig is None else fig
    ax, bx = _fresh_axes(fig, "channel_ranges", 2, hspace=0.4)
    order = np.argsort(view.channel_max - view.channel_min) if sort else np.arange(view.channels)
    c = np.arange(view.channels)
    ax.vlines(c, view.channel_min[order], view.channel_max[order], color="tab:blue", lw=2,
              label="per-channel [min, max]")
    # Symmetric quantization (TFLite's weights) spans +-max|w| whatever the sign balance.
    bound = max(abs(view.tensor_min), abs(view.tensor_max))
    ax.axhline(bound, color="tab:red", ls="--", lw=1, label="per-tensor range +-max|w|")
    ax.axhline(-bound, color="tab:red", ls="--", lw=1)
    ax.set_ylim(-1.08 * bound or -1.0, 1.08 * bound or 1.0)
    ax.set_xlim(-1, view.channels)
    ax.set_ylabel("weight value")
    ax.legend(fontsize=8, loc="lower right", ncols=2)
    ax.set_title(f"{view.layer_name or 'kernel'}: {view.channels} output channels", fontsize=10)
    ax.tick_params(labelbottom=False)  # same channels as the panel below
    errors = np.concatenate([view.per_tensor_mse, view.per_channel_mse])
    positive = errors[errors > 0]
    # a channel quantized exactly has zero error: draw it on the bottom edge of the log axis
    floor = float(positive.min()) / 3 if positive.size else 1e-12
    top = float(positive.max()) * 3 if positive.size else 1e-11
    _set_yscale(bx, "log")
    bx.set_ylim(floor, top)
    bx.set_xlim(-1, view.channels)
    bx.plot(c, np.maximum(view.per_tensor_mse[order], floor), "o", ms=3, color="tab:red",
            label=f"per-tensor (SQNR {view.per_tensor_sqnr_db:.1f} dB)")
    bx.plot(c, np.maximum(view.per_channel_mse[order], floor), "o", ms=3, color="tab:blue",
            label=f"per-channel (SQNR {view.per_channel_sqnr_db:.1f} dB)")
    bx.set_ylabel(f"int{view.num_bits} MSE per channel")
    bx.set_xlabel("output channel" + (" (sorted by range)" if sort else ""))
    bx.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    return fig


def static_per_channel_ranges() -> Figure:
    """The per-channel picture at its default settings (a synthetic depthwise kernel)."""
    return draw_channel_ranges(channel_ranges_view(synthetic_depthwise_kernel(), channel_axis=2,
                                                   layer_name="synthetic depthwise kernel"))


# ------------------------------------------------------------------ real models


@dataclass(frozen=True)
class LayerWeights:
    """A layer's kernel and the axis TFLite quantizes it along."""

    name: str
    kind: str
    kernel: np.ndarray
    channel_axis: int
    folded_batch_norm: str = ""  #: name of the BatchNormalization folded into ``kernel``, if any

    def __repr__(self) -> str:
        folded = f", folded {self.folded_batch_norm}" if self.folded_batch_norm else ""
        return (f"LayerWeights({self.name!r}, {self.kind}{folded}, shape {self.kernel.shape}, "
                f"axis {self.channel_axis})")


def weight_layers(model: Any) -> list[str]:
    """Names of the Conv2D, DepthwiseConv2D and Dense layers of a Keras model, in order."""
    return [layer.name for layer in model.layers if type(layer).__name__ in WEIGHT_LAYER_TYPES]


def following_batch_norm(model: Any, layer_name: str) -> Any:
    """The BatchNormalization layer that alone consumes ``layer_name``'s output, or None."""
    consumers = [node.outbound_layer for node in model.get_layer(layer_name)._outbound_nodes
                 if node.outbound_layer in model.layers]
    if len(consumers) == 1 and type(consumers[0]).__name__ == "BatchNormalization":
        return consumers[0]
    return None


def batch_norm_scale(bn_layer: Any) -> np.ndarray:
    """Per-channel factor ``gamma / sqrt(moving_variance + epsilon)`` a folded kernel is multiplied by."""
    weights = {w.name.split("/")[-1].split(":")[0]: np.asarray(w) for w in bn_layer.weights}
    gamma = weights.get("gamma", np.ones_like(weights["moving_variance"]))
    return gamma / np.sqrt(weights["moving_variance"] + bn_layer.epsilon)


def layer_weights(model: Any, layer_name: str, fold_batch_norm: bool = True) -> LayerWeights:
    """The kernel of ``layer_name`` with its output-channel axis, as TFLite will quantize it.

    A DepthwiseConv2D kernel (kh, kw, in, multiplier) is reshaped to
    (kh, kw, in * multiplier) with the channels last, as TFLite does. With
    ``fold_batch_norm`` a BatchNormalization right after the layer is folded
    into the kernel (the converter does the same), which is what makes
    MobileNet's depthwise channels so unequal.
    """
    names = weight_layers(model)
    if layer_name not in names:
        raise ValueError(f"layer_name {layer_name!r} is not a Conv2D/DepthwiseConv2D/Dense layer "
                         f"of the model; choose from {names}")
    layer = model.get_layer(layer_name)
    kind = type(layer).__name__
    kernel = np.asarray(layer.get_weights()[0])
    if kind == "DepthwiseConv2D":
        kh, kw, cin, mult = kernel.shape
        kernel = kernel.reshape(kh, kw, cin * mult)
    bn = following_batch_norm(model, layer_name) if fold_batch_norm else None
    if bn is not None:
        kernel = kernel * batch_norm_scale(bn)  # output channels are the last axis now
    return LayerWeights(layer_name, kind, kernel, kernel.ndim - 1, bn.name if bn is not None else "")


def layer_activations(model: Any, layer_name: str, x: np.ndarray) -> np.ndarray:
    """The output of ``layer_name`` on the input batch ``x`` (runs the model up to that layer)."""
    from qlab.lite.keras2 import keras

    layer = model.get_layer(layer_name)
    probe = keras.Model(model.inputs, layer.output)
    return np.asarray(probe(np.asarray(x, dtype=np.float32), training=False))


# Layers the converter fuses into the op before them: their output is the tensor it quantizes.
_FUSED_AFTER = ("BatchNormalization", "ReLU", "Activation")


def fused_output_layer(model: Any, layer_name: str) -> str:
    """The last layer of ``layer_name``'s fused chain (conv -> batch norm -> ReLU -> ...).

    TFLite folds batch norm and fuses the activation into the convolution, so
    the int8 tensor it quantizes is the output of the last layer in that chain.
    """
    name = layer_name
    while True:
        consumers = [node.outbound_layer for node in model.get_layer(name)._outbound_nodes
                     if node.outbound_layer in model.layers]
        if len(consumers) != 1 or type(consumers[0]).__name__ not in _FUSED_AFTER:
            return name
        name = consumers[0].name


def model_activations(model: Any, x: np.ndarray,
                      layer_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``{"<layer> activations": output}`` of each weight layer's fused chain on the batch ``x``.

    One forward pass for all layers; keys name the Conv2D/DepthwiseConv2D/Dense
    layer, values are the outputs TFLite would quantize (after batch norm and ReLU).
    """
    from qlab.lite.keras2 import keras

    names = list(layer_names) if layer_names is not None else weight_layers(model)
    outputs = [model.get_layer(fused_output_layer(model, n)).output for n in names]
    probe = keras.Model(model.inputs, outputs)
    results = probe(np.asarray(x, dtype=np.float32), training=False)
    results = results if isinstance(results, (list, tuple)) else [results]
    return {f"{n} activations": np.asarray(r) for n, r in zip(names, results)}


# ---------------------------------------------------------------------- output


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig`` (what a widget shows; they change when the picture does)."""
    buf = io.BytesIO()
    # Unhinted glyphs render about a quarter faster and look the same at this size;
    # zlib level 1 encodes in a third of the default's time for a slightly larger PNG.
    with matplotlib.rc_context({"text.hinting": "none"}):
        fig.savefig(buf, format="png", dpi=_DPI, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


__all__ = [
    "SYNTHETIC_SOURCES", "RANGE_METHODS", "WEIGHT_LAYER_TYPES",
    "synthetic_tensor", "synthetic_depthwise_kernel",
    "BucketView", "range_from_data", "bucket_view", "bucket_edges", "draw_bucket_explorer",
    "static_bucket_explorer",
    "AccumulationView", "chain_layer_error", "layer_error_profile", "model_error_profile",
    "accumulation_view", "draw_layer_profile",
    "draw_error_accumulation", "static_error_accumulation",
    "ChannelRangesView", "channel_ranges_view", "draw_channel_ranges", "static_per_channel_ranges",
    "LayerWeights", "weight_layers", "following_batch_norm", "batch_norm_scale", "layer_weights",
    "layer_activations", "fused_output_layer", "model_activations",
    "WorkbookFigure", "new_figure", "figure_png",
]


def channel_ranges_table(model: Any, num_bits: int = 8) -> "pd.DataFrame":
    """Per-tensor vs per-channel weight quantization for every weight layer of ``model``.

    One row per Conv2D/DepthwiseConv2D/Dense layer (batch norm folded in, as the
    converter does): its kind, channel count, how unequal its channels are
    (largest channel range / median channel range) and the weight SQNR of both
    schemes. Taught in ``05_per_channel``.
    """
    import pandas as pd

    rows = []
    for name in weight_layers(model):
        weights = layer_weights(model, name)
        view = channel_ranges_view(weights.kernel, weights.channel_axis, num_bits, name)
        bound = np.maximum(np.abs(view.channel_min), np.abs(view.channel_max))
        rows.append({"layer": name, "kind": weights.kind, "channels": view.channels,
                     "range spread": float(bound.max() / max(np.median(bound), 1e-12)),
                     "per-tensor SQNR dB": view.per_tensor_sqnr_db,
                     "per-channel SQNR dB": view.per_channel_sqnr_db})
    table = pd.DataFrame(rows).set_index("layer")
    table["gain dB"] = table["per-channel SQNR dB"] - table["per-tensor SQNR dB"]
    return table
