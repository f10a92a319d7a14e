"""Honest QAT activation ranges: what fine-tuning left, what the data needs, and how they meet.

TFMOT's ``MovingAverageQuantizer`` starts every activation range at ``[-6, 6]`` and
moves it towards each training batch's ``[min(batch_min, 0), max(batch_max, 0)]`` with
an exponential moving average, ``range <- 0.999 * range + 0.001 * batch_range``, with
no zero-debiasing. After ``n`` steps ``0.999 ** n`` of the start is still there: a
short fine-tune leaves most of ``[-6, 6]`` in place.

- :func:`qat_range_table`: every activation quantizer's range next to the float
  tensor's min/max on the same images, and how many int8 levels the difference wastes.
- :func:`calibrated_qat_model`: a QAT model whose ranges start at the data's min/max.
- :class:`RangeTrajectory`: a Keras callback recording the ranges after every step.
- :func:`ema_steps_to_within` / :func:`ema_width`: the EMA's arithmetic, in closed form.
The default start against the calibrated one, fine-tuned on a zoo model, is
:func:`qlab.workbook.studies.range_start.range_start_study`.

Taught in ``06_quantization_aware_training``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.zoo.keras2 import keras
from qlab.ptq.ranges import INPUT, activation_quantizers, check_images
from qlab.numerics.validate import check_int, check_num_bits

if TYPE_CHECKING:
    import pandas as pd

#: TFMOT's MovingAverageQuantizer EMA decay (quant_ops.MovingAvgQuantize).
TFMOT_EMA_DECAY = 0.999
#: A QAT range counts as matching the data when its width is within this share of the data's.
MATCH_TOLERANCE = 0.10


def _check_fraction(value: Any, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{argument} must be a number in (0, 1), got {value!r}")
    return float(value)


def _check_positive(value: Any, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number > 0, got {value!r}")
    return float(value)


def range_mismatch(qat_min: float, qat_max: float, data_min: float, data_max: float,
                   num_bits: int = 8) -> dict[str, float]:
    """How far a quantizer's ``[qat_min, qat_max]`` is from the data's ``[data_min, data_max]``.

    Returns ``width mismatch`` ((qat width - data width) / data width: +10.0 is a range
    11 times too wide), ``levels used`` (of the ``2 ** num_bits`` grid points, those
    inside the data's range), ``levels wasted %`` (the rest: never hit by a value) and
    ``data clipped %`` (the share of the data's range outside the quantizer's, clipped).
    """
    num_bits = check_num_bits(num_bits, high=8)
    qat_width, data_width = qat_max - qat_min, data_max - data_min
    if not qat_width > 0 or not data_width > 0:
        raise ValueError(f"ranges must have max > min, got qat [{qat_min}, {qat_max}] "
                         f"and data [{data_min}, {data_max}]")
    overlap = max(0.0, min(qat_max, data_max) - max(qat_min, data_min))
    levels = 2**num_bits
    used = min(levels, overlap / qat_width * (levels - 1) + 1)
    return {"width mismatch": (qat_width - data_width) / data_width, "levels used": used,
            "levels wasted %": 100 * (1 - used / levels),
            "data clipped %": 100 * (1 - overlap / data_width)}


def _current_range(quantizer: Any) -> tuple[float, float]:
    # activation quantizers are per-tensor; np.min/np.max also cover a 1-element vector
    return float(np.min(quantizer.min_var.numpy())), float(np.max(quantizer.max_var.numpy()))


def _check_same_layers(qat_model: Any, float_model: Any) -> None:
    names = {layer.name for layer in float_model.layers}
    missing = [q.tensor for q in activation_quantizers(qat_model) if q.tensor not in names | {INPUT}]
    if missing:
        raise ValueError(f"float_model {float_model.name!r} has no layer(s) {missing[:3]} that qat_model "
                         "quantizes; pass the float model qat_model was made from (Keras numbers "
                         "auto-named layers per session: keras.backend.clear_session() before "
                         "rebuilding each model gives both the same names)")


def qat_range_table(qat_model: Any, float_model: Any, x: np.ndarray,
                    tolerance: float = MATCH_TOLERANCE) -> pd.DataFrame:
    """Each activation quantizer's current range beside the float tensor's min/max on ``x``.

    The data range is :func:`qlab.ptq.ranges.activation_ranges` (``"minmax"``) of the
    float model, widened to contain 0 as TFMOT does. Note the EMA tracks each batch's
    min/max, so even a fully converged range sits a little inside the min/max over ``x``.
    Taught in ``06_quantization_aware_training``.

    Returns:
        One row per quantizer: ``quantizer``, ``kind``, ``tensor``, ``qat min``/``qat max``,
        ``data min``/``data max``, the columns of :func:`range_mismatch` and ``matches``
        (``|width mismatch| <= tolerance``).
    """
    import pandas as pd

    from qlab.ptq.ranges import activation_ranges

    tolerance = _check_positive(tolerance, "tolerance")
    x = check_images(float_model, x)
    _check_same_layers(qat_model, float_model)
    data = activation_ranges(float_model, x, "minmax", qat_model=qat_model).set_index(["quantizer", "kind"])
    rows = []
    for q in activation_quantizers(qat_model):
        lo, hi = _current_range(q)
        d_lo, d_hi = (float(data.loc[(q.layer, q.kind), c]) for c in ("range min", "range max"))
        mismatch = range_mismatch(lo, hi, d_lo, d_hi)
        rows.append({"quantizer": q.layer, "kind": q.kind, "tensor": q.tensor, "qat min": lo,
                     "qat max": hi, "data min": d_lo, "data max": d_hi, **mismatch,
                     "matches": abs(mismatch["width mismatch"]) <= tolerance})
    return pd.DataFrame(rows)


def mismatch_summary(table: pd.DataFrame) -> dict[str, Any]:
    """How many quantizers of a :func:`qat_range_table` match, the median ``|width mismatch|``, the worst."""
    worst = table.loc[table["width mismatch"].abs().idxmax()]
    return {"quantizers": len(table), "matching": int(table["matches"].sum()),
            "median |width mismatch|": float(table["width mismatch"].abs().median()),
            "worst width mismatch": float(worst["width mismatch"]), "worst quantizer": worst["quantizer"],
            "median levels wasted %": float(table["levels wasted %"].median())}


def calibrated_qat_model(float_model: Any, x_calib: np.ndarray, method: str = "minmax") -> Any:
    """``quantize_model(float_model)`` with every range set from the data, ready to fine-tune.

    Activation ranges are ``method``'s ranges of the float tensors on ``x_calib``
    (:func:`qlab.ptq.ranges.set_activation_ranges`), weight ranges the weights' own
    (:func:`qlab.ptq.ranges.set_weight_ranges`): fine-tuning starts from the data,
    not from ``[-6, 6]``. Taught in ``06_quantization_aware_training``.
    """
    from qlab.ptq.ranges import quantize_with_ranges

    return quantize_with_ranges(float_model, x_calib, method, num_bits=8).qat_model


def start_from_data(qat_model: Any, float_model: Any, x_calib: np.ndarray, method: str = "minmax",
                    num_bits: int = 8, seed: int = 0) -> Any:
    """Set every range of ``qat_model`` (made from ``float_model``, any TFMOT scheme) from ``x_calib``.

    :func:`calibrated_qat_model` for a model already built, e.g. with
    :func:`qlab.qat.quantize.quantize_whole_model_n_bit`: activation ranges are ``method``'s
    (:func:`qlab.ptq.ranges.activation_ranges`, ``num_bits`` for the MSE estimator, ``seed``
    for its sample), weight ranges the weights'. Returns ``qat_model``. Raises a RuntimeError
    if a range is left at TFMOT's initial one. The zoo's whole-model QAT variants start
    fine-tuning here (:func:`qlab.qat.training.load_or_fine_tune`).
    """
    from qlab.ptq.ranges import set_ranges_from_data

    _check_same_layers(qat_model, float_model)
    set_ranges_from_data(qat_model, float_model, x_calib, method, num_bits, seed=seed)
    return qat_model


def ema_width(steps: Any, start_width: float, target_width: float,
              ema_decay: float = TFMOT_EMA_DECAY) -> np.ndarray:
    """The range width after ``steps`` EMA updates towards a constant ``target_width``.

    Both ends follow ``end_n = target + decay ** n * (start - target)``, so the width does too.
    """
    ema_decay = _check_fraction(ema_decay, "ema_decay")
    steps = np.asarray(steps, dtype=np.float64)
    if np.any(steps < 0):
        raise ValueError(f"steps must be >= 0, got {steps.min()}")
    return target_width + ema_decay**steps * (start_width - target_width)


def ema_steps_to_within(start_width: float, target_width: float, tolerance: float = MATCH_TOLERANCE,
                        ema_decay: float = TFMOT_EMA_DECAY) -> int:
    """Steps until an EMA range starting at ``start_width`` is within ``tolerance`` of ``target_width``.

    Solves ``decay ** n * |start - target| <= tolerance * target`` for the smallest ``n``.
    For TFMOT's ``[-6, 6]`` start (width 12) and a ReLU output reaching 0.83, that is
    ln(0.1 * 0.83 / 11.17) / ln(0.999), about 4,900 steps. Taught in ``06_quantization_aware_training``.
    """
    start_width = _check_positive(start_width, "start_width")
    target_width = _check_positive(target_width, "target_width")
    tolerance, ema_decay = _check_positive(tolerance, "tolerance"), _check_fraction(ema_decay, "ema_decay")
    gap = abs(start_width - target_width)
    if gap <= tolerance * target_width:
        return 0
    return math.ceil(math.log(tolerance * target_width / gap) / math.log(ema_decay))


def _pick_quantizers(qat_model: Any, quantizers: int | Sequence[str]) -> list[Any]:
    """The activation quantizers named (QAT layer or float tensor name), or the first ``n``."""
    found = activation_quantizers(qat_model)
    if isinstance(quantizers, (int, np.integer)) and not isinstance(quantizers, bool):
        return found[:check_int(int(quantizers), "quantizers", 1, len(found))]
    if isinstance(quantizers, str) or not isinstance(quantizers, Sequence) or not quantizers:
        raise TypeError(f"quantizers must be a count or a non-empty list of names, got {quantizers!r}")
    by_name = {**{q.tensor: q for q in found}, **{q.layer: q for q in found}}
    unknown = [name for name in quantizers if name not in by_name]
    if unknown:
        raise ValueError(f"quantizers {unknown} are not activation quantizers of {qat_model.name!r}; "
                         f"valid: {', '.join(q.layer for q in found)} (or their tensors)")
    return [by_name[name] for name in quantizers]


class RangeTrajectory(keras.callbacks.Callback):
    """Records a few activation quantizers' ``[min, max]`` after every training step.

    Pass it to ``fit(callbacks=[...])`` (or :func:`qlab.qat.training.fine_tune`'s ``callbacks``).
    :meth:`table` returns one row per step per quantizer, plus the starting range
    at step 0, beside the data range each should track. Taught in
    ``06_quantization_aware_training``.

    Args:
        quantizers: how many activation quantizers to follow (the first ones), or
            their names (QAT layer, e.g. ``"quant_conv1"``, or float tensor, ``"conv1"``).
        data_ranges: the float data's ranges, a DataFrame with ``quantizer``, ``kind``,
            ``range min`` and ``range max`` (:func:`qlab.ptq.ranges.activation_ranges`
            or :func:`qat_range_table`'s ``data min``/``data max``); None leaves NaN.
    """

    def __init__(self, quantizers: int | Sequence[str] = 3, data_ranges: pd.DataFrame | None = None):
        super().__init__()
        if not isinstance(quantizers, (int, np.integer, Sequence)) or isinstance(quantizers, bool):
            raise TypeError(f"quantizers must be a count or a list of names, got {quantizers!r}")
        if data_ranges is not None and not {"quantizer", "kind"} <= set(getattr(data_ranges, "columns", [])):
            raise ValueError("data_ranges must be a DataFrame with quantizer and kind columns "
                             "(from qlab.ptq.ranges.activation_ranges or qat_range_table)")
        self.quantizers, self.data_ranges = quantizers, data_ranges
        self.rows: list[dict[str, Any]] = []
        self._picked: list[Any] = []
        self._step = 0

    def _data_range(self, quantizer: Any) -> tuple[float, float]:
        if self.data_ranges is None:
            return math.nan, math.nan
        table = self.data_ranges.set_index(["quantizer", "kind"])
        low, high = ("data min", "data max") if "data min" in table.columns else ("range min", "range max")
        row = table.loc[(quantizer.layer, quantizer.kind)]
        return float(row[low]), float(row[high])

    def _record(self) -> None:
        for q, (d_lo, d_hi) in self._picked:
            lo, hi = _current_range(q)
            self.rows.append({"step": self._step, "quantizer": q.layer, "tensor": q.tensor,
                              "min": lo, "max": hi, "data_min": d_lo, "data_max": d_hi})

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self._picked:  # a second fit() continues the same trajectory
            self._picked = [(q, self._data_range(q)) for q in _pick_quantizers(self.model, self.quantizers)]
            self._record()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._step += 1
        self._record()

    def table(self) -> pd.DataFrame:
        """``step``, ``quantizer``, ``tensor``, ``min``, ``max``, ``data_min``, ``data_max``."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["step", "quantizer", "tensor", "min", "max",
                                                "data_min", "data_max"])

    def __repr__(self) -> str:
        return f"RangeTrajectory({len(self._picked)} quantizers, {self._step} steps recorded)"


def ema_check(trajectory: pd.DataFrame, ema_decay: float = TFMOT_EMA_DECAY,
              tolerance: float = MATCH_TOLERANCE) -> pd.DataFrame:
    """A :class:`RangeTrajectory` of a ``[-6, 6]`` start against the EMA's closed form.

    Per quantizer: the measured width at the last step and the width :func:`ema_width`
    predicts from the start and the data width (min/max over the calibration images).
    The EMA really tracks each batch's range, on average a little narrower, so the
    target it saw is also solved from the measured width (``implied target width``).
    Quantizers that did not start from a range (the input's, at ``[0, 0]``) are left out.
    ``steps to within tolerance`` is :func:`ema_steps_to_within` for the data width,
    ``... (implied)`` for the implied target.
    """
    import pandas as pd

    rows = []
    for name, part in trajectory.groupby("quantizer", sort=False):
        part = part.sort_values("step")
        first, last = part.iloc[0], part.iloc[-1]
        start, data, steps = first["max"] - first["min"], last["data_max"] - last["data_min"], int(last["step"])
        if not start > 0:  # the input's AllValuesQuantizer starts at [0, 0] and is no moving average
            continue
        measured, left = last["max"] - last["min"], ema_decay**steps
        implied = (measured - left * start) / (1 - left) if steps else math.nan
        rows.append({"quantizer": name, "tensor": last["tensor"], "steps": steps, "start width": start,
                     "data width": data, "measured width": measured,
                     "predicted width": float(ema_width(steps, start, data, ema_decay)),
                     "implied target width": implied, "start left %": 100 * left,
                     "steps to within tolerance": ema_steps_to_within(start, data, tolerance, ema_decay),
                     "steps to within tolerance (implied)": ema_steps_to_within(
                         start, implied, tolerance, ema_decay) if implied > 0 else None})
    return pd.DataFrame(rows)
