"""Keras 3's own quantization (``model.quantize``), measured: in Keras, and what reaches a ``.tflite``.

A Keras 3 user meets ``model.quantize("int8" | "int4" | ...)`` before TFMOT or the converter:

- ``int8``: int8 weights (one scale per output channel) and activations quantized on the fly;
- ``int4``: 4-bit weights only, in blocks of ``block_size`` input values that share a scale
  (``keras.quantizers.Int4QuantizationConfig(block_size=...)``; None: one scale per channel).

Only ``Dense``, ``EinsumDense`` and ``Embedding`` layers take part, exactly a transformer's
weights. Whether the integer weights survive into a LiteRT file is not documented, so
:func:`keras3_quantization_table` measures it: accuracy in Keras, weight bytes in memory, then
the TFLite converter on the quantized model - what the file stores, its ops, its accuracy
through LiteRT - or the converter's refusal. The same modes are variants of the results table for
a Keras 3 model (:data:`VARIANT_MODES`, :func:`keras3_variant`; ``qlab.compare_keras_model``).
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from typing import Any, Iterator, Sequence

import numpy as np

#: ``(mode, block size)`` rows of :func:`keras3_quantization_table` by default.
DEFAULT_MODES: tuple[tuple[str, int | None], ...] = (("int8", None), ("int4", 128), ("int4", 32),
                                                      ("int4", None))
MODES = ("int8", "int4")
#: ``(mode, block size)`` of each Keras 3 variant of the results table
#: (:data:`qlab.conversion.converter.KERAS3_VARIANTS`); 128 is Keras's own default block size.
VARIANT_MODES: dict[str, tuple[str, int | None]] = {"keras_int8": ("int8", None), "keras_int4": ("int4", 128),
                                                    "keras_int4_per_channel": ("int4", None)}


def check_mode(mode: Any, block_size: Any = None) -> tuple[str, int | None]:
    """A valid ``(mode, block_size)``: ``int8`` has no blocks, ``int4`` a positive block size or None."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (Keras 3's model.quantize), got {mode!r}")
    if mode == "int8" and block_size is not None:
        raise ValueError(f"int8 has no block size (one scale per output channel), got block_size={block_size!r}")
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int)
                                   or block_size < 1):
        raise ValueError(f"block_size must be a positive integer or None (per channel), got {block_size!r}")
    return mode, block_size


def quantized_copy(model: Any, mode: str, block_size: int | None = None) -> Any:
    """A copy of the Keras 3 ``model`` after ``model.quantize``; ``model`` itself is left float.

    ``int4`` with ``block_size`` None uses one scale per output channel.
    """
    from qlab.zoo.keras3 import copy_keras3_model, is_keras3_model, require_keras3

    keras = require_keras3()
    mode, block_size = check_mode(mode, block_size)
    if not is_keras3_model(model):
        raise TypeError("model.quantize is Keras 3's API: give a Keras 3 model (`import keras`), "
                        f"not {type(model).__module__}.{type(model).__name__}")
    copy = copy_keras3_model(model)
    with warnings.catch_warnings(), one_garbage_collection():
        # only Dense, EinsumDense and Embedding take part: that is the point
        warnings.filterwarnings("ignore", message="Layer .* does not have a `quantize` method")
        if mode == "int8":
            copy.quantize("int8")
        else:
            copy.quantize(config=keras.quantizers.Int4QuantizationConfig(block_size=block_size))
    return copy


@contextlib.contextmanager
def one_garbage_collection() -> Iterator[None]:
    """One garbage collection at the end instead of one per replaced kernel.

    Keras's ``Layer.__delattr__`` runs a full ``gc.collect()`` each time ``quantize`` drops a float
    kernel, to free accelerator memory at once; in a process holding TensorFlow that took 5 of the
    5.5 s of quantizing the transformer here, for CPU memory that one collection frees as well.
    """
    collect = gc.collect
    gc.collect = lambda generation=2: 0
    try:
        yield
    finally:
        gc.collect = collect
        gc.collect()


def keras3_variant(model: Any, variant: str) -> tuple[bytes, Any]:
    """``(tflite bytes, the quantized Keras 3 model)`` for a Keras 3 variant of the results table.

    ``model.quantize`` on a copy (:func:`quantized_copy`, :data:`VARIANT_MODES`), then the converter as it is.
    A refusal raises :class:`qlab.conversion.converter.RefusedConversion`, which carries the quantized model,
    so the table still shows its accuracy in Keras and its weight bytes in memory.
    """
    if variant not in VARIANT_MODES:
        raise ValueError(f"variant must be one of {list(VARIANT_MODES)} (Keras 3's model.quantize), got {variant!r}")
    quantized = quantized_copy(model, *VARIANT_MODES[variant])
    return quantized_file(quantized), quantized


