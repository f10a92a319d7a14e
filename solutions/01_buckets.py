"""Solutions to 01_buckets, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/01_buckets.ipynb).
"""

# %% 01.quantize
q = np.clip(np.round(x / scale) + zero_point, qmin, qmax).astype(np.int8)

# %% 01.scale_zero_point
relu6_scale = (6.0 - 0.0) / 255  # 256 levels, 255 steps
relu6_zero_point = -128  # 0.0 is the range's minimum, so it is the lowest code

# %% question 1
# 9 bits (step 20/511 = 0.039) happen to put a bucket edge between them; from 10 bits on
# (step 0.0196 < 0.03) they are apart wherever they sit.
print({b: qlab.describe_buckets([2.0, 2.03], qlab.choose_quant_params(-10.0, 10.0, num_bits=b))["q"].nunique()
       for b in (8, 9, 10)})

# %% question 2
# About 5.4 dB (7.2 dB -> 12.6 dB); at 8 bits it was only 0.4 dB.
print({m: round(qlab.error_report(tensor, qlab.choose_quant_params(
    *qlab.estimate_range(tensor, method=m, **({"num_bits": 4} if m == "mse" else {})), num_bits=4)).sqnr_db, 2)
       for m in ("minmax", "mse")})
