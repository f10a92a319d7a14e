"""Partial QAT chosen by measurement: which layers to keep at 8 bits when the rest go lower.

Quantizing "all Conv2D" and leaving the rest float (the ``qat_partial`` variant) is an
anti-pattern on a converter like TFLite's: every float layer between int8 layers becomes
a float island behind a DEQUANTIZE and a QUANTIZE, so the file is bigger and slower than
whole-model QAT and no more accurate. :func:`float_island_counts` counts those borders.

A partial QAT that earns its place is mixed precision with no float islands: every
layer is quantized (int8 activations throughout), most weight layers at ``num_bits``
(2 to 7), and the few layers that measurement says are most sensitive keep 8-bit weights.

- :func:`layer_sensitivity`: each weight layer alone at ``num_bits`` (per channel, batch norm
  folded, everything else float) and the accuracy / output SQNR it costs.
- :func:`mixed_precision_qat_model`: TFMOT's ``DefaultNBitQuantizeScheme`` with a registry
  that gives the named layers 8-bit weights. The scheme's layout transforms still run, so
  batch norm is handled as in whole-model QAT; a ``quantize_annotate_layer(quantize_config=...)``
  on a conv would switch those transforms off for it (TFMOT skips a conv/BN pattern whose
  layers carry a custom config) and put a FakeQuant between the conv and its batch norm.
- :func:`weight_bits_by_layer`: the weight bit width of every layer of a QAT model.
The study that sets all of it against the all-Conv2D anti-pattern on the zoo models is
:mod:`qlab.workbook.studies.partial_qat`.

On this stack the converter stores weights of 4 bits and fewer as INT4 (2-bit ones too:
there is no smaller type, so 2-bit files are the size of 4-bit ones), and LiteRT runs
INT4 ops outside XNNPACK, slower than float32: low-bit mixed precision buys file size,
not speed. Compare latency only as ratios measured in one run.

Taught in ``07_custom_quantization`` (``06_quantization_aware_training`` shows the anti-pattern).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.zoo.introspect import WEIGHT_LAYER_TYPES
from qlab.zoo.keras2 import require_keras2_model, tfmot
from qlab.numerics.validate import check_int

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["weight_layer_names", "layer_sensitivity", "most_sensitive_layers",
           "MixedPrecisionQuantizeScheme", "mixed_precision_qat_model", "weight_bits_by_layer",
           "mixed_precision_ptq_model", "float_island_counts", "check_weight_bits"]


def check_weight_bits(num_bits: Any, argument: str = "num_bits") -> int:
    # 8 is the width the kept layers already have; TFMOT's quantizers go down to 2
    return check_int(num_bits, argument, 2, 7)


def weight_layer_names(model: Any) -> list[str]:
    """Names of the Conv2D, DepthwiseConv2D and Dense layers of ``model``, in model order."""
    return [layer.name for layer in model.layers if type(layer).__name__ in WEIGHT_LAYER_TYPES]


def _check_layer_names(model: Any, names: Any, argument: str) -> list[str]:
    if isinstance(names, str) or not isinstance(names, (list, tuple, set, frozenset)):
        raise TypeError(f"{argument} must be a list of layer names, got {names!r}")
    valid = weight_layer_names(model)
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ValueError(f"{argument} has names that are not weight layers of model "
                         f"{model.name!r}: {unknown}; valid: {valid}")
    return list(dict.fromkeys(names))


def layer_sensitivity(model: Any, x: np.ndarray, y: np.ndarray, num_bits: int = 2,
                      per_channel: bool = True, verbose: bool = False) -> pd.DataFrame:
    """How much each weight layer alone costs at ``num_bits`` weights, most sensitive first.

    Batch norm is folded first (as the converter does); then, one layer at a time, that
    layer's kernel is rounded to ``num_bits`` symmetric narrow-range levels (per output
    channel by default) while every other layer and all activations stay float, and the
    float Keras model is run on ``x``. Fake-quantized Keras, not a file: it isolates the
    weight rounding of one layer.

    Returns:
        One row per weight layer: ``layer``, ``class``, ``parameters`` (kernel size),
        ``accuracy`` on ``(x, y)``, ``accuracy_drop`` (float minus it, points),
        ``output_sqnr_db`` against the float model's scores and ``rank`` (1 = most
        sensitive: lowest output SQNR, the finer of the two measures).
    """
    import pandas as pd

    from qlab.ptq.batch_norm_folding import fold_batch_norm
    from qlab.zoo.models import predict_keras
    from qlab.ptq.weight_bits import fake_quantize_kernel, round_layer_kernel
    from qlab.numerics.metrics import output_sqnr_db

    num_bits = check_weight_bits(num_bits)
    y = np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must hold the same, non-zero number of samples, got {len(x)} and {len(y)}")
    folded = fold_batch_norm(require_keras2_model(model))
    reference = predict_keras(folded, x)
    float_accuracy = float(np.mean(reference.argmax(1) == y))
    rows = []
    for name in weight_layer_names(folded):
        layer = folded.get_layer(name)
        saved = layer.get_weights()
        kernel = saved[0]
        round_layer_kernel(layer, lambda k: fake_quantize_kernel(k, num_bits, per_channel))
        scores = predict_keras(folded, x)
        layer.set_weights(saved)  # back to float: one layer at a time
        accuracy = float(np.mean(scores.argmax(1) == y))
        rows.append({"layer": name, "class": type(layer).__name__, "parameters": int(kernel.size),
                     "accuracy": accuracy, "accuracy_drop": 100 * (float_accuracy - accuracy),
                     "output_sqnr_db": output_sqnr_db(reference, scores)})
        if verbose:
            print(f"  {name} at {num_bits} bits: {accuracy:.4f}, "
                  f"{rows[-1]['output_sqnr_db']:.1f} dB", flush=True)
    table = pd.DataFrame(rows).sort_values("output_sqnr_db", ignore_index=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def most_sensitive_layers(sensitivity: pd.DataFrame, k: int) -> list[str]:
    """The ``k`` layers of a :func:`layer_sensitivity` table with the lowest output SQNR."""
    k = check_int(k, "k", 0, len(sensitivity))
    return list(sensitivity.sort_values("output_sqnr_db")["layer"][:k])


class _MixedPrecisionRegistry(
        tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeRegistry):
    """The n-bit registry, with 8-bit weights for the layers named in ``keep_8bit``."""

    def __init__(self, keep_8bit: Sequence[str], num_bits_weight: int, num_bits_activation: int,
                 disable_per_axis: bool):
        super().__init__(disable_per_axis, num_bits_weight, num_bits_activation)
        self._keep_8bit = frozenset(keep_8bit)

    def get_quantize_config(self, layer: Any) -> Any:
        registry = tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeRegistry
        bits = 8 if layer.name in self._keep_8bit else self._num_bits_weight
        # a fresh registry per layer: TFMOT's registries share their per-class bit
        # widths (class-level _QuantizeInfo objects), so the last one built wins for
        # Dense and friends; a config made right after its registry has the right ones
        fresh = registry(self._disable_per_axis, bits, self._num_bits_activation)
        return fresh.get_quantize_config(layer)


class MixedPrecisionQuantizeScheme(
        tfmot.quantization.keras.experimental.default_n_bit.DefaultNBitQuantizeScheme):
    """``DefaultNBitQuantizeScheme`` whose named layers keep 8-bit weights.

    Its layout transforms (batch norm after a conv, ReLU fusion, the input layer) are the
    n-bit scheme's; only the registry's choice of weight bits changes, layer by layer.
    Taught in ``07_custom_quantization``.
    """

    def __init__(self, keep_8bit_layers: Sequence[str], num_bits_weight: int = 4,
                 num_bits_activation: int = 8, disable_per_axis: bool = False):
        super().__init__(disable_per_axis, num_bits_weight, num_bits_activation)
        self.keep_8bit_layers = tuple(keep_8bit_layers)

    def get_quantize_registry(self) -> Any:
        return _MixedPrecisionRegistry(self.keep_8bit_layers, self._num_bits_weight,
                                       self._num_bits_activation, self._disable_per_axis)


def mixed_precision_qat_model(model: Any, keep_8bit_layers: Sequence[str],
                              num_bits_weight: int = 4, num_bits_activation: int = 8) -> Any:
    """A QAT model with every layer quantized: ``keep_8bit_layers`` at 8-bit weights, the rest lower.

    ``quantize_annotate_model`` + ``quantize_apply`` with :class:`MixedPrecisionQuantizeScheme`,
    so no layer stays float and batch norm is handled as in whole-model QAT. Fine-tune it
    with :func:`qlab.qat.training.fine_tune`, convert it with :func:`qlab.conversion.converter.convert_qat`
    (2- and 4-bit weights measured: stored as INT4). Taught in ``07_custom_quantization``.

    Raises:
        TypeError: ``model`` is a Keras 3 model, or ``keep_8bit_layers`` is not a list of names.
        ValueError: a name is not a weight layer of ``model``, or a bit width is out of range.
    """
    from qlab.qat.quantize import UnsupportedLayerError

    model = require_keras2_model(model)
    keep = _check_layer_names(model, keep_8bit_layers, "keep_8bit_layers")
    num_bits_weight = check_weight_bits(num_bits_weight, "num_bits_weight")
    num_bits_activation = check_int(num_bits_activation, "num_bits_activation", 2, 8)
    qkeras = tfmot.quantization.keras
    scheme = MixedPrecisionQuantizeScheme(keep, num_bits_weight, num_bits_activation)
    try:
        annotated = qkeras.quantize_annotate_model(model)
        with qkeras.quantize_scope():
            return qkeras.quantize_apply(annotated, scheme=scheme)
    except (RuntimeError, ValueError) as exc:
        raise UnsupportedLayerError(f"TFMOT's n-bit scheme cannot quantize model {model.name!r}: {exc}. "
                                    f"Keep such a layer in float with qlab.qat.quantize.quantize_partial, "
                                    f"or replace it with a supported layer.") from exc


def weight_bits_by_layer(qat_model: Any) -> dict[str, int]:
    """``{original layer name: weight bits}`` for every weight-quantizing layer of a TFMOT model."""
    bits = {}
    for layer in qat_model.layers:
        config = getattr(layer, "quantize_config", None)
        inner = getattr(layer, "layer", None)
        if config is None or inner is None or type(inner).__name__ not in WEIGHT_LAYER_TYPES:
            continue
        settings = config.get_config()
        bits[inner.name] = int(settings.get("num_bits_weight", settings.get("num_bits", 8)))
    return bits


def mixed_precision_ptq_model(model: Any, keep_8bit_layers: Sequence[str], num_bits: int,
                              per_channel: bool = True) -> Any:
    """Post-training counterpart: batch norm folded, every weight layer not kept rounded to ``num_bits``.

    Convert it with ``int8_per_channel`` (the kept layers get the converter's 8-bit
    weights; the others keep their ``num_bits`` levels on the int8 grid, see
    :mod:`qlab.ptq.weight_bits`).
    """
    from qlab.ptq.weight_bits import fake_quantize_kernel, rounded_weights_model

    model = require_keras2_model(model)
    keep = _check_layer_names(model, keep_8bit_layers, "keep_8bit_layers")
    num_bits = check_weight_bits(num_bits)
    return rounded_weights_model(model, lambda kernel: fake_quantize_kernel(kernel, num_bits, per_channel),
                                 keep=keep)


#: TFLite ops that do the arithmetic of a layer (what is float in a float island).
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "MEAN",
               "AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "RELU", "RELU6", "SOFTMAX")


def float_island_counts(model_bytes: bytes) -> dict[str, int]:
    """Ops of a TFLite file by what they compute in, from :func:`qlab.conversion.tflite_file.op_table`.

    ``float_ops`` (compute ops reading float32), ``int8_ops`` (compute ops reading int8),
    ``quantize_ops`` and ``dequantize_ops`` (the borders of every float island) and ``ops``.
    """
    from qlab.conversion.tflite_file import op_table

    ops = op_table(model_bytes)
    compute = ops[ops["op"].isin(COMPUTE_OPS)]
    first_input = compute["input dtypes"].str.split(",").str[0].str.strip()
    return {"ops": int(len(ops)), "float_ops": int((first_input == "float32").sum()),
            "int8_ops": int((first_input == "int8").sum()),
            "quantize_ops": int((ops["op"] == "QUANTIZE").sum()),
            "dequantize_ops": int((ops["op"] == "DEQUANTIZE").sum())}
