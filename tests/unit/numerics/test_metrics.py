"""Error metrics and bucket occupancy on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qlab.numerics.metrics import QuantErrorReport, bucket_occupancy, error_report, max_abs_error, mse, sqnr_db
from qlab.numerics.quant import choose_quant_params, quantize

F32 = np.float32


def test_mse_max_abs_and_sqnr_hand_cases():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.5, 3.0, 3.0])
    assert mse(x, y) == pytest.approx((0.25 + 1.0) / 4)
    assert max_abs_error(x, y) == 1.0
    assert sqnr_db(x, y) == pytest.approx(10 * math.log10(30 / 1.25))
    assert sqnr_db(x, x) == math.inf
    assert sqnr_db(np.zeros(2), np.ones(2)) == -math.inf


def test_each_extra_bit_adds_about_6_db():
    x = np.random.default_rng(0).uniform(-1, 1, 100_000).astype(F32)
    gains = []
    for bits in (4, 5, 6, 7, 8):
        params = choose_quant_params(-1.0, 1.0, num_bits=bits)
        gains.append(error_report(x, params).sqnr_db)
    assert np.diff(gains) == pytest.approx([6.02] * 4, abs=0.3)


def test_bucket_occupancy_counts_levels():
    params = choose_quant_params(-1.0, 1.0, num_bits=2, signed=False)  # 4 levels, scale 2/3
    used, counts = bucket_occupancy(np.array([0.0, 0.1, 0.9, 1.0], F32), params)
    q = quantize(np.array([0.0, 0.1, 0.9, 1.0], F32), params)
    assert used == len(set(q.tolist())) == 2 and counts.sum() == 4 and counts.size == 4
    used_q, counts_q = bucket_occupancy(q, params)
    assert used_q == used and counts_q.tolist() == counts.tolist()
    # a tensor that only spans 1% of an int8 range uses a handful of 256 levels
    narrow = np.linspace(-0.01, 0.01, 1000, dtype=F32)
    used, counts = bucket_occupancy(narrow, choose_quant_params(-1.0, 1.0))
    assert used == 3 and counts.size == 256
    with pytest.raises(ValueError, match="outside"):
        bucket_occupancy(np.array([5]), params)


def test_error_report_fields_and_display():
    params = choose_quant_params(-1.0, 1.0)
    x = np.array([-2.0, -0.5, 0.0, 0.25, 0.5, 3.0], F32)
    report = error_report(x, params)
    assert isinstance(report, QuantErrorReport)
    assert report.clipped_fraction == pytest.approx(2 / 6)
    assert report.max_abs_error == pytest.approx(3.0 - float(params.max))
    assert report.levels == 256 and report.buckets_used == 6 - 0  # all six values on distinct levels
    assert set(report.as_dict()) == {"mse", "max_abs_error", "sqnr_db", "buckets_used", "levels", "clipped_fraction"}
    assert "buckets_used=6/256" in repr(report) and "<table>" in report._repr_html_()


def test_error_report_per_axis():
    params = choose_quant_params(np.array([-1.0, -10.0]), np.array([1.0, 10.0]), axis=-1)
    x = np.array([[0.5, 5.0], [2.0, 5.0]], F32)  # only 2.0 is outside its channel's range
    assert error_report(x, params).clipped_fraction == pytest.approx(0.25)


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        mse(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="x_hat contains"):
        sqnr_db(np.zeros(2), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="x is empty"):
        max_abs_error([], [])
    with pytest.raises(TypeError, match="params"):
        error_report(np.zeros(2), None)


def test_describe_buckets_matches_hand_computed_int8_buckets():
    from qlab.numerics.metrics import describe_buckets

    params = choose_quant_params(-10.0, 10.0, num_bits=8)  # scale 20/255, zero point -1 after nudging
    table = describe_buckets([2.0, 2.03, 2.3, 50.0], params)
    assert table["q"].tolist() == [25, 25, 28, 127]  # 2.0 and 2.03 share a bucket; 50 is clipped
    scale = np.float32(20.0) / np.float32(255.0)
    assert table["dequantized"][0] == pytest.approx(26 * scale, rel=1e-6)  # (25 - (-1)) * scale
    assert (table["bucket_low"][:3] <= table["value"][:3]).all()
    assert (table["value"][:3] <= table["bucket_high"][:3]).all()
    assert table["error"][3] == pytest.approx(params.max - 50.0, rel=1e-6)
    with pytest.raises(ValueError, match="per-tensor"):
        describe_buckets([1.0], choose_quant_params([-1.0, -2.0], [1.0, 2.0], axis=-1))


# --- model-level metrics against independent references ---

from qlab.numerics.metrics import (  # noqa: E402
    AccuracyDifference, fine_metrics, mcnemar_exact_p, output_sqnr_db, paired_accuracy_difference, softmax_kl,
    top1_agreement)


def _noisy_scores(images: int = 200, classes: int = 10, noise: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    reference = rng.normal(0, 3, (images, classes))
    return reference, reference + rng.normal(0, noise, reference.shape), rng.integers(0, classes, images)


def _kl_loop(reference, scores):
    """Slow float64 reference: softmax by the textbook formula, KL summed element by element."""
    total = 0.0
    for ref_row, row in zip(reference, scores):
        p = np.exp(ref_row) / np.exp(ref_row).sum()
        q = np.exp(row) / np.exp(row).sum()
        total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    return total / len(reference)


def test_identical_scores_agree_fully_with_zero_kl_and_zero_interval():
    reference, _, labels = _noisy_scores()
    metrics = fine_metrics(reference, reference.copy(), labels)
    assert metrics["top1_agreement"] == 1.0 and metrics["kl_divergence"] == 0.0
    assert metrics["output_sqnr_db"] == math.inf
    assert (metrics["accuracy_delta"], metrics["delta_low"], metrics["delta_high"]) == (0.0, 0.0, 0.0)
    assert metrics["mcnemar_p"] == 1.0
    assert metrics["accuracy"] == pytest.approx(np.mean(reference.argmax(1) == labels))
    assert set(metrics) == {"accuracy", "top1_agreement", "output_sqnr_db", "kl_divergence", "accuracy_delta",
                            "delta_low", "delta_high", "mcnemar_p"}


def test_top1_agreement_and_output_sqnr_hand_case():
    reference = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 2.5, 2.0], [1.0, 3.0, 0.0], [1.5, 0.0, 1.0]])
    assert top1_agreement(reference, scores) == 0.5
    assert output_sqnr_db(reference, scores) == pytest.approx(10 * math.log10(np.sum(reference**2) / (1.5**2 * 2)))


def test_softmax_kl_matches_scipy_rel_entr_and_a_float64_loop():
    reference, scores, _ = _noisy_scores(images=50, noise=1.0)
    expected = _kl_loop(reference, scores)
    assert softmax_kl(reference, scores) == pytest.approx(expected, rel=1e-9)
    special = pytest.importorskip("scipy.special")
    p, q = special.softmax(reference, axis=1), special.softmax(scores, axis=1)
    assert softmax_kl(reference, scores) == pytest.approx(special.rel_entr(p, q).sum(axis=1).mean(), rel=1e-9)


def test_softmax_kl_is_stable_for_huge_logits_and_asymmetric():
    reference, scores, _ = _noisy_scores(images=20, noise=1.0)
    shifted = softmax_kl(reference + 1000.0, scores - 1000.0)  # softmax ignores a per-row shift
    assert shifted == pytest.approx(softmax_kl(reference, scores), rel=1e-9) and np.isfinite(shifted)
    assert softmax_kl(reference * 400, scores * 400) > 0  # exp(400 * 9) overflows without log-sum-exp
    assert np.isfinite(softmax_kl(reference * 400, scores * 400))
    assert softmax_kl(reference, scores) != pytest.approx(softmax_kl(scores, reference), rel=1e-6)


@pytest.mark.parametrize("b, c", [(0, 0), (1, 0), (3, 7), (7, 3), (10, 10), (2, 25), (60, 90)])
def test_mcnemar_matches_binomial_test(b, c):
    if b + c == 0:
        assert mcnemar_exact_p(b, c) == 1.0
        return
    stats = pytest.importorskip("scipy.stats")
    assert mcnemar_exact_p(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_hand_table():
    # discordant 1 vs 5 of 6: P(X <= 1) = (1 + 6) / 64, two-sided doubles it
    assert mcnemar_exact_p(1, 5) == pytest.approx(14 / 64)
    assert mcnemar_exact_p(0, 3) == pytest.approx(2 / 8)
    assert mcnemar_exact_p(4000, 4200) < 0.05 < mcnemar_exact_p(40, 42)  # big counts stay exact and fast


def _slow_bootstrap(reference_correct, correct, confidence, resamples, seed):
    """The textbook paired bootstrap: resample image indices, recompute both accuracies."""
    rng = np.random.default_rng(seed)
    n = len(correct)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        diffs.append(correct[idx].mean() - reference_correct[idx].mean())
    alpha = 1 - confidence
    return np.quantile(diffs, [alpha / 2, 1 - alpha / 2])


def test_bootstrap_interval_matches_explicit_resampling():
    rng = np.random.default_rng(1)
    reference_correct = rng.random(2000) < 0.9
    correct = reference_correct.copy()
    flip = rng.choice(2000, 60, replace=False)
    correct[flip] = ~correct[flip]
    result = paired_accuracy_difference(reference_correct, correct, resamples=2000, seed=3)
    low, high = _slow_bootstrap(reference_correct, correct, 0.95, 2000, seed=4)
    assert result.difference == pytest.approx(correct.mean() - reference_correct.mean())
    # two independent bootstraps of the same data: endpoints agree to a fraction of the interval's width
    width = high - low
    assert result.low == pytest.approx(low, abs=0.15 * width) and result.high == pytest.approx(high, abs=0.15 * width)
    assert result.low <= result.difference <= result.high
    wider = paired_accuracy_difference(reference_correct, correct, confidence=0.99, seed=3)
    assert wider.low <= result.low and wider.high >= result.high


def test_bootstrap_coverage_on_simulated_models():
    # a candidate whose true accuracy is 1 point above the reference's: ~95% of intervals hold +0.01
    rng = np.random.default_rng(5)
    covered = 0
    for trial in range(100):
        reference_correct = rng.random(1000) < 0.90
        gain = ~reference_correct & (rng.random(1000) < 0.15)
        loss = reference_correct & (rng.random(1000) < 0.15 * 0.1 / 0.9 - 0.01 / 0.9)
        correct = (reference_correct | gain) & ~loss
        truth = 0.1 * 0.15 - 0.9 * (0.15 * 0.1 / 0.9 - 0.01 / 0.9)
        result = paired_accuracy_difference(reference_correct, correct, resamples=500, seed=trial)
        covered += result.low <= truth <= result.high
    assert 85 <= covered <= 100


def test_significant_when_the_interval_excludes_zero_and_repr():
    reference_correct = np.ones(10_000, dtype=bool)
    correct = reference_correct.copy()
    correct[:200] = False
    result = paired_accuracy_difference(reference_correct, correct, resamples=2000)
    assert isinstance(result, AccuracyDifference) and result.significant and result.high < 0
    assert result.difference == pytest.approx(-0.02) and result.mcnemar_p < 1e-10
    assert repr(result).startswith("-2.00 points [-2.") and "(95%), McNemar p=" in repr(result)
    same = paired_accuracy_difference(reference_correct, reference_correct)
    assert not same.significant and repr(same) == "+0.00 points [+0.00, +0.00] (95%), McNemar p=1"
    with pytest.raises(AttributeError):
        same.low = -1.0  # frozen


def test_model_metrics_bad_input():
    reference, scores, labels = _noisy_scores(images=10)
    with pytest.raises(ValueError, match="same shape"):
        top1_agreement(reference, scores[:5])
    with pytest.raises(ValueError, match="2-D"):
        softmax_kl(reference[0], scores[0])
    bad = scores.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="scores contains 1 NaN"):
        output_sqnr_db(reference, bad)
    with pytest.raises(ValueError, match="reference_scores is empty"):
        fine_metrics(np.zeros((0, 10)), np.zeros((0, 10)), np.zeros(0, int))
    with pytest.raises(TypeError, match="labels must be integer"):
        fine_metrics(reference, scores, labels.astype(float))
    with pytest.raises(ValueError, match="one label per image"):
        fine_metrics(reference, scores, labels[:3])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 9\]"):
        fine_metrics(reference, scores, labels + 10)
    flags = np.ones(20, dtype=bool)
    with pytest.raises(ValueError, match="confidence must be a number in"):
        paired_accuracy_difference(flags, flags, confidence=95)
    with pytest.raises(ValueError, match="resamples must be an integer >= 100, got 10"):
        paired_accuracy_difference(flags, flags, resamples=10)
    with pytest.raises(ValueError, match="same images"):
        paired_accuracy_difference(flags, flags[:5])
    with pytest.raises(ValueError, match="correct must be a non-empty 1-D"):
        paired_accuracy_difference(flags, np.ones((4, 5), dtype=bool))
    with pytest.raises(ValueError, match="True/False"):
        paired_accuracy_difference(flags, np.full(20, 0.5))


def test_gain_columns_are_the_paired_difference_in_points_under_the_given_names():
    from qlab.numerics.metrics import gain_columns, paired_accuracy_difference

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 400)
    baseline, scores = rng.normal(size=(400, 10)), rng.normal(size=(400, 10))
    scores[np.arange(200), labels[:200]] = 9.0
    d = paired_accuracy_difference(baseline.argmax(1) == labels, scores.argmax(1) == labels)
    columns = gain_columns(scores, baseline, labels, "gain (points)", "lo", "hi")
    assert columns == {"gain (points)": 100 * d.difference, "lo": 100 * d.low, "hi": 100 * d.high}
    assert columns["lo"] > 0  # half the images made right: a clear gain
    assert set(gain_columns(scores, baseline, labels, "g")) == {"g", "gain low", "gain high"}
