"""The workbook's interactive widgets: move a control, watch quantization happen.

Each class is a thin set of ipywidgets controls around the pure functions of
:mod:`qlab.plots`: a control change calls :meth:`update`, which
recomputes the view, updates the artists of the widget's one Figure in place (the
axes, ticks and legends are built once) and shows it as a PNG in an
:class:`ipywidgets.Image`. Bad input typed into a box (a range min
above its max) shows a message in the widget instead of raising inside the
callback, and the last good picture stays.

Display a widget by ending a cell with it::

    explorer = qlab.widgets.BucketExplorer()
    explorer

The notebooks (``01_buckets``, ``02_error_accumulation``, ``05_per_channel``) show
``qlab.static_bucket_explorer()`` and the other static figures of :mod:`qlab.plots` first, so an executed notebook still carries
the picture without a running kernel. ``benchmarks/widget_update_times.py``
measures how long an update takes (the goal: every control under 50 ms at the
95th percentile, so that a slower laptop stays under 100 ms).
"""

from __future__ import annotations

import html
import time
from typing import Any, Mapping

import ipywidgets as W
import numpy as np

from qlab.zoo.introspect import layer_weights, model_activations, weight_layers
from qlab.numerics.accumulate import MAX_DEPTH
from qlab.numerics.per_channel import ChannelRangesView, channel_ranges_view
from qlab.numerics.synthetic import SYNTHETIC_SOURCES, synthetic_depthwise_kernel, synthetic_tensor
from qlab.plots.accumulation import AccumulationView, accumulation_view, draw_error_accumulation
from qlab.plots.buckets import BucketView, bucket_view, draw_bucket_explorer, range_from_data
from qlab.plots.channel_ranges import draw_channel_ranges
from qlab.plots.figure import figure_png, new_figure
from qlab.plots.layer_errors import (ERROR_COLUMNS, depth_error_curves, draw_depth_profile,
                                     draw_layer_profile, layer_error_profile)

__all__ = ["BucketExplorer", "ErrorAccumulation", "PerChannelRanges"]

_SLIDER_STYLE = {"description_width": "initial"}
#: How many computed views a widget remembers (they are small: one number per layer).
_VIEWS_KEPT = 256


