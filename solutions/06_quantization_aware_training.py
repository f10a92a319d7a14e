"""Solutions to 06_quantization_aware_training, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/06_quantization_aware_training.ipynb).
"""

# %% 06.qat
my_qat = tfmot.quantization.keras.quantize_model(float_model)
my_qat.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-4),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # the zoo models output logits
               metrics=["accuracy"])
my_qat.fit(my_x, my_y, batch_size=128, epochs=1, verbose=0)

# %% 06.ste
step = (grid_max - grid_min) / (2 ** grid_bits - 1)
clipped = tf.clip_by_value(x, grid_min, grid_max)  # its gradient: 1 inside the range, 0 where it clips
rounded = grid_min + tf.round((clipped - grid_min) / step) * step
return clipped + tf.stop_gradient(rounded - clipped)  # forward the rounded value, backward clipped's gradient

# %% question 1
# Every range matches the data from the first step; at 8 bits the accuracy moves little (section 5's study measures it).
calibrated_start = qat_ranges.start_from_data(qlab.quantize_whole_model(float_model), float_model, x_calib)
qlab.qat.training.fine_tune(calibrated_start, x_train[:FIT_SAMPLES], y_train[:FIT_SAMPLES], seed=SEED, verbose=0)
print(qat_ranges.mismatch_summary(qat_ranges.qat_range_table(calibrated_start, float_model, x_calib)))
print("int8 file accuracy:", qlab.evaluate_tflite(qlab.convert_qat(calibrated_start), x_test, y_test))

# %% question 2
dense = range_variables(qat_model.get_layer("quant_dense"))
flat = keras.Model(qat_model.input, qat_model.get_layer("quant_flatten").output)(x, training=False).numpy()
kernel = qlab.fake_quant(dense["kernel"], dense["kernel_min"], dense["kernel_max"], narrow_range=True)
mine = qlab.fake_quant(np.maximum(flat @ kernel + dense["bias"], 0), dense["post_activation_min"], dense["post_activation_max"])
theirs = keras.Model(qat_model.input, qat_model.get_layer("quant_dense").output)(x, training=False).numpy()
print("max difference in output steps:", np.abs(mine - theirs).max() / ((dense["post_activation_max"] - dense["post_activation_min"]) / 255))

# %% question 3
# A clipped value does not change the output, so the loss cannot tell it to move: gradient 0.
# LastValueQuantizer sets the weight range to the tensor's own min/max at every training step (symmetric: +-max|w|),
# so no weight is ever outside it; clipping only happens to activations, whose ranges are moving averages.
