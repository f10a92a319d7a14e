"""Solutions to 02_error_accumulation, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/02_error_accumulation.ipynb).
"""

# %% 02.accumulate
# int8 - int8 and int8 * int8 stay int8 in numpy and wrap around: widen first (int32, as TFLite accumulates)
return int(np.sum((q_a.astype(np.int32) - z_a) * q_w.astype(np.int32)))

# %% 02.requantize
acc = acc.astype(np.int64)  # acc * M0 needs up to 62 bits
total_shift = 31 - shift
scaled = (acc * int(M0) + (1 << (total_shift - 1))) >> total_shift  # add half the divisor: halves round up
return np.clip(scaled + zero_point, -128, 127).astype(np.int8)

# %% question 1
# Layer 11 with these random layers (seed 0).
deep = qlab.simulate_chain(depth=24, width=WIDTH, batch=BATCH, seed=SEED)
print("first layer below 20 dB:", int(deep.layer[np.argmax(deep.sqnr_db < 20)]) if (deep.sqnr_db < 20).any() else "none in 24")

# %% question 2
# With z_w != 0 the sum expands to sum(q_a q_w) - z_w sum(q_a) - z_a sum(q_w) + K z_a z_w.
# The term z_w * sum(q_a) depends on the input and must be computed at run time for every output; with z_w = 0 it
# vanishes, and z_a * sum(q_w) depends only on the weights, so it is folded into the bias once, at conversion time.
