"""Deliberately wrong answers to 08_compare_and_debug's exercises, each with the hint it must get."""

# %% 08.agreement
# expect: the per-tensor file's accuracy
my_agreement = np.mean(per_tensor_scores.argmax(axis=1) == y_test)  # compared with the labels, not with float32
my_newly_wrong = np.sum(per_tensor_scores.argmax(axis=1) != y_test)

# %% 08.keep_worst_in_float
# expect: nothing was kept in float
debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[errors["keras_layer"][0]])
my_selective_file = debugger.get_nondebug_quantized_model()  # a Keras layer name: the denylist matches nothing
