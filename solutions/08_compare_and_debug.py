"""Solutions to 08_compare_and_debug, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/08_compare_and_debug.ipynb).
"""

# %% 08.agreement
float_classes, per_tensor_classes = float_scores.argmax(axis=1), per_tensor_scores.argmax(axis=1)  # one per image
my_agreement = np.mean(float_classes == per_tensor_classes)  # the label plays no part
my_newly_wrong = np.sum((float_classes == y_test) & (per_tensor_classes != y_test))  # both, on the same image

# %% 08.keep_worst_in_float
debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[errors["layer"][0]])  # worst first
my_selective_file = debugger.get_nondebug_quantized_model()  # without the float twins and their comparison ops

# %% question 1
# (a) a phone CPU: int8_per_channel (accurate, and usually the fastest where XNNPACK has int8 kernels - check the
# latency ratios on your CPU); (b) an integer-only accelerator: int8_per_channel or qat_int8 - int8 in and out, and
# 0 in the "ops not integer-only" column; (c) 256 KB of flash: check size_bytes - a MobileNetV2 does not fit even in
# int8; the CNN's int8 file is the candidate.
print(table.loc["mobilenet_v2" if "mobilenet_v2" in MODELS else MODELS[0],
                ["accuracy", "size_bytes", "non_integer_ops", "latency_ratio"]])

# %% question 2
# The layers *after* a rescaled layer still stand out: their input channels are spread (divided by the factors), and
# an input channel is not what per-channel quantization scales - it scales output channels. The activations between
# the two layers are spread too, and activations are always quantized per tensor.
debug.layer_error_table(broken, x_train, num_samples=DEBUG_SAMPLES, per_channel=True)[
    ["keras_layer", "rmse/scale", "max_abs_error"]].head(4)
