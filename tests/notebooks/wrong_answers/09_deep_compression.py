"""Deliberately wrong answers to 09_deep_compression's exercises, each with the hint it must get."""

# %% 09.schedule
# expect: short of 80%
my_schedule = tfmot.sparsity.keras.PolynomialDecay(  # end_step at the end of epoch 2: not an update step
    initial_sparsity=0.0, final_sparsity=0.8, begin_step=steps_per_epoch, end_step=2 * steps_per_epoch,
    frequency=100)

# %% 09.keep_zeros
# expect: trains the pruned weights back
my_pqat = tfmot.quantization.keras.quantize_model(pruned_model)  # ordinary QAT
