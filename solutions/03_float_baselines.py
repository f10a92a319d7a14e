"""Solutions to 03_float_baselines, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/03_float_baselines.ipynb).
"""

# %% 03.float16
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_types = [tf.float16]  # weights stored as float16

# %% 03.run_tflite
interpreter = Interpreter(model_content=model_bytes)
interpreter.allocate_tensors()
input_index = interpreter.get_input_details()[0]["index"]
output_index = interpreter.get_output_details()[0]["index"]
scores = []
for image in images:  # (28, 28, 1) each
    interpreter.set_tensor(input_index, image[None])  # a batch of one
    interpreter.invoke()
    scores.append(interpreter.get_tensor(output_index)[0])  # (1, 10) -> (10,)
return np.array(scores)

# %% question 1
# The flatbuffer also stores the graph, tensor names and shapes (more than 4 bytes a parameter for mnist_cnn), but the
# converter folds every batch norm into the convolution before it, so the MobileNets' 4 batch-norm values per channel
# (gamma, beta, moving mean and variance: counted by count_params) are not stored at all (fewer than 4 bytes).
print({m: round(table.loc[(m, "float32"), "size_bytes"] / trained[m][0].count_params(), 3) for m in MODELS})

# %% question 2
# The first dense layer (flattened feature map x units) holds most of mnist_cnn's weights.
trained["mnist_cnn"][0].summary()
