"""Error accumulation: the error against float, layer by layer, of a synthetic integer chain.

:func:`accumulation_view` runs :func:`qlab.numerics.accumulate.simulate_chain`;
:func:`draw_error_accumulation` draws it, with a real model beneath when one is
given: its per-layer debugger profile (``model_profile``) or its error by depth
(``depth_profile``, from :func:`qlab.ptq.depth_error.error_by_depth`). Taught in
``02_error_accumulation``; the live widget is :class:`qlab.widgets.ErrorAccumulation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from qlab.numerics.accumulate import simulate_chain
from qlab.plots.figure import fixed_title, new_figure, reuse_artists, set_yscale, stacked_axes
from qlab.plots.layer_errors import (depth_error_curves, draw_depth_curves, draw_profile_bars,
                                     layer_error_profile)

__all__ = ["AccumulationView", "accumulation_view", "draw_error_accumulation",
           "static_error_accumulation"]


@dataclass(frozen=True)
class AccumulationView:
    """The synthetic chain's per-layer error, and optionally a real model's profile."""

    chain: Any  #: :class:`qlab.numerics.accumulate.ChainResult`
    settings: dict[str, Any]
    layer_error: np.ndarray  #: the chain's per-layer error, the quantity drawn
    error_name: str
    model_profile: tuple[list[str], np.ndarray] | None = None
    model_error_name: str = ""
    depth_profile: Any = None  #: a :func:`qlab.ptq.depth_error.error_by_depth` table

    @property
    def has_model_panel(self) -> bool:
        """Whether a real model is drawn under the chain."""
        return self.model_profile is not None or self.depth_profile is not None

    def __repr__(self) -> str:
        s = self.settings
        return (f"AccumulationView(int{s['num_bits']}, depth {s['depth']}, "
                f"{'per-channel' if s['per_channel'] else 'per-tensor'}, "
                f"int32_accumulate={s['int32_accumulate']}, requantize={s['requantize']}: "
                f"{self.error_name} after the last layer {float(self.layer_error[-1]):.4g})")


def accumulation_view(depth: int = 8, num_bits: int = 8, per_channel: bool = False,
                      int32_accumulate: bool = True, requantize: bool = True, seed: int = 0,
                      batch: int = 64, model_profile: Any = None,
                      model_error_column: str | None = None,
                      depth_profile: Any = None) -> AccumulationView:
    """Run the synthetic chain with these settings (see :func:`qlab.numerics.accumulate.simulate_chain`).

    ``model_profile`` (the debugger's per-layer table) or ``depth_profile`` (a real
    model's error by depth) adds a real model under the chain; give one or neither.
    """
    if model_profile is not None and depth_profile is not None:
        raise ValueError("give model_profile (per-layer debugger table) or depth_profile "
                         "(error_by_depth table), not both")
    if depth_profile is not None:
        depth_error_curves(depth_profile)  # checks the table
    settings = dict(depth=depth, num_bits=num_bits, per_channel=per_channel,
                    int32_accumulate=int32_accumulate, requantize=requantize)
    chain = simulate_chain(seed=seed, batch=batch, **settings)  # checks every setting
    settings = {key: chain.settings[key] for key in settings}
    profile, profile_name = None, ""
    if model_profile is not None:
        names, values, profile_name = layer_error_profile(model_profile, model_error_column)
        profile = (names, values)
    return AccumulationView(chain, settings, chain.relative_error, "relative_error", profile,
                            profile_name, depth_profile)


@dataclass(frozen=True)
class _ChainArtists:
    """The chain panel's artists (and the model's panel, if any), made once per Figure."""

    chain_ax: Any
    errors: Any
    legend: Any
    model_ax: Any = None


def _build_chain(fig: Figure, rows: int) -> _ChainArtists:
    """Axes, empty line and legend; :func:`draw_error_accumulation` fills them."""
    axes = stacked_axes(fig, rows, hspace=0.6, bottom=0.12 if rows == 1 else 0.2)
    ax = axes[0]
    (errors,) = ax.plot([], [], "o-", color="tab:blue", label=" ")
    ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel(" ")
    fixed_title(ax, fontsize=10)
    legend = ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return _ChainArtists(ax, errors, legend, axes[1] if rows == 2 else None)


def draw_error_accumulation(view: AccumulationView, fig: Figure | None = None) -> Figure:
    """Draw the chain's error layer by layer (and the real model's profile beside it).

    Drawing into a ``fig`` that already shows the chain only updates its line, texts
    and limits (the live widget's path); the picture is the same as a fresh draw.
    """
    fig = new_figure((9.0, 6.4) if view.has_model_panel else (9.0, 4.2)) if fig is None else fig
    rows = 2 if view.has_model_panel else 1
    if rows == 2:  # only the static picture has the model's panel: it is always drawn afresh
        fig._qlab_kind = None
    a = reuse_artists(fig, f"accumulation{rows}", lambda f: _build_chain(f, rows))
    ax, errors = a.chain_ax, view.layer_error
    layers = np.arange(1, errors.size + 1)
    s = view.settings
    a.legend.texts[0].set_text(
        f"int{s['num_bits']} {'per-channel' if s['per_channel'] else 'per-tensor'}, "
        f"{'int32 accumulate' if s['int32_accumulate'] else 'low-precision accumulate'}, "
        f"{'requantize' if s['requantize'] else 'no requantize'}")
    a.errors.set_data(layers, errors)
    # log only when the error spans decades; otherwise a log axis has one label or none
    log = bool(np.all(errors > 0)) and float(errors.max() / errors.min()) > 30
    set_yscale(ax, "log" if log else "linear")
    ax.relim()
    ax.autoscale_view()
    ax.yaxis.label.set_text(view.error_name.replace("_", " "))
    ax.title.set_text(f"synthetic chain: error against float after each of {layers.size} layers")
    if a.model_ax is not None:
        if view.model_profile is not None:
            draw_profile_bars(a.model_ax, *view.model_profile, view.model_error_name)
        else:
            draw_depth_curves(a.model_ax, view.depth_profile)
    return fig


def static_error_accumulation(depth_profile: Any = None) -> Figure:
    """The error-accumulation picture at its default settings (the widget's first picture).

    Taught in ``02_error_accumulation``; ``08_compare_and_debug`` adds a real model's
    ``depth_profile``.
    """
    return draw_error_accumulation(accumulation_view(depth_profile=depth_profile))