class _FigureWidget:
    """What the three widgets share: one Figure, its PNG image, a message line."""

    def __init__(self, controls: list[W.Widget]) -> None:
        self.figure = new_figure(self._figsize())
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.message = W.HTML("")
        self.stats = W.HTML("")
        self.view: Any = None
        self.last_update_ms = float("nan")
        self.updates = 0
        self.controls = list(controls)
        self.widget = W.VBox([W.HBox(controls, layout=W.Layout(flex_flow="row wrap")),
                              self.message, self.image, self.stats])
        for control in controls:
            control.observe(self._on_change, names="value")

    def _figsize(self) -> tuple[float, float]:
        return (9.0, 6.4)

    def _compute(self) -> Any:  # pragma: no cover - each widget defines it
        raise NotImplementedError

    def _draw(self, view: Any) -> None:  # pragma: no cover - each widget defines it
        raise NotImplementedError

    def _describe(self, view: Any) -> str:
        return html.escape(repr(view))

    def _on_change(self, change: dict) -> None:
        self.update()

    def update(self) -> bool:
        """Recompute and redraw from the controls; on bad input show why and keep the picture.

        Returns True when the picture was redrawn.
        """
        start = time.perf_counter()
        try:
            view = self._compute()
        except (ValueError, TypeError) as exc:
            self.show_message(str(exc))
            return False
        self._draw(view)
        self.view = view
        self.image.value = figure_png(self.figure)
        self.stats.value = self._describe(view)
        self.show_message("")
        self.updates += 1
        self.last_update_ms = 1000.0 * (time.perf_counter() - start)
        return True

    def show_message(self, text: str) -> None:
        """Show ``text`` in red above the figure (empty text hides it)."""
        self.message.value = (f"<span style='color:#b00020'>&#9888; {html.escape(text)}</span>"
                              if text else "")

    def close(self) -> None:
        """Close the widget and its controls (the Figure is pyplot-free: nothing else to free)."""
        row = self.widget.children[0]
        for part in [*self.controls, self.message, self.image, self.stats, row, self.widget]:
            part.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class BucketExplorer(_FigureWidget):
    """Where floats land among ``2**num_bits`` buckets, and what the rounding and clipping cost.

    Taught in ``01_buckets``.

    Args:
        sources: extra named tensors to explore, e.g. ``{"conv1 weights": w}``;
            the synthetic distributions of :data:`qlab.numerics.synthetic.SYNTHETIC_SOURCES`
            are always offered.
        model: a tf_keras model; each Conv2D/DepthwiseConv2D/Dense kernel (batch
            norm folded in) is added as a source.
        x: a batch of model inputs; with ``model``, each of those layers'
            activations on ``x`` (after its fused batch norm and ReLU) is added too.
        source: the source shown first.
    """

    def __init__(self, sources: Mapping[str, np.ndarray] | None = None, model: Any = None,
                 x: np.ndarray | None = None, source: str | None = None, num_bits: int = 8,
                 window: tuple[float, float] = (2.0, 2.3)) -> None:
        self.sources: dict[str, np.ndarray] = {}
        for name, values in (sources or {}).items():
            self.sources[str(name)] = np.asarray(values, dtype=np.float32).ravel()
        if model is not None:
            for name in weight_layers(model):
                self.sources[f"{name} weights"] = layer_weights(model, name).kernel.ravel()
            if x is not None:
                for name, values in model_activations(model, x).items():
                    self.sources[name] = values.ravel()
        for name in SYNTHETIC_SOURCES:
            self.sources[name] = synthetic_tensor(name)
        source = source or next(iter(self.sources))
        if source not in self.sources:
            raise ValueError(f"source must be one of {list(self.sources)}, got {source!r}")
        self.source = W.Dropdown(options=list(self.sources), value=source, description="data")
        self.num_bits = W.IntSlider(value=num_bits, min=2, max=16, description="num_bits",
                                    continuous_update=False, style=_SLIDER_STYLE)
        self.range_method = W.Dropdown(
            options=[("from data: min/max", "minmax"), ("from data: 99.99th percentile", "percentile"),
                     ("from data: min MSE", "mse"), ("typed in", "manual")],
            value="minmax", description="range")
        self.range_min = W.FloatText(description="min", layout=W.Layout(width="190px"))
        self.range_max = W.FloatText(description="max", layout=W.Layout(width="190px"))
        self.symmetric = W.Checkbox(value=False, description="symmetric", indent=False)
        self.narrow_range = W.Checkbox(value=False, description="narrow_range", indent=False)
        self.window = W.FloatRangeSlider(value=window, min=-15.0, max=15.0, step=0.01,
                                         description="follow values in", readout_format=".2f",
                                         continuous_update=False, style=_SLIDER_STYLE)
        self._syncing = False
        self._ranges: dict[tuple[str, str, int | None], tuple[float, float]] = {}
        self._fit_window_slider()
        self._fill_range_boxes()
        super().__init__([self.source, self.num_bits, self.range_method, self.range_min,
                          self.range_max, self.symmetric, self.narrow_range, self.window])
        self.update()

    @property
    def data(self) -> np.ndarray:
        """The tensor being explored."""
        return self.sources[self.source.value]

    def _on_change(self, change: dict) -> None:
        if self._syncing:
            return
        owner = change["owner"]
        if owner in (self.range_min, self.range_max):
            self._set_quietly(self.range_method, "manual")  # typing a bound means "my range"
        elif owner is self.source:
            self._fit_window_slider()
        if owner is not self.range_min and owner is not self.range_max:
            self._fill_range_boxes()
        self.update()

    def _set_quietly(self, control: W.Widget, value: Any) -> None:
        self._syncing = True
        try:
            control.value = value
        finally:
            self._syncing = False

    def _fill_range_boxes(self) -> None:
        """Show the range the chosen calibration method picks (unless it is typed in)."""
        if self.range_method.value == "manual":
            return
        lo, hi = self._range_from_data(self.source.value, self.range_method.value,
                                       self.num_bits.value)
        # exact values: rounding them for display would clip the extreme values a hair
        self._set_quietly(self.range_min, lo)
        self._set_quietly(self.range_max, hi)

    def _range_from_data(self, source: str, method: str, num_bits: int) -> tuple[float, float]:
        """:func:`range_from_data`, remembered: a source's data never changes, and the
        min-MSE search quantizes it a hundred times."""
        key = (source, method, num_bits if method == "mse" else None)
        if key not in self._ranges:
            self._ranges[key] = range_from_data(self.sources[source], method, num_bits)
        return self._ranges[key]

    def _fit_window_slider(self) -> None:
        """Keep the follow-values window inside the data when the source changes."""
        x = self.data
        lo, hi = float(x.min()), float(x.max())
        span = hi - lo or 1.0
        w_lo, w_hi = self.window.value
        if not (lo <= w_lo <= w_hi <= hi) or w_hi - w_lo > span / 4:
            # a window 1/30 of the data wide, two standard deviations out: a busy region
            start = min(float(np.mean(x) + 2.0 * np.std(x)), hi - span / 30)
            w_lo, w_hi = start, start + span / 30
        self._syncing = True
        try:
            self.window.min, self.window.max = -1e9, 1e9  # widen first: min must stay <= max
            self.window.step = float(10 ** np.floor(np.log10(span / 1000)))
            self.window.min, self.window.max = lo, hi
            self.window.value = (w_lo, w_hi)
        finally:
            self._syncing = False

    def _compute(self) -> BucketView:
        return bucket_view(self.data, num_bits=self.num_bits.value, range_min=self.range_min.value,
                              range_max=self.range_max.value, symmetric=self.symmetric.value,
                              narrow_range=self.narrow_range.value, window=self.window.value,
                              source=self.source.value)

    def _draw(self, view: BucketView) -> None:
        draw_bucket_explorer(view, self.figure, show_numbers=False)

    def _describe(self, view: BucketView) -> str:
        rows = "".join(f"<td style='padding:0 8px'>{html.escape(k)}<br><b>{v:.4g}</b></td>"
                       for k, v in view.summary().items())
        p = view.params
        scheme = (f"int{p.num_bits} {'symmetric' if p.symmetric else 'asymmetric'}"
                  f"{', narrow_range' if p.narrow_range else ''}")
        return f"<b>{scheme}</b><table><tr>{rows}</tr></table>"


