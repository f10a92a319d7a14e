"""Solutions to 12_your_own_model, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/12_your_own_model.ipynb).
"""

# %% 12.dataset
my_x_train = raw_images[..., None].astype(np.float32) / 255  # the channel axis, float32, [0, 1] as in training
my_y_train = raw_labels.argmax(axis=1)  # one class index per image

# %% 12.keep_in_float
def my_predicate(layer):
    return not isinstance(layer, qlab.keras.layers.LayerNormalization)  # every other layer

# %% question 1
# Yes: the same weights and the same test images give the same accuracies and sizes as notebook 04's mnist_cnn rows
# (latency ratios vary by 10-20% from run to run on a shared machine).
qlab.load_or_train("mnist_cnn").save("my.h5")  # then MODEL_PATH = "my.h5" in the parameters cell, and Run All

# %% question 2
# Save the model and the data it was trained on (0..255 pixels: the model scales them itself), then in a terminal:
#   qlab compare --model k3.keras --data k3.npz --variants all --json out.json
# The post-training rows repeat section 4's (the same model and calibration images). The QAT rows differ a little:
# the command fine-tunes on 10,000 examples (--fine-tune-samples), section 4 on KERAS3_FINE_TUNE_SAMPLES. `--variants
# all` adds the Deep Compression variants of lesson 09, and the command measures latency, which section 4 skipped.
keras3_model.save("k3.keras")
(k3_x_train, k3_y_train), (k3_x_test, k3_y_test) = pixels
np.savez("k3.npz", x_train=k3_x_train, y_train=k3_y_train, x_test=k3_x_test, y_test=k3_y_test)
