"""Deliberately wrong answers to 01_buckets's exercises: mistakes learners make, each with the hint it must get."""

# %% 01.quantize
# expect: outside int8
q = np.round(x / scale) + zero_point  # forgot to clip

# %% 01.scale_zero_point
# expect: 255, not 256
relu6_scale = 6.0 / 256
relu6_zero_point = -128