class ErrorAccumulation(_FigureWidget):
    """The error against float, layer by layer, of the synthetic int8 chain (and a real model).

    Taught in ``02_error_accumulation``; used again in ``08_compare_and_debug`` with a
    real model's ``depth_profile``.

    Args:
        model_profile: optional per-layer error table of an int8 TFLite model
            (the DataFrame of :func:`qlab.ptq.debug.layer_error_table`, or a
            ``{layer: error}`` dict), drawn under the chain.
        model_error_column: which of :data:`qlab.plots.layer_errors.ERROR_COLUMNS` to draw.
        depth_profile: instead of ``model_profile``, a real model's error by depth
            (the DataFrame of :func:`qlab.ptq.depth_error.error_by_depth`), drawn under
            the chain as relative RMSE, the chain's own measure.
    """

    def __init__(self, model_profile: Any = None, model_error_column: str | None = None,
                 depth: int = 8, num_bits: int = 8, depth_profile: Any = None) -> None:
        if model_profile is not None and depth_profile is not None:
            raise ValueError("give model_profile (per-layer debugger table) or depth_profile "
                             "(error_by_depth table), not both")
        if depth_profile is not None:
            depth_error_curves(depth_profile)  # a wrong table fails here, not in a callback
        self.model_profile = model_profile
        self.depth_profile = depth_profile
        self.model_error_column = model_error_column
        self.depth = W.IntSlider(value=depth, min=1, max=MAX_DEPTH, description="depth",
                                 continuous_update=False)
        self.num_bits = W.IntSlider(value=num_bits, min=2, max=16, description="num_bits",
                                    continuous_update=False, style=_SLIDER_STYLE)
        self.per_channel = W.ToggleButtons(options=[("per-tensor", False), ("per-channel", True)],
                                           value=False)
        self.int32_accumulate = W.Checkbox(value=True, description="int32 accumulate", indent=False)
        self.requantize = W.Checkbox(value=True, description="requantize", indent=False)
        self._views: dict[tuple, AccumulationView] = {}
        controls = [self.depth, self.num_bits, self.per_channel, self.int32_accumulate,
                    self.requantize]
        self.profile_column: W.Dropdown | None = None
        if model_profile is not None and hasattr(model_profile, "columns"):
            _, _, default = layer_error_profile(model_profile, model_error_column)
            self.profile_column = W.Dropdown(options=list(ERROR_COLUMNS), value=default,
                                             description="model error")
            controls.append(self.profile_column)
        super().__init__(controls)
        # The model's profile does not depend on the chain's controls: its own picture,
        # redrawn only when its column changes, keeps chain updates quick.
        self.profile: tuple[list[str], np.ndarray, str] | None = None
        self.profile_figure = new_figure((9.0, 3.0))
        self.profile_image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        if model_profile is not None or depth_profile is not None:
            self.widget.children = (*self.widget.children[:3], self.profile_image,
                                    *self.widget.children[3:])
            self.update_profile()
        self.update()

    def _on_change(self, change: dict) -> None:
        if change["owner"] is self.profile_column:
            self.update_profile()
        else:
            self.update()

    def update_profile(self) -> bool:
        """Redraw the real model's per-layer error profile; on bad input show why."""
        if self.depth_profile is not None:
            draw_depth_profile(self.depth_profile, self.profile_figure)
            self.profile_image.value = figure_png(self.profile_figure)
            return True
        column = self.profile_column.value if self.profile_column is not None else self.model_error_column
        try:
            self.profile = layer_error_profile(self.model_profile, column)
        except (ValueError, TypeError) as exc:
            self.show_message(str(exc))
            return False
        draw_layer_profile(self.model_profile, column, self.profile_figure)
        self.profile_image.value = figure_png(self.profile_figure)
        self.show_message("")
        return True

    @classmethod
    def for_model(cls, model: Any, x: np.ndarray, num_samples: int = 100,
                  **kwargs: Any) -> "ErrorAccumulation":
        """The widget with ``model``'s int8 TFLite per-layer error profile (converts the model)."""
        from qlab.ptq.debug import layer_error_table

        return cls(model_profile=layer_error_table(model, x, num_samples), **kwargs)

    @classmethod
    def for_model_by_depth(cls, model: Any, x: np.ndarray, num_samples: int = 100,
                           **kwargs: Any) -> "ErrorAccumulation":
        """The widget with ``model``'s int8 (per-channel) error by depth and the debugger's beside it."""
        from qlab.conversion.converter import convert
        from qlab.ptq.debug import layer_error_table
        from qlab.ptq.depth_error import error_by_depth

        x = x[:num_samples]
        errors = layer_error_table(model, x, num_samples)
        model_bytes = convert(model, "int8_per_channel", x, num_samples)
        return cls(depth_profile=error_by_depth(model, model_bytes, x, debugger_errors=errors),
                   **kwargs)

    def _figsize(self) -> tuple[float, float]:
        return (9.0, 4.2)

    def _compute(self) -> AccumulationView:
        settings = dict(depth=self.depth.value, num_bits=self.num_bits.value,
                        per_channel=self.per_channel.value,
                        int32_accumulate=self.int32_accumulate.value,
                        requantize=self.requantize.value)
        # the chain is seeded: the same settings give the same view, remembered for a slider
        # moved back and forth (up to 64 layers of integer arithmetic each time otherwise)
        key = tuple(settings.values())
        if key not in self._views:
            if len(self._views) >= _VIEWS_KEPT:
                self._views.clear()
            self._views[key] = accumulation_view(**settings)
        return self._views[key]

    def _draw(self, view: AccumulationView) -> None:
        draw_error_accumulation(view, self.figure)


