"""Deliberately wrong answers to 04_post_training_quantization's exercises, each with the hint it must get."""

# %% 04.full_integer
# expect: inference input and output types
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

# %% 04.representative
# expect: trained on pixels in [0, 1]
for image in camera_images:  # the lesson's own break: the / 255 of training forgotten
    yield [image[None, :, :, None].astype(np.float32)]