def quantized_file(quantized: Any) -> bytes:
    """The TFLite converter as it is (no options of its own) on a Keras 3 model, quantized or not.

    Raises :class:`qlab.conversion.converter.RefusedConversion` (carrying ``quantized``) when the converter
    refuses it; any other error is raised as it is.
    """
    from qlab.conversion.converter import RefusedConversion, convert, converter_refusal

    try:
        return convert(quantized, "float32")
    except Exception as exc:  # a refusal is the result; anything else is a bug
        reason = converter_refusal(exc)
        if reason is None:
            raise
        raise RefusedConversion(reason, quantized) from None


def weight_bytes(model: Any) -> dict[str, int]:
    """Bytes of a model's variables in memory, by dtype (``int8``, ``float32``, ...)."""
    totals: dict[str, int] = {}
    for variable in model.weights:
        dtype = np.dtype(str(variable.dtype))
        totals[dtype.name] = totals.get(dtype.name, 0) + int(np.prod(variable.shape)) * dtype.itemsize
    return totals


def _file_columns(model_bytes: bytes, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """What a converted file stores and computes: its bytes, constants by dtype, key ops, accuracy."""
    from qlab.conversion.tflite import evaluate_tflite
    from qlab.conversion.tflite_file import count_non_integer_ops, op_counts, size_breakdown

    ops = op_counts(model_bytes)
    constants = {k: v for k, v in size_breakdown(model_bytes).items() if k not in ("scales_zero_points", "other")}
    return {"file bytes": len(model_bytes),
            "file constants": ", ".join(f"{k} {v:,} B" for k, v in sorted(constants.items(), key=lambda kv: -kv[1])),
            "FULLY_CONNECTED": int(ops.get("FULLY_CONNECTED", 0)), "BATCH_MATMUL": int(ops.get("BATCH_MATMUL", 0)),
            "dequantize ops (CAST, DEQUANTIZE)": int(ops.get("CAST", 0) + ops.get("DEQUANTIZE", 0)),
            "ops not integer-only": count_non_integer_ops(model_bytes),
            "LiteRT accuracy": evaluate_tflite(model_bytes, x_test, y_test)}


def keras3_quantization_table(model: Any, x_test: np.ndarray, y_test: np.ndarray,
                              modes: Sequence[tuple[str, int | None]] = DEFAULT_MODES,
                              float_file: bytes | None = None) -> "pd.DataFrame":
    """Each ``(mode, block size)`` of ``model.quantize`` on a Keras 3 classifier, in Keras and as a file.

    One row per mode after a float row: Keras accuracy and top-1 agreement with the float
    model on ``x_test``, weight bytes in memory (total and int8), then the TFLite converter
    on the quantized model: ``converted`` (or the converter's refusal in ``note``), the file's
    bytes, its constant tensors by dtype, its FULLY_CONNECTED / BATCH_MATMUL / dequantizing
    ops, its ops that are not integer-only, and its accuracy through LiteRT.
    ``float_file``: ``model``'s float ``.tflite`` if already converted (``convert(model, "float32")``),
    the float row's file; None converts it here. Taught in the transformer lesson.
    """
    import pandas as pd

    from qlab.conversion.converter import RefusedConversion
    from qlab.conversion.tflite_file import read_flatbuffer
    from qlab.zoo.models import predict_keras

    modes = [check_mode(*m) for m in modes]
    if float_file is not None:
        read_flatbuffer(float_file, "float_file")  # bytes that are not a .tflite fail here, named
    y_test = np.asarray(y_test)
    reference = predict_keras(model, x_test).argmax(axis=1)
    rows = []
    for mode, block_size in [("float32", None), *modes]:
        quantized = model if mode == "float32" else quantized_copy(model, mode, block_size)
        predicted = reference if quantized is model else predict_keras(quantized, x_test).argmax(axis=1)
        in_memory = weight_bytes(quantized)
        row = {"mode": mode, "block size": "-" if mode != "int4" else (block_size or "per channel"),
               "Keras accuracy": float(np.mean(predicted == y_test)),
               "agreement with float": float(np.mean(predicted == reference)),
               "weight bytes in memory": sum(in_memory.values()), "int8 bytes in memory": in_memory.get("int8", 0)}
        try:
            model_bytes = float_file if mode == "float32" and float_file is not None else quantized_file(quantized)
        except RefusedConversion as exc:
            rows.append({**row, "converted": False, "note": f"the converter refused: {exc.reason}"})
            continue
        rows.append({**row, "converted": True, **_file_columns(model_bytes, x_test, y_test)})
    return pd.DataFrame(rows)
