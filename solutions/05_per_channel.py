"""Solutions to 05_per_channel, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/05_per_channel.ipynb).
"""

# %% 05.per_channel_scales
# symmetric, narrow range: each output channel's largest |w| lands on code 127
my_scales = np.abs(conv2_kernel).max(axis=(0, 1, 2)) / 127

# %% 05.equalization_scale
r1 = np.abs(kernel1).max(axis=(0, 1, 2))  # each output channel of conv1
r2 = np.abs(kernel2).max(axis=(0, 1, 3))  # each input channel of conv2
my_equalization_scale = np.sqrt(r1 * r2) / r2  # both ranges become sqrt(r1 * r2)

# %% question 1
# The layer with the largest gain, and its kind: what matters is how unequal its channels are.
best = layers["mobilenet_v1"]["gain dB"].idxmax()
print(best, layers["mobilenet_v1"].loc[best, "kind"], round(layers["mobilenet_v1"].loc[best, "gain dB"], 1), "dB")

# %% question 2
# Every pair of mobilenet_v1 is joined by a ReLU6, which a rescaling would change; no exact pair is left.
print(qlab.expect_error(equalize.cross_layer_equalization, mobilenet, relu6_to_relu=False))

# %% question 3
# A smaller spread loses less (compare the study's x100 column in section 6).
mild = equalize.rescale_channels(base, spread=100.0, seed=SEED)
print(qlab.evaluate_tflite(qlab.convert(mild, "int8_per_tensor", xc_train[:CALIBRATION_SAMPLES]), xc_test, yc_test))

# %% question 4
# Symmetric weights make the zero-point correction term z_w * sum(q_x) vanish (notebook 02, the question on
# symmetric weights), so each output needs no extra input-dependent sum at run time. Per channel, a zero point
# per channel would add one such sum per output channel.
