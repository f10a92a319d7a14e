"""Solutions to 07_custom_quantization, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/07_custom_quantization.ipynb).
"""

# %% 07.weight_scale
my_scale = np.abs(dense_kernel).max() / (2 ** (NUM_BITS - 1) - 1)  # narrow range: codes -7..7, max |w| is code 7

# %% 07.dense_config
def get_weights_and_quantizers(self, layer):  # the kernel, 4 bits, one scale for the whole tensor
    return [(layer.kernel, quantizers.LastValueQuantizer(num_bits=4, per_axis=False, symmetric=True,
                                                         narrow_range=True))]

def get_activations_and_quantizers(self, layer):  # the activation function's output, 8 bits
    return [(layer.activation, quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                                 narrow_range=False))]

def set_quantize_weights(self, layer, quantize_weights):
    layer.kernel = quantize_weights[0]

def set_quantize_activations(self, layer, quantize_activations):
    layer.activation = quantize_activations[0]

def get_output_quantizers(self, layer):  # the activation function's output is the layer's output
    return []

def get_config(self):
    return {}

# %% question 1
# Set NUM_BITS = 2 in the parameters cell and run the lesson again: 3 values per channel are left (-1, 0 and 1 times
# the scale, the 2-bit narrow grid). The accuracy is in section 2's table (`Keras accuracy`, `file accuracy`): compare
# it with the 4-bit run.

# %% question 2
class FourBitOutputs(LowBitWeights):
    def get_output_quantizers(self, layer):
        return [quantizers.MovingAverageQuantizer(num_bits=4, per_axis=False, symmetric=False, narrow_range=False)]


def annotate_4bit_outputs(layer):
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        return quantize_annotate_layer(layer, quantize_config=FourBitOutputs("kernel", 4, False))
    return layer


with tfmot.quantization.keras.quantize_scope({"FourBitOutputs": FourBitOutputs}):
    four_out = tfmot.quantization.keras.quantize_apply(
        keras.models.clone_model(float_model, clone_function=annotate_4bit_outputs))
qlab.qat.training.fine_tune(four_out, x_fit, y_fit, seed=SEED, verbose=0)
print("4-bit weights and outputs:", four_out.evaluate(x_test, y_test, batch_size=500, verbose=0)[1])
print("8-bit outputs (section 2, per tensor):", per_tensor.evaluate(x_test, y_test, batch_size=500, verbose=0)[1])
print("converts:", converter.try_convert_qat(four_out)[0] is not None)

# %% question 3
weights = sum(w.numpy().size for layer in float_model.layers for w in layer.weights if "kernel" in w.name)
int8_bytes = len(qlab.convert_qat(qlab.load_or_fine_tune(MODEL, "qat_int8", SIZE, SEED, verbose=0)))
print(f"predicted {int8_bytes - weights / 2:,.0f} B, measured "
      f"{len(qlab.convert_qat(qlab.load_or_fine_tune(MODEL, 'qat_4bit', SIZE, SEED, verbose=0))):,} B")
# the rest: biases (int32), one scale and zero point per output channel, the graph and its metadata
