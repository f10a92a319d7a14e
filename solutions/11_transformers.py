"""Solutions to 11_transformers, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/11_transformers.ipynb).
"""

# %% 11.keep_attention
my_quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8)  # every dense op first
my_quantizer.add_dynamic_config(r".*_ff[12]_1/.*", qtyping.TFLOperationName.FULLY_CONNECTED, LOW_BITS)  # later wins

# %% 11.channel_bounds
my_query_bounds = np.max(np.abs(query_kernel), axis=0)  # abc,cde->abde sums over c, the kernel's first axis
my_output_bounds = np.max(np.abs(output_kernel), axis=(0, 1))  # abcd,cde->abe sums over c and d

# %% question 1
# TFLITE_BUILTINS_INT8 asks for int8 kernels only. The LayerNorm's NEG has none, so the converter fails instead of
# leaving it in float: the error names the op. The file can be integer-only only if the model avoids the op (a
# LayerNorm written without NEG) or runs on a runtime with an int8 LayerNorm kernel.
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
try:
    with tflite_chatter_silenced():
        converter.convert()
except Exception as error:
    print(converter_refusal(error))

# %% question 2
# Query and key at 2 bits, value and output at 8. Compare its accuracy with the table's attention row: if most of
# the attention break comes back, the product of the two projections before the softmax is where it came from.
q_and_k = quantizer.Quantizer(float_file)
q_and_k.add_dynamic_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8)
q_and_k.add_dynamic_config(r".*_attention_1/(query|key)_1/.*", qtyping.TFLOperationName.FULLY_CONNECTED, LOW_BITS)
q_and_k_file = lq.quantize(float_file, q_and_k.get_quantization_recipe())
print(f"query and key at {LOW_BITS} bits: {qlab.evaluate_tflite(q_and_k_file, x_test, y_test):.2%}")
print(bits_table[["weights", "accuracy"]])

# %% question 3
# One epoch: the same comparison at half the steps. Read "QAT gain vs control" and its interval.
short = keras3_qat_contrast(model, ((x_train, y_train), (x_test, y_test)), LOW_BITS, 1, QAT_SAMPLES, seed=SEED)
print(short[["method", "accuracy", "QAT gain vs control (points)", "gain low", "gain high"]])

# %% question 4
# Smaller blocks: more scales, a closer fit in Keras; the file keeps its float32 kernels either way, so it does
# not get smaller.
print(keras3_quantization_table(model, x_test, y_test, modes=[("int4", 16)])[
    ["mode", "block size", "Keras accuracy", "weight bytes in memory", "file bytes"]])

# %% question 5
# The debugger's table, worst first: the LayerNorm's internal ops (its MEAN over the squared differences) and the
# attention's BATCH_MATMULs have the largest error in quantization steps, not the LayerNorm outputs that SmoothQuant
# would smooth.
from qlab.ptq.debug import layer_error_table

layer_error_table(model, x_train, 100).head(8)
