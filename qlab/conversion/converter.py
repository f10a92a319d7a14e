"""Keras -> TFLite conversion for each post-training variant, by name.

The variant names are the rows of the results table. The post-training ones are
converted here from the float Keras model; the ``qat_*`` ones need a
quantization-aware model first (:mod:`qlab.qat.quantize`), then :func:`convert_qat`.
:func:`weight_storage` reads how a file stores each weight tensor (INT4 packs two
weights a byte; the interpreter hands them back unpacked as int8).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from qlab.zoo.quiet import tflite_chatter_silenced
from qlab.numerics.validate import check_names

if TYPE_CHECKING:
    import pandas as pd

#: Every variant of the results table, in display order, with what it means.
VARIANTS: dict[str, str] = {
    "float32": "no quantization: the float baseline",
    "float16": "weights stored as float16 (dequantized to float32 at load on the CPU)",
    "dynamic_int8": "dynamic range: int8 weights, activations quantized on the fly per batch",
    "int8_per_channel": "full integer: int8 weights (per-channel scales) and activations, "
                        "calibrated on a representative dataset; int8 input and output",
    "int8_per_tensor": "full integer as above with one scale per weight tensor "
                       "(per-channel disabled)",
    "int16x8": "int16 activations, int8 weights (TFLite's experimental 16x8 mode)",
    "qat_int8": "TFMOT quantize_model, fine-tuned with fake quantization from the data's "
                "activation ranges, converted to int8",
    "qat_partial": "only the Conv2D/Dense layers annotated (quantize_annotate_layer + "
                   "quantize_apply), fine-tuned, converted: the rest stays float32 behind "
                   "QUANTIZE/DEQUANTIZE ops (an anti-pattern, measured in 07)",
    "qat_4bit": "TFMOT DefaultNBitQuantizeScheme (4-bit weights, 8-bit activations), fine-tuned "
                "from the data's activation ranges, converted: conv, depthwise and dense weights "
                "stored as INT4; int8 input and output",
    "pruned_int8": "Deep Compression: magnitude-pruned (TFMOT prune_low_magnitude) and fine-tuned, "
                   "then int8_per_channel; the zeros shrink the file only once it is compressed",
    "clustered_int8": "Deep Compression: weights clustered to a few shared values (TFMOT "
                      "cluster_weights) and fine-tuned, then int8_per_channel",
    "pqat_int8": "Deep Compression: pruned, then pruning-preserving QAT (the zeros stay zero), int8",
    "cqat_int8": "Deep Compression: clustered, then cluster-preserving QAT (the shared values stay "
                 "shared), int8",
    "pcqat_int8": "Deep Compression: pruned, clustered keeping the zeros, then sparsity- and "
                  "cluster-preserving QAT, int8: the zoo's smallest compressed 8-bit file",
    "aeq_int8_per_channel": "LiteRT Quantizer (ai-edge-quantizer) on the float32 file, recipe static_wi8_ai8: "
                            "int8 weights per channel and int8 activations, calibrated on int8_per_channel's images "
                            "with the Quantizer's moving-average ranges",
    "aeq_int8_per_tensor": "LiteRT Quantizer static int8 as above, one scale per weight tensor (TENSORWISE)",
    "aeq_dynamic_int8": "LiteRT Quantizer dynamic_wi8_afp32: int8 weights per channel, float activations "
                        "quantized on the fly",
    "aeq_int4_weight_only": "LiteRT Quantizer weight-only recipe, layered like aeq_int4_static: INT4 weights per "
                            "channel for CONV_2D and FULLY_CONNECTED, int8 for the rest (depthwise), dequantized "
                            "to float32 in the file (DEQUANTIZE ops) for float kernels",
    "aeq_int4_static": "LiteRT Quantizer layered static recipe: int8 for every op, then INT4 weights (per channel) "
                       "for CONV_2D and FULLY_CONNECTED, the only ops with 4-bit static weights; int8 activations",
    "aeq_int4_blockwise": "LiteRT Quantizer layered dynamic recipe: int8 weights for every op, INT4 per channel for "
                          "CONV_2D, INT4 in blocks of 32 input values (one scale each) for FULLY_CONNECTED; float "
                          "activations quantized on the fly",
}
PTQ_VARIANTS = ("float32", "float16", "dynamic_int8", "int8_per_channel", "int8_per_tensor",
                "int16x8")
QAT_VARIANTS = ("qat_int8", "qat_partial", "qat_4bit")
#: Fine-tuned by :mod:`qlab.compression.deep_compression` (pruning, clustering, preserving QAT).
DC_VARIANTS = ("pruned_int8", "clustered_int8", "pqat_int8", "cqat_int8", "pcqat_int8")
#: Made by the LiteRT Quantizer from the float32 file (:mod:`qlab.conversion.litert_quantizer`).
AEQ_VARIANTS = ("aeq_int8_per_channel", "aeq_int8_per_tensor", "aeq_dynamic_int8", "aeq_int4_weight_only",
                "aeq_int4_static", "aeq_int4_blockwise")
#: Keras 3's own quantization (``model.quantize``, :mod:`qlab.ptq.keras3_quantize`), then the converter as it
#: is: variants of a Keras 3 model only, added to its ``"all"``. Only Dense, EinsumDense and Embedding take part.
KERAS3_VARIANTS: dict[str, str] = {
    "keras_int8": "Keras 3's model.quantize(\"int8\"): int8 Dense/EinsumDense/Embedding weights (one scale per "
                  "output channel), activations quantized on the fly in Keras; then the converter with no options",
    "keras_int4": "Keras 3's model.quantize(\"int4\"): 4-bit weights only, in blocks of 128 input values that share "
                  "a scale (Keras's default block_size); then the converter with no options",
    "keras_int4_per_channel": "Keras 3's model.quantize with Int4QuantizationConfig(block_size=None): 4-bit weights "
                              "only, one scale per output channel; then the converter with no options",
}
#: The Deep Compression issue's bars, per zoo model: the best of its Deep Compression files must be at
#: least this many times smaller than float32 once both are compressed (gzip -9), losing at most this
#: many points of accuracy. Lesson 09 (:func:`qlab.workbook.studies.deep_compression.best_pipeline`) and the
#: benchmark's goals judge against the same numbers.
DC_BARS: dict[str, tuple[float, float]] = {"mnist_cnn": (12.0, 0.3), "mobilenet_v1": (8.0, 0.5),
                                           "mobilenet_v2": (8.0, 0.5)}
#: Variants whose conversion needs a representative dataset.
NEEDS_CALIBRATION = ("int8_per_channel", "int8_per_tensor", "int16x8")
DEFAULT_CALIBRATION_SAMPLES = 500
#: Training images a zoo model's int8 files are calibrated on, per model size.
CALIBRATION_SAMPLES = {"full": DEFAULT_CALIBRATION_SAMPLES, "smoke": 100}


def check_variants(variants: str | Sequence[str], keras3: bool = False, model: str = "the model") -> list[str]:
    """Normalise ``"all"``, a comma list or a sequence of names; raise on unknown names.

    ``keras3``: the model is a Keras 3 one, so :data:`KERAS3_VARIANTS` are valid too and ``"all"``
    includes them (Keras 3's own quantization is the route a Keras 3 user meets first, and costs seconds).
    Without it, naming one of them is a ValueError (``model`` names the model in it): ``model.quantize``
    is Keras 3's API.
    """
    names = check_names(variants, [*VARIANTS, *KERAS3_VARIANTS], "variants")
    if variants == "all" and not keras3:
        return list(VARIANTS)
    keras_only = [v for v in names if v in KERAS3_VARIANTS]
    if keras_only and not keras3:
        raise ValueError(f"variants {keras_only} are Keras 3's own model.quantize modes, which only a Keras 3 "
                         f"model (import keras) has, and {model} is a tf_keras model; its variants: "
                         f"{', '.join(VARIANTS)} (or 'all')")
    return names


def representative_dataset(x: np.ndarray, num_samples: int = DEFAULT_CALIBRATION_SAMPLES,
                           input_shape: Sequence[int | None] | None = None
                           ) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A TFLite ``representative_dataset``: yields the first ``num_samples`` images one at a time.

    Args:
        x: float32 images shaped like the model input, batch first.
        num_samples: how many to use for calibration (at most ``len(x)``).
        input_shape: the model's input shape (e.g. ``model.input_shape``); when given,
            ``x`` is checked against it so a mismatch fails here with a clear message
            instead of deep inside the converter.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"representative data must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise ValueError(f"representative data must be float32 like the model input, got dtype "
                         f"{x.dtype}; preprocess it the way the model was trained "
                         "(e.g. qlab.zoo.models.mnist_for)")
    if input_shape is not None:
        expected = tuple(input_shape)[1:]
        if x.ndim != len(expected) + 1 or any(e is not None and e != a
                                               for e, a in zip(expected, x.shape[1:])):
            raise ValueError(f"representative data has shape {x.shape}, the model input is "
                             f"{tuple(input_shape)} (batch first)")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
            or not 1 <= num_samples <= len(x):
        raise ValueError(f"num_samples must be an integer in [1, {len(x)}], got {num_samples!r}")
    samples = x[:num_samples]

    def generator() -> Iterator[list[np.ndarray]]:
        for i in range(len(samples)):
            yield [samples[i:i + 1]]

    return generator


def _export_inference_function(model: Any, directory: str) -> None:
    """Save only ``model``'s inference function (and its variables) as a SavedModel.

    ``TFLiteConverter.from_keras_model`` first saves the model through Keras's
    legacy SavedModel path, which traces every layer's call functions for
    serialization: 90% of the conversion time (about 15 of 18 s for MobileNetV2
    here). The converter needs only the inference graph; exporting just that gives
    the same flatbuffer (same size, tensor names and outputs) about 3x faster.
    """
    from qlab.zoo.keras2 import tf

    specs = [tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
             for tensor, name in zip(model.inputs, model.input_names)]

    def serve(*inputs: Any) -> dict[str, Any]:
        outputs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(model.output_names, outputs))

    module = tf.Module()
    module.model_variables = list(model.variables)  # tracked, so the SavedModel stores them
    module.serve = tf.function(serve, input_signature=specs)
    tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})


@contextlib.contextmanager
def keras_converter(model: Any, exported: str | None = None) -> Iterator[Any]:
    """A ``TFLiteConverter`` for a Keras model, valid inside the ``with`` block.

    A Keras 2 model goes via a lean SavedModel in a temporary directory (see
    :func:`_export_inference_function`), removed on exit: like
    ``tf.lite.TFLiteConverter.from_keras_model(model)``, without the training state. A
    Keras 3 model goes to ``from_keras_model`` as it is (:mod:`qlab.zoo.keras3`).
    ``exported``: a directory :func:`export_once` already exported ``model`` to, so that
    several variants of one model share one export.
    """
    from qlab.zoo.keras2 import require_keras2_model, tf
    from qlab.zoo.keras3 import is_keras3_model

    if is_keras3_model(model):
        yield tf.lite.TFLiteConverter.from_keras_model(model)
        return
    model = require_keras2_model(model)
    if exported is not None:
        yield tf.lite.TFLiteConverter.from_saved_model(exported)
        return
    with tempfile.TemporaryDirectory(prefix="qlab-convert-") as directory:
        with tflite_chatter_silenced():
            _export_inference_function(model, directory)
        yield tf.lite.TFLiteConverter.from_saved_model(directory)


def export_once(model: Any, directory: str) -> Callable[[], str | None]:
    """A callable that exports ``model``'s inference graph to ``directory`` on its first call and
    returns the directory (None for a Keras 3 model, which converts without an export).

    The export is most of a conversion's time (two thirds for a MobileNet); a comparison that
    converts one float model to several variants exports it once. ``model`` must not change
    while the callable is in use, and ``directory`` must outlive it.
    """
    from qlab.zoo.keras3 import is_keras3_model

    def exported() -> str | None:
        if is_keras3_model(model):
            return None
        if not os.path.exists(os.path.join(directory, "saved_model.pb")):
            with tflite_chatter_silenced():
                _export_inference_function(model, directory)
        return directory

    return exported


def _run_converter(converter: Any) -> bytes:
    # Keras 3's export prints the signature of the function it saves: noise in a lesson
    with contextlib.redirect_stdout(io.StringIO()), tflite_chatter_silenced():
        return converter.convert()


def configure(converter: Any, variant: str, representative_data: Callable | None) -> Any:
    """Set a ``TFLiteConverter``'s options for a post-training ``variant``."""
    from qlab.zoo.keras2 import tf

    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant in NEEDS_CALIBRATION:
        if representative_data is None:
            raise ValueError(f"variant {variant!r} needs representative_data "
                             "(see qlab.conversion.converter.representative_dataset)")
        converter.representative_dataset = representative_data
    if variant in ("int8_per_channel", "int8_per_tensor"):
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if variant == "int8_per_tensor":
        # private but long-standing switch; the public API has no per-tensor option. In TF 2.21
        # FULLY_CONNECTED weights still carry one scale per output channel, but all equal.
        converter._experimental_disable_per_channel = True
    if variant == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter


def convert(model: Any, variant: str, representative_data: np.ndarray | Callable | None = None,
            num_samples: int = DEFAULT_CALIBRATION_SAMPLES, exported: str | None = None) -> bytes:
    """Convert a float Keras 2 model to a TFLite flatbuffer for a post-training ``variant``.

    Taught in ``04_post_training_quantization``; used again in ``07_custom_quantization``.

    Args:
        model: the trained float model.
        variant: one of :data:`PTQ_VARIANTS` (``qat_*`` variants: :func:`convert_qat`).
        representative_data: calibration images (an array, checked against the model
            input) or a ready ``representative_dataset`` callable; needed by the
            full-integer and 16x8 variants.
        num_samples: how many images of an array to calibrate on.
        exported: where :func:`export_once` exported ``model`` already (the same file, sooner).
    """
    check_variants([variant])
    if variant in QAT_VARIANTS:
        raise ValueError(f"variant {variant!r} needs a quantization-aware model: use "
                         "qlab.qat.quantize to make one and qlab.conversion.converter.convert_qat to convert it")
    if variant not in PTQ_VARIANTS:
        raise ValueError(f"variant {variant!r} is not converted directly from the float model: "
                         f"qlab.conversion.convert makes {', '.join(PTQ_VARIANTS)}")
    if isinstance(representative_data, np.ndarray):
        representative_data = representative_dataset(
            representative_data, min(num_samples, len(representative_data)), model.input_shape)
    with keras_converter(model, exported) as converter:
        return _run_converter(configure(converter, variant, representative_data))


def convert_qat(qat_model: Any, int8_io: bool = True) -> bytes:
    """Convert a TFMOT quantization-aware model to an integer TFLite model.

    The fake-quant ranges learned during fine-tuning become the quantization
    parameters, so no representative dataset is needed. With ``int8_io`` the
    input and output tensors are int8 as well (like ``int8_per_channel``).
    Weights fake-quantized to 4 bits per tensor or per output channel (TFMOT's
    ``DefaultNBitQuantizeScheme``) are stored as INT4 (see :func:`weight_storage`).
    Taught in ``06_quantization_aware_training``; used again in ``07_custom_quantization``.
    """
    from qlab.zoo.keras2 import tf

    with keras_converter(qat_model) as converter:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return _run_converter(converter)


def try_convert_qat(qat_model: Any, int8_io: bool = False) -> tuple[bytes | None, str]:
    """:func:`convert_qat`, but a converter refusal is returned, not raised.

    Returns:
        ``(flatbuffer, "")`` when the model converts, ``(None, reason)`` when the TFLite
        converter rejects it (``reason`` is the converter's own error line) - for
        showing which fake-quantized models deploy and which do not.

    Taught in ``07_custom_quantization``.
    """
    try:
        return convert_qat(qat_model, int8_io), ""
    except Exception as exc:  # TFLite's ConverterError; qlab imports TensorFlow only in _keras
        reason = converter_refusal(exc)
        if reason is None:
            raise
        return None, reason


#: How the post-training calibrator says it has no quantized kernel for an op (a RuntimeError).
_CALIBRATOR_REFUSALS = ("not yet supported for op", "Quantization not yet supported")


class RefusedConversion(RuntimeError):
    """The converter refused the model a variant made (``keras_model``, still measurable in Keras).

    Raised for Keras 3's ``model.quantize`` variants (:func:`qlab.ptq.keras3_quantize.keras3_variant`):
    the quantized Keras model exists and has an accuracy even when no file can be made from it.
    """

    def __init__(self, reason: str, keras_model: Any):
        super().__init__(f"the converter refused: {reason}")
        self.reason, self.keras_model = reason, keras_model


def converter_refusal(exc: BaseException) -> str | None:
    """The TFLite converter's own reason when ``exc`` is it refusing a model, else None.

    Two kinds count: a ``ConverterError`` (MLIR legalization; its first ``error:`` line is
    the reason) and the post-training calibrator's RuntimeError for an op it cannot quantize,
    e.g. "Quantization to 16x8-bit not yet supported for op: 'NEG'." Any other exception is a
    bug, not a refusal, and gets None.
    """
    if isinstance(exc, RefusedConversion):
        return exc.reason
    text = str(exc)
    if type(exc).__name__ == "ConverterError":
        lines = [line for line in text.splitlines() if "error:" in line]
        reason = lines[0].split("error:", 1)[1].strip() if lines else text.strip()
        op_message = re.search(r"'[\w.]+' op .*", reason)  # without MLIR's long loc(...) prefix
        return op_message.group(0) if op_message else reason
    if isinstance(exc, RuntimeError) and any(marker in text for marker in _CALIBRATOR_REFUSALS):
        return next(line.strip() for line in text.splitlines() if any(m in line for m in _CALIBRATOR_REFUSALS))
    return None


def refused_layer(exc: BaseException, layer_names: Sequence[str]) -> str | None:
    """The layer a converter refusal happened in, read from the ``loc(...)`` of its ``ConverterError``, or None.

    MLIR names each op by its TensorFlow scope, e.g. ``"svdnet_1/my_svd_1/Svd"``: the layer ``my_svd``
    (Keras adds ``_1`` to a scope per call). The first scope part that is one of ``layer_names`` wins.
    """
    for scope in re.findall(r'fused\["[^"]*", "([^"@]+)', str(exc)):
        for part in scope.split("/"):
            name = next((n for n in (part, re.sub(r"_\d+$", "", part)) if n in layer_names), None)
            if name is not None:
                return name
    return None


def weight_storage(model_bytes: bytes) -> pd.DataFrame:
    """How a TFLite file stores the weight tensor of each conv/dense op, read from the flatbuffer.

    The interpreter reports INT4 weights as int8 (it unpacks them), so this reads the
    tensor type the file declares. Columns: ``op``, ``tensor`` (its name), ``stored type``
    (``INT4``, ``INT8``, ``FLOAT32``, ...), ``shape``, ``values`` and ``file bytes`` (of its
    buffer: half a byte a value for INT4). ``07_custom_quantization`` counts the stored types
    per op with :func:`weight_types_by_op`.
    """
    import pandas as pd

    from qlab.conversion.tflite_file import WEIGHT_OPS, file_ops, read_flatbuffer

    flat, rows = read_flatbuffer(model_bytes), []
    graph = flat.subgraphs[0]
    for op in file_ops(model_bytes):
        if op["op"] not in WEIGHT_OPS:
            continue
        tensor = graph.tensors[op["inputs"][1]]
        data = flat.buffers[tensor.buffer].data
        shape = op["input_shapes"][1]
        rows.append({"op": op["op"], "tensor": tensor.name.decode(), "stored type": op["types"][1],
                     "shape": shape, "values": int(np.prod(shape)),
                     "file bytes": 0 if data is None else len(data)})
    return pd.DataFrame(rows, columns=["op", "tensor", "stored type", "shape", "values", "file bytes"])


def weight_types_by_op(model_bytes: bytes) -> dict[str, dict[str, int]]:
    """``{op: {stored type: number of weight tensors}}``: which ops got INT4 weights, which did not.

    E.g. ``{"CONV_2D": {"INT4": 2}, "FULLY_CONNECTED": {"INT4": 2}}`` for the ``qat_4bit``
    mnist_cnn (see :func:`weight_storage`).
    """
    table = weight_storage(model_bytes)
    types: dict[str, dict[str, int]] = {}
    for op, kind in zip(table["op"], table["stored type"]):
        types.setdefault(op, {})
        types[op][kind] = types[op].get(kind, 0) + 1
    return types
