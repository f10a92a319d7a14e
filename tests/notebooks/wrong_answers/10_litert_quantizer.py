"""Deliberately wrong answers to 10_litert_quantizer's exercises, each with the hint it must get."""

# %% 10.per_tensor
# expect: one scale per output channel
my_quantizer.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, 8)  # the default: per channel

# %% 10.layered_recipe
# expect: replaces the configs added before it
my_layered.add_static_config(".*", qtyping.TFLOperationName.CONV_2D, 8, 4)  # the 4-bit configs first ...
my_layered.add_static_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8, 4)
my_layered.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, 8)  # ... and every op after them
