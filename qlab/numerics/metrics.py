"""How much did quantization cost? Error metrics and bucket occupancy.

* :func:`mse`, :func:`max_abs_error` - the error itself;
* :func:`sqnr_db` - signal-to-quantization-noise ratio, ``10 log10(signal / noise)``;
  each extra bit adds about 6 dB;
* :func:`bucket_occupancy` - how many of the ``2**num_bits`` levels a tensor
  actually uses (a badly chosen range leaves most of them empty);
* :func:`error_report` - all of the above for one tensor and one
  :class:`~qlab.numerics.quant.QuantParams`, ready to display (the bucket explorer shows it);
* :func:`top1_agreement`, :func:`output_sqnr_db`, :func:`softmax_kl` - how far a quantized
  model's scores moved from the float32 model's on the same images, finer than accuracy;
* :func:`paired_accuracy_difference` - the accuracy change with a paired bootstrap interval
  and McNemar's exact test, so "-0.02 points" can be told apart from noise;
* :func:`fine_metrics` - all of those for one model against its float32 reference.

The notebook ``01_buckets`` teaches the tensor metrics; ``08_compare_and_debug`` the model metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qlab.numerics.validate import finite_array
from qlab.numerics.quant import QuantParams, dequantize, quantize

__all__ = ["ROUNDING_NOISE", "mse", "max_abs_error", "sqnr_db", "bucket_occupancy", "error_report", "QuantErrorReport",
           "describe_buckets", "top1_agreement", "output_sqnr_db", "softmax_kl", "AccuracyDifference",
           "paired_accuracy_difference", "gain_columns", "mcnemar_exact_p", "fine_metrics"]


#: 1/sqrt(12): the RMS error of rounding to a uniform grid with step 1, the floor of any
#: quantization error measured in steps (``rmse/scale`` of TFLite's debugger).
ROUNDING_NOISE = float(1 / np.sqrt(12))


def _pair(x: Any, y: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two finite float64 arrays of the same shape."""
    a = finite_array(x, names[0], np.float64)
    b = finite_array(y, names[1], np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def mse(x: Any, y: Any) -> float:
    """Mean squared difference between ``x`` and ``y`` (computed in float64)."""
    a, b = _pair(x, y, ("x", "y"))
    return float(np.mean((a - b) ** 2))


def max_abs_error(x: Any, y: Any) -> float:
    """Largest absolute difference between ``x`` and ``y``."""
    a, b = _pair(x, y, ("x", "y"))
    return float(np.max(np.abs(a - b)))


def sqnr_db(x: Any, x_hat: Any) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10 log10(sum(x**2) / sum((x - x_hat)**2))``.

    ``inf`` when ``x_hat`` equals ``x`` exactly; ``-inf`` when ``x`` is all zeros
    but ``x_hat`` is not.
    """
    a, b = _pair(x, x_hat, ("x", "x_hat"))
    signal, noise = float(np.sum(a**2)), float(np.sum((a - b) ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def bucket_occupancy(q_or_x: Any, params: QuantParams) -> tuple[int, np.ndarray]:
    """How many of the levels of ``params`` a tensor uses, and how often each one.

    Args:
        q_or_x: integer levels (from :func:`qlab.quantize`) or a float tensor,
            which is quantized with ``params`` first.
        params: the quantization parameters.

    Returns:
        ``(levels_used, counts)`` where ``counts[i]`` is how many values fell on
        level ``params.qmin + i`` (``params.levels`` entries, all channels together).
    """
    if not isinstance(params, QuantParams):
        raise TypeError(f"params must be a QuantParams (see choose_quant_params), got {type(params).__name__}")
    values = np.asarray(q_or_x)
    if values.dtype != bool and np.issubdtype(values.dtype, np.integer):
        if values.size == 0:
            raise ValueError("q_or_x is empty; it needs at least one value")
        if values.min() < params.qmin or values.max() > params.qmax:
            raise ValueError(
                f"q_or_x has levels in [{values.min()}, {values.max()}], outside [{params.qmin}, {params.qmax}]"
            )
        levels = values
    else:
        levels = quantize(finite_array(values, "q_or_x"), params)
    counts = np.bincount((levels.astype(np.int64) - params.qmin).reshape(-1), minlength=params.levels)
    return int(np.count_nonzero(counts)), counts


@dataclass(frozen=True)
class QuantErrorReport:
    """What quantizing one tensor with one set of :class:`QuantParams` cost.

    Returned by :func:`error_report`. Taught in ``01_buckets``.
    """

    mse: float
    max_abs_error: float
    sqnr_db: float
    buckets_used: int
    levels: int
    clipped_fraction: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __repr__(self) -> str:
        return (
            f"QuantErrorReport(mse={self.mse:.4g}, max_abs_error={self.max_abs_error:.4g}, "
            f"sqnr_db={self.sqnr_db:.2f}, buckets_used={self.buckets_used}/{self.levels}, "
            f"clipped_fraction={self.clipped_fraction:.3%})"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("MSE", f"{self.mse:.4g}"),
            ("max |error|", f"{self.max_abs_error:.4g}"),
            ("SQNR", f"{self.sqnr_db:.2f} dB"),
            ("buckets used", f"{self.buckets_used} of {self.levels} ({self.buckets_used / self.levels:.1%})"),
            ("clipped", f"{self.clipped_fraction:.3%} of values"),
        ]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return f"<table><caption>Quantization error</caption>{body}</table>"


def error_report(x: Any, params: QuantParams) -> QuantErrorReport:
    """Quantize ``x`` with ``params`` and measure everything the bucket explorer shows.

    ``clipped_fraction`` is the share of values outside the representable range
    ``[params.min, params.max]`` (they all land on the end levels). Taught in
    ``01_buckets``.
    """
    if not isinstance(params, QuantParams):
        raise TypeError(f"params must be a QuantParams (see choose_quant_params), got {type(params).__name__}")
    values = finite_array(x, "x")
    q = quantize(values, params)
    restored = dequantize(q, params)
    used, _ = bucket_occupancy(q, params)
    lo, hi = params.min, params.max
    if params.axis is not None:
        shape = [1] * values.ndim
        shape[params.axis] = -1
        lo, hi = lo.reshape(shape), hi.reshape(shape)
    clipped = float(np.mean((values < lo) | (values > hi)))
    return QuantErrorReport(
        mse=mse(values, restored),
        max_abs_error=max_abs_error(values, restored),
        sqnr_db=sqnr_db(values, restored),
        buckets_used=used,
        levels=params.levels,
        clipped_fraction=clipped,
    )


def describe_buckets(values: Any, params: QuantParams) -> "pandas.DataFrame":
    """One row per value: its integer code, the bucket it falls into, and what comes back.

    Columns: ``value``, ``q`` (the integer), ``bucket_low``/``bucket_high`` (the
    floats that round to ``q``; clipped values show the edge bucket),
    ``dequantized`` and ``error``. Per-tensor ``params`` only. Taught in ``01_buckets``.
    """
    import pandas as pd

    if params.per_axis:
        raise ValueError("describe_buckets needs per-tensor params (axis=None), got per-axis params")
    x = finite_array(values, "values", np.float32).reshape(-1)
    q = quantize(x, params)
    centre = dequantize(q, params)
    half = np.float32(params.scale) / 2
    return pd.DataFrame({"value": x, "q": q.astype(int), "bucket_low": centre - half,
                         "bucket_high": centre + half, "dequantized": centre,
                         "error": centre - x})


# --- Model-level metrics: a quantized model's scores against the float32 model's on the same images ---


def _score_pair(reference_scores: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two finite float64 (images, classes) arrays of the same shape."""
    ref = finite_array(reference_scores, "reference_scores", np.float64)
    out = finite_array(scores, "scores", np.float64)
    if ref.ndim != 2:
        raise ValueError(f"reference_scores must be 2-D (images, classes), got shape {ref.shape}")
    if ref.shape != out.shape:
        raise ValueError(f"reference_scores and scores must have the same shape, got {ref.shape} and {out.shape}")
    return ref, out


def top1_agreement(reference_scores: Any, scores: Any) -> float:
    """Share of images (rows) whose top class is the same in ``scores`` as in ``reference_scores``.

    Labels play no part: 1.0 means the quantized model picks what the float model picks on
    every image, right or wrong. Taught in ``08_compare_and_debug``.
    """
    ref, out = _score_pair(reference_scores, scores)
    return float(np.mean(ref.argmax(axis=1) == out.argmax(axis=1)))


def output_sqnr_db(reference_scores: Any, scores: Any) -> float:
    """SQNR of the model's output scores against the float32 model's, in dB (``inf`` when identical).

    Taught in ``08_compare_and_debug``.
    """
    ref, out = _score_pair(reference_scores, scores)
    return sqnr_db(ref, out)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax via log-sum-exp, so large logits do not overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_kl(reference_scores: Any, scores: Any) -> float:
    """Mean over images of ``KL(softmax(reference) || softmax(scores))`` in nats; inputs are logits.

    0 when the two agree exactly; grows as the quantized model's confidence shifts, even
    while its top-1 answer stays the same. Taught in ``08_compare_and_debug``.
    """
    ref, out = _score_pair(reference_scores, scores)
    log_p, log_q = _log_softmax(ref), _log_softmax(out)
    per_image = np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
    # KL is never negative; rounding can leave -1e-17 on near-identical rows
    return float(np.mean(np.maximum(per_image, 0.0)))


@dataclass(frozen=True)
class AccuracyDifference:
    """Accuracy of a model minus its reference's on the same images, with a paired interval.

    ``difference``, ``low`` and ``high`` are fractions (0.001 = 0.1 points); ``mcnemar_p`` is the
    exact two-sided McNemar p-value. Returned by :func:`paired_accuracy_difference`.
    Taught in ``08_compare_and_debug``.
    """

    difference: float
    low: float
    high: float
    mcnemar_p: float
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0 (the change is larger than resampling noise)."""
        return self.low > 0.0 or self.high < 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __repr__(self) -> str:
        return (f"{100 * self.difference:+.2f} points [{100 * self.low:+.2f}, {100 * self.high:+.2f}] "
                f"({self.confidence:.0%}), McNemar p={self.mcnemar_p:.2g}")


def _correct_flags(value: Any, argument: str) -> np.ndarray:
    """A non-empty 1-D boolean array (bools or 0/1 integers), or raise naming ``argument``."""
    flags = np.asarray(value)
    if flags.ndim != 1 or flags.size == 0:
        raise ValueError(f"{argument} must be a non-empty 1-D array of per-image True/False, got shape {flags.shape}")
    if flags.dtype != bool:
        if not np.issubdtype(flags.dtype, np.number) or not np.isin(flags, (0, 1)).all():
            raise ValueError(f"{argument} must hold True/False (or 0/1) per image, got dtype {flags.dtype}")
        flags = flags.astype(bool)
    return flags


def gain_columns(scores: Any, baseline_scores: Any, labels: Any, name: str, low: str = "gain low",
                 high: str = "gain high") -> dict[str, float]:
    """Top-1 accuracy of ``scores`` minus that of ``baseline_scores``, in points, as table columns.

    ``{name: difference, low: interval low, high: interval high}``, the 95% paired bootstrap
    interval of :func:`paired_accuracy_difference` on the same images and ``labels``.
    """
    labels = np.asarray(labels)
    d = paired_accuracy_difference(np.asarray(baseline_scores).argmax(1) == labels,
                                   np.asarray(scores).argmax(1) == labels)
    return {name: 100 * d.difference, low: 100 * d.low, high: 100 * d.high}


def mcnemar_exact_p(reference_only: int, candidate_only: int) -> float:
    """Exact two-sided McNemar p-value from the two discordant counts.

    Under "both models are equally accurate" each of the ``b + c`` images that only one model
    gets right is a fair coin flip, so ``p = min(1, 2 P(Binomial(b + c, 1/2) <= min(b, c)))``.
    Exact integer arithmetic, no scipy. Taught in ``08_compare_and_debug``.
    """
    b, c = int(reference_only), int(candidate_only)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    term, tail = 1, 1  # C(n, 0)
    for k in range(min(b, c)):
        term = term * (n - k) // (k + 1)
        tail += term
    return min(1.0, 2 * tail / 2**n)


def paired_accuracy_difference(reference_correct: Any, correct: Any, confidence: float = 0.95,
                               resamples: int = 2000, seed: int = 0) -> AccuracyDifference:
    """``mean(correct) - mean(reference_correct)`` on the same images, with a paired bootstrap interval.

    Resampling images with replacement only changes how many fall in each of the four
    (reference right?, model right?) cells, so each resample is one multinomial draw of those
    counts: exact, and cheap for 10,000 images x 2,000 resamples. The interval is the
    percentile interval; ``mcnemar_p`` is :func:`mcnemar_exact_p` of the discordant counts.
    Taught in ``08_compare_and_debug``.
    """
    ref = _correct_flags(reference_correct, "reference_correct")
    out = _correct_flags(correct, "correct")
    if ref.shape != out.shape:
        raise ValueError(f"reference_correct and correct must cover the same images, got {ref.size} and {out.size}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95, got {confidence!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 100:
        raise ValueError(f"resamples must be an integer >= 100, got {resamples!r}")
    n = ref.size
    reference_only, candidate_only = int(np.sum(ref & ~out)), int(np.sum(~ref & out))
    cells = np.array([np.sum(ref & out), reference_only, candidate_only, np.sum(~ref & ~out)]) / n
    counts = np.random.default_rng(seed).multinomial(n, cells, size=int(resamples))
    differences = (counts[:, 2] - counts[:, 1]) / n
    alpha = 1.0 - confidence
    low, high = np.quantile(differences, [alpha / 2, 1 - alpha / 2])
    return AccuracyDifference(difference=(candidate_only - reference_only) / n, low=float(low), high=float(high),
                              mcnemar_p=mcnemar_exact_p(reference_only, candidate_only),
                              confidence=float(confidence))


def _labels_for(labels: Any, scores: np.ndarray) -> np.ndarray:
    """Integer class labels, one per row of ``scores`` and each a valid column index."""
    array = np.asarray(labels)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {array.dtype}")
    if array.shape != (scores.shape[0],):
        raise ValueError(f"labels must be 1-D with one label per image ({scores.shape[0]}), got shape {array.shape}")
    if array.min() < 0 or array.max() >= scores.shape[1]:
        raise ValueError(f"labels must be in [0, {scores.shape[1] - 1}] (the score columns), "
                         f"got values in [{array.min()}, {array.max()}]")
    return array


def fine_metrics(reference_scores: Any, scores: Any, labels: Any) -> dict[str, float]:
    """Everything finer than top-1 accuracy for one model against the float32 model on the same images.

    Keys: ``accuracy``, ``top1_agreement``, ``output_sqnr_db``, ``kl_divergence`` (nats),
    ``accuracy_delta``, ``delta_low``, ``delta_high`` (fractions; 95% paired bootstrap) and
    ``mcnemar_p``. Taught in ``08_compare_and_debug``.
    """
    ref, out = _score_pair(reference_scores, scores)
    truth = _labels_for(labels, ref)
    correct = out.argmax(axis=1) == truth
    delta = paired_accuracy_difference(ref.argmax(axis=1) == truth, correct)
    return {"accuracy": float(correct.mean()), "top1_agreement": top1_agreement(ref, out),
            "output_sqnr_db": output_sqnr_db(ref, out), "kl_divergence": softmax_kl(ref, out),
            "accuracy_delta": delta.difference, "delta_low": delta.low, "delta_high": delta.high,
            "mcnemar_p": delta.mcnemar_p}
