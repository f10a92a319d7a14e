"""Solutions to 10_litert_quantizer, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/10_litert_quantizer.ipynb).
"""

# %% 10.per_tensor
my_quantizer.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, 8,
                               weight_granularity=qtyping.QuantGranularity.TENSORWISE)  # one scale per weight tensor

# %% 10.layered_recipe
my_layered.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, 8)  # every op int8 first
my_layered.add_static_config(".*", qtyping.TFLOperationName.CONV_2D, 8, 4)  # then 4-bit weights where they exist:
my_layered.add_static_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8, 4)  # later configs win

# %% question 1
# The Quantizer's 16x8 file against the converter's
int16_file = lq.quantize(float_file, recipe.static_wi8_ai16(), x_train, CALIBRATION_SAMPLES)
converter_16x8 = qlab.convert(float_model, "int16x8", x_train, CALIBRATION_SAMPLES)
for name, model_bytes in (("Quantizer static_wi8_ai16", int16_file), ("converter int16x8", converter_16x8)):
    print(f"{name}: {len(model_bytes):,} bytes, accuracy {qlab.evaluate_tflite(model_bytes, x_test, y_test):.4f}")
    print("  ", qlab.conversion.tflite_file.op_table(model_bytes).head(3).to_dict(orient="records"))

# %% question 2
# A larger block has fewer scales (a smaller file) and a coarser fit. The CNN's first Dense layer has
# 1600 inputs: 32 and 64 divide it, 128 does not (the Quantizer says so).
for block in (qtyping.QuantGranularity.BLOCKWISE_32, qtyping.QuantGranularity.BLOCKWISE_64):
    blockwise = quantizer.Quantizer(float_file)
    blockwise.add_dynamic_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8)
    blockwise.add_dynamic_config(".*", qtyping.TFLOperationName.CONV_2D, 4)
    blockwise.add_dynamic_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 4, granularity=block)
    model_bytes = lq.quantize(float_file, blockwise.get_quantization_recipe())
    print(block.value, f"{len(model_bytes):,} bytes", qlab.evaluate_tflite(model_bytes, x_test, y_test))

# %% question 3
# The op after which the 4-bit file's SNR drops most, kept in float
worst_tensor = side_by_side["4-bit SNR dB"].diff().idxmin()
layer = worst_tensor.split("/")[1] if "/" in worst_tensor else worst_tensor
kept = list(custom_recipe[:-1]) + [dict(custom_recipe[-1], regex=layer)]
kept_file = lq.quantize(float_file, kept, x_train, CALIBRATION_SAMPLES)
print(layer, f"{len(kept_file):,} bytes against {len(four_bit_file):,}",
      qlab.evaluate_tflite(kept_file, x_test, y_test), "against", qlab.evaluate_tflite(four_bit_file, x_test, y_test))
