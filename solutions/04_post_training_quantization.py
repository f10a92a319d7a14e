"""Solutions to 04_post_training_quantization, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/04_post_training_quantization.ipynb).
"""

# %% 04.full_integer
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # int8 kernels, or fail
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8

# %% 04.representative
for image in camera_images:  # (28, 28) uint8 each
    yield [image[None, :, :, None].astype(np.float32) / 255.0]  # batch and channel axes, [0, 1] as in training

# %% question 1
# int8_per_channel: integer end to end; dynamic_int8 keeps float activations and float kernels.

# %% question 2
# The input range is twice too wide and its zero point sits in the middle of the grid, so real [0, 1] pixels use
# only the upper half of the int8 levels, and every other range comes from images the app never sends.
minus_one_to_one = qlab.convert(model, "int8_per_channel", 2 * x_calib - 1)
print("calibrated on [-1, 1]:", qlab.metrics.fine_metrics(float_scores, qlab.predict_tflite(minus_one_to_one, x_test), y_test))

# %% question 3
# Compare with the mse row at 4 bits of the study table (calibrated on the same images).
four_bit = ranges.quantize_with_ranges(model, x_calib, "percentile", 4, percentile=99.9).qat_model
print("percentile 99.9, 4-bit activations:",
      qlab.metrics.fine_metrics(float_scores, four_bit.predict(x_test, verbose=0), y_test)["accuracy"])
print("mse, 4-bit activations:",
      estimators.query("model == 'mnist_cnn' and method == 'mse' and num_bits == 4")["accuracy"].item())
