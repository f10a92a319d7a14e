"""Solutions to 09_deep_compression, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/09_deep_compression.ipynb).
"""

# %% 09.schedule
my_schedule = tfmot.sparsity.keras.PolynomialDecay(
    initial_sparsity=0.0, final_sparsity=0.8,
    begin_step=steps_per_epoch,  # the update at step 469 prunes 0%: dense through the first epoch
    end_step=steps_per_epoch + 4 * 100,  # an update step (469 + 4 x 100 = 869), before the third epoch (939)
    frequency=100)

# %% 09.keep_zeros
my_pqat = tfmot.quantization.keras.quantize_apply(
    tfmot.quantization.keras.quantize_annotate_model(pruned_model),
    tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())  # each kernel's quantizer applies its mask

# %% question 1
# Pruning's cost is the float pruned file against float32; PQAT's int8 file is then compared with both (and the
# control of section 5 says how much of any gain is just more training).
steep = prune.prune_model(float_model, 0.9, end_step=END_STEP, frequency=FREQUENCY)
steep_model, _ = prune.fine_tune_pruned(steep, x_fit, y_fit, epochs=FIT_EPOCHS, batch_size=BATCH, seed=SEED,
                                        verbose=0)
steep_pqat = prune.quantize_preserving_sparsity(steep_model)
qlab.qat.training.fine_tune(steep_pqat, x_fit, y_fit, epochs=FIT_EPOCHS, batch_size=BATCH, learning_rate=1e-3,
                            seed=SEED, verbose=0)
print("float32:             ", float_accuracy)
print("90% pruned, float32: ", qlab.evaluate_tflite(qlab.convert(steep_model, "float32"), x_test, y_test))
print("90% pruned, int8 PTQ:",
      qlab.evaluate_tflite(qlab.convert(steep_model, "int8_per_channel", x_train), x_test, y_test))
print("90% pruned, PQAT:    ", qlab.evaluate_tflite(qlab.convert_qat(steep_pqat), x_test, y_test))

# %% question 2
# conv1 and conv2 hold at most 4 values per channel; the Dense kernels are clustered per tensor whatever
# cluster_per_channel says (TFMOT applies it to Conv2D only).
per_channel_model, _ = cluster.fine_tune_clustered(cluster.cluster_model(float_model, 4, per_channel=True),
                                                   x_fit, y_fit, seed=SEED)
cluster.unique_values_table(per_channel_model)

# %% question 3
# conv1 has one input channel, fewer than n = 4 consecutive input-channel weights per group, so TFMOT
# leaves it dense; every other kernel has two zeros in every four.
two_four, _ = prune.fine_tune_pruned(prune.prune_model(float_model, None, m_by_n=(2, 4)), x_fit, y_fit, epochs=1,
                                     batch_size=BATCH, seed=SEED, verbose=0)
prune.sparsity_table(two_four)
