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
