"""The integer chain simulation: error growth, per-channel vs per-tensor, and agreement with float."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.numerics import accumulate
from qlab.numerics.accumulate import ChainResult, simulate_chain
from qlab.numerics.quant import dequantize, quantize, weight_quant_params


def test_error_grows_with_depth():
    result = simulate_chain(depth=8, seed=0)
    assert isinstance(result, ChainResult) and result.layer.tolist() == list(range(1, 9))
    assert result.relative_error[-1] > 2 * result.relative_error[0]
    assert result.sqnr_db[-1] < result.sqnr_db[0] - 5
    print(f"\nper-tensor int8 relative error layer 1 {result.relative_error[0]:.2%} -> layer 8 {result.relative_error[-1]:.2%}")


def test_per_channel_has_lower_error_than_per_tensor():
    per_tensor = simulate_chain(depth=6, per_channel=False, seed=3)
    per_channel = simulate_chain(depth=6, per_channel=True, seed=3)
    print(f"\nlast-layer relative error: per-tensor {per_tensor.relative_error[-1]:.2%}, "
          f"per-channel {per_channel.relative_error[-1]:.2%}")
    assert np.all(per_channel.rmse < per_tensor.rmse)


def test_fewer_bits_more_error_and_requantize_adds_error():
    eight, four = simulate_chain(depth=4), simulate_chain(depth=4, num_bits=4)
    assert np.all(four.relative_error > 5 * eight.relative_error)
    no_requant = simulate_chain(depth=4, requantize=False)
    assert np.all(no_requant.rmse <= eight.rmse * 1.0001)
    sixteen = simulate_chain(depth=4, num_bits=16)  # int64 accumulators, 16-bit activations
    assert np.all(sixteen.relative_error < eight.relative_error / 50)


def test_narrow_accumulator_saturates():
    wide = simulate_chain(depth=3, num_bits=16, int32_accumulate=True)
    narrow = simulate_chain(depth=3, num_bits=16, int32_accumulate=False)
    assert np.all(wide.saturated_fraction == 0)
    assert narrow.saturated_fraction.sum() > 0 and narrow.rmse.max() > wide.rmse.max()


def test_depth_one_integer_path_matches_float_recomputation_within_a_bucket():
    """int8 x int8 -> int32 + bias -> fixed-point requantize == float math on the same integers, +-1 level."""
    rng = np.random.default_rng(7)
    (weights, bias), = accumulate._make_layers(rng, 1, 32)
    x = rng.normal(size=(128, 32))
    in_params = accumulate._activation_params(x, 8)
    q_in = quantize(x.astype(np.float32), in_params).astype(np.int64)
    w_params = weight_quant_params(weights, 8, axis=-1)
    q_w = quantize(weights, w_params).astype(np.int64)
    acc_scale = float(in_params.scale) * w_params.scale.astype(np.float64)
    bias_q = np.round(bias / acc_scale).astype(np.int64)
    acc, _ = accumulate._accumulate(q_in - int(in_params.zero_point), q_w, bias_q, None)
    assert np.abs(acc).max() < 2**31  # fits the int32 accumulator
    reference = np.maximum(x @ weights + bias, 0)
    out_params = accumulate._activation_params(reference, 8)
    q_int = accumulate._requantize(acc, acc_scale / float(out_params.scale), out_params, 8)
    # float re-computation from the same integers
    real = (dequantize(q_in, in_params).astype(np.float64) @ dequantize(q_w, w_params) + bias_q * acc_scale)
    q_float = np.clip(np.round(real / float(out_params.scale)) + int(out_params.zero_point),
                      int(out_params.zero_point), out_params.qmax)
    assert np.abs(q_int - q_float).max() <= 1
    assert np.mean(q_int == q_float) > 0.99


def test_result_is_deterministic_and_displays():
    a, b = simulate_chain(depth=2, seed=5), simulate_chain(depth=2, seed=5)
    assert np.array_equal(a.rmse, b.rmse)
    assert not np.array_equal(a.rmse, simulate_chain(depth=2, seed=6).rmse)
    text = repr(a)
    assert text.startswith("ChainResult(") and "rel.err" in text and len(text.splitlines()) == 4
    frame = a.as_frame()
    assert list(frame.index) == [1, 2] and "relative_error" in frame.columns
    assert "<table" in a._repr_html_()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"depth": 0}, "depth"),
        ({"width": 0}, "width"),
        ({"batch": 0}, "batch"),
        ({"num_bits": 1}, "num_bits"),
        ({"num_bits": 17}, "num_bits"),
        ({"seed": -1}, "seed"),
        ({"depth": 2.5}, "depth"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        simulate_chain(**kwargs)


def test_bad_flag_types():
    with pytest.raises(TypeError, match="per_channel"):
        simulate_chain(per_channel="yes")
    with pytest.raises(TypeError, match="requantize"):
        simulate_chain(requantize=1)
