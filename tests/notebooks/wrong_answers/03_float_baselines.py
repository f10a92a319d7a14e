"""Deliberately wrong answers to 03_float_baselines's exercises, each with the hint it must get."""

# %% 03.float16
# expect: dynamic range
converter.optimizations = [tf.lite.Optimize.DEFAULT]  # float16 never named

# %% 03.run_tflite
# expect: batch axis
interpreter = Interpreter(model_content=model_bytes)
interpreter.allocate_tensors()
scores = []
for image in images:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
    interpreter.invoke()
    scores.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))  # still (1, 10)
return np.array(scores)
