"""Deliberately wrong answers to 12_your_own_model's exercises, each with the hint it must get."""

# %% 12.dataset
# expect: trained on values in [0, 1]
my_x_train = raw_images[..., None].astype(np.float32)  # the / 255 of training forgotten
my_y_train = raw_labels.argmax(axis=1)

# %% 12.keep_in_float
# expect: which TFMOT cannot quantize
def my_predicate(layer):
    return isinstance(layer, qlab.keras.layers.LayerNormalization)  # inverted: picks the one TFMOT cannot take
