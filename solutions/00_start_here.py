"""Answers to 00_start_here's questions, for instructors."""

# %% question 1
# 1,000,000 x 4 bytes = 4,000,000 bytes as float32; as int8, 1,000,000 bytes plus 12 bytes for one float32 scale
# (4 bytes) and one zero point (TFLite stores it as int64, 8 bytes): 1,000,012 bytes, 4.0x smaller.
float_bytes, int8_bytes = 1_000_000 * 4, 1_000_000 * 1 + 4 + 8
print(float_bytes, int8_bytes, round(float_bytes / int8_bytes, 3))

# %% question 2
# An integer-only chip has no float unit; every input to every multiply must be an integer, so the activations
# flowing between layers need a scale and zero point too.
