"""Deliberately wrong answers to 07_custom_quantization's exercises, each with the hint it must get."""

# %% 07.weight_scale
# expect: narrow range drops the most negative code
my_scale = np.abs(dense_kernel).max() / 2 ** (NUM_BITS - 1)  # the full signed grid: -8..7

# %% 07.dense_config
# expect: TFMOT's scheme quantizes the activation function instead
def get_weights_and_quantizers(self, layer):  # LowBitWeights' layout: the output rounded, not the activation
    return [(layer.kernel, quantizers.LastValueQuantizer(num_bits=4, per_axis=False, symmetric=True,
                                                         narrow_range=True))]

def get_activations_and_quantizers(self, layer):
    return []

def set_quantize_weights(self, layer, quantize_weights):
    layer.kernel = quantize_weights[0]

def set_quantize_activations(self, layer, quantize_activations):
    pass

def get_output_quantizers(self, layer):
    return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

def get_config(self):
    return {}
