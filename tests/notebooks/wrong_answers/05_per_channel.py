"""Deliberately wrong answers to 05_per_channel's exercises: mistakes learners make, each with the hint it must get."""

# %% 05.per_channel_scales
# expect: narrow_range
my_scales = np.abs(conv2_kernel).max(axis=(0, 1, 2)) / 128  # 128 levels on each side, as if not narrow

# %% 05.equalization_scale
# expect: swap their channel ranges
r1 = np.abs(kernel1).max(axis=(0, 1, 2))
r2 = np.abs(kernel2).max(axis=(0, 1, 3))
my_equalization_scale = r1 / r2  # the whole ratio, not its square root
