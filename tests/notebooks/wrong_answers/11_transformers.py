"""Deliberately wrong answers to 11_transformers' exercises, each with the hint it must get."""

# %% 11.keep_attention
# expect: the attention projections are stored as
my_quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8)
my_quantizer.add_dynamic_config(r".*block.*", qtyping.TFLOperationName.FULLY_CONNECTED, LOW_BITS)  # every block layer

# %% 11.channel_bounds
# expect: reduce over the summed axes
my_query_bounds = np.max(np.abs(query_kernel), axis=-1)  # the last axis, as for a 2-D kernel's transpose
my_output_bounds = np.max(np.abs(output_kernel), axis=(0, 1))
