"""Deliberately wrong answers to 06_quantization_aware_training's exercises, each with the hint it must get."""

# %% 06.qat
# expect: never trained
my_qat = tfmot.quantization.keras.quantize_model(float_model)
my_qat.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-4),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # and forgot fit

# %% 06.ste
# expect: outside the range get gradient 1
step = (grid_max - grid_min) / (2 ** grid_bits - 1)
rounded = grid_min + tf.round((tf.clip_by_value(x, grid_min, grid_max) - grid_min) / step) * step
return x + tf.stop_gradient(rounded - x)  # the identity's gradient everywhere, clipped values included