class PerChannelRanges(_FigureWidget):
    """Each output channel's weight range against the one per-tensor range, and both errors.

    Taught in ``05_per_channel``.

    Args:
        model: a tf_keras model; its Conv2D/DepthwiseConv2D/Dense layers are
            offered (the first depthwise one is shown first).
        kernels: extra ``{name: (kernel, channel_axis)}`` to offer.
        Without either, a synthetic MobileNet-like depthwise kernel is shown.
    """

    def __init__(self, model: Any = None,
                 kernels: Mapping[str, tuple[np.ndarray, int]] | None = None,
                 layer: str | None = None, num_bits: int = 8) -> None:
        self.kernels: dict[str, tuple[np.ndarray, int]] = {}
        self._titles: dict[str, str] = {}
        first_depthwise = None
        if model is not None:
            for name in weight_layers(model):
                lw = layer_weights(model, name)  # batch norm folded, as the converter does
                self.kernels[name] = (lw.kernel, lw.channel_axis)
                self._titles[name] = (f"{name} ({lw.kind}, {lw.folded_batch_norm} folded in)"
                                      if lw.folded_batch_norm else f"{name} ({lw.kind})")
                if first_depthwise is None and lw.kind == "DepthwiseConv2D":
                    first_depthwise = name
        for name, (kernel, axis) in (kernels or {}).items():
            self.kernels[str(name)] = (np.asarray(kernel), int(axis))
        if not self.kernels:
            self.kernels["synthetic depthwise kernel"] = (synthetic_depthwise_kernel(), 2)
            self.kernels["synthetic depthwise kernel, 128 channels"] = (
                synthetic_depthwise_kernel(128, seed=1), 2)
        layer = layer or first_depthwise or next(iter(self.kernels))
        if layer not in self.kernels:
            raise ValueError(f"layer must be one of {list(self.kernels)}, got {layer!r}")
        self.layer = W.Dropdown(options=list(self.kernels), value=layer, description="layer")
        self.num_bits = W.IntSlider(value=num_bits, min=2, max=16, description="num_bits",
                                    continuous_update=False, style=_SLIDER_STYLE)
        self.sort = W.Checkbox(value=False, description="sort channels by range", indent=False)
        super().__init__([self.layer, self.num_bits, self.sort])
        self.update()

    def _compute(self) -> ChannelRangesView:
        kernel, axis = self.kernels[self.layer.value]
        return channel_ranges_view(kernel, axis, num_bits=self.num_bits.value,
                                      layer_name=self._titles.get(self.layer.value,
                                                                  self.layer.value))

    def _draw(self, view: ChannelRangesView) -> None:
        draw_channel_ranges(view, self.figure, sort=self.sort.value)
