"""Deliberately wrong answers to 02_error_accumulation's exercises, each with the hint it must get."""

# %% 02.accumulate
# expect: wrapped around
return int(np.sum((q_a - z_a) * q_w))  # int8 arithmetic: q_a - z_a and the products wrap

# %% 02.requantize
# expect: rounded down
acc = acc.astype(np.int64)
return np.clip(((acc * int(M0)) >> (31 - shift)) + zero_point, -128, 127)  # the shift alone truncates
