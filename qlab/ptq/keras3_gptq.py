"""Keras 3's calibrated weight quantization (``model.quantize("gptq" | "awq")``), measured against rounding.

GPTQ (Frantar et al. 2022) and AWQ (Lin et al. 2023) choose 4-bit (GPTQ: 2, 3, 4 or 8-bit)
weights with calibration data: GPTQ pushes each weight's rounding error onto the weights not yet
rounded, weighted by the layer's input Hessian; AWQ scales input channels by how large their
activations are before rounding. Either way the stored integers should differ from plain
round-to-nearest, and :func:`keras3_calibrated_table` measures exactly that: the share of integer
weights that differ from round-to-nearest on the same grid (:func:`round_to_nearest`, numpy), next
to Keras accuracy, agreement with float and weight bytes in memory.

Measured on Keras 3.15.1 (the zoo's ``patch_encoder``, 128 training images): the share is 0.0 for
GPTQ and AWQ in groups of 128 and 32, and for 3-bit GPTQ - they store round-to-nearest's integers,
bit for bit, and at 4 bits score exactly what Keras's own int4 scores on the 10,000 test images. Cause:
``Model.quantize`` first switches each Dense/EinsumDense to the gptq/awq dtype policy, then
calibrates; the calibration hooks patch ``layer.call`` (``stream_hessians`` in
``keras/src/quantizers/gptq_core.py``, ``stream_activations`` in ``awq_core.py``), but
``Operation.__call__`` (``keras/src/ops/operation.py``) sends a layer with a quantization mode to
``quantized_call``, never to ``call``. The Hessian stays zero, ``GPTQ.quantize_and_correct_layer``
(``gptq.py``) turns it into a scaled identity, so ``gptq_quantize_matrix`` propagates no error;
AWQ's activation magnitudes stay zero, so every AWQ scale is 1. Fixed upstream in
keras-team/keras#23512; the table will show it the day Keras changes.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

#: Weight bits each method accepts (Keras's GPTQConfig and AWQConfig; int4 is 4 by name).
METHOD_BITS: dict[str, tuple[int, ...]] = {"int4": (4,), "gptq": (2, 3, 4, 8), "awq": (4,)}
#: ``(method, weight bits, group size)`` rows of :func:`keras3_calibrated_table` by default.
DEFAULT_ROWS: tuple[tuple[str, int, int], ...] = (
    ("int4", 4, 128), ("gptq", 4, 128), ("awq", 4, 128),
    ("int4", 4, 32), ("gptq", 4, 32), ("awq", 4, 32), ("gptq", 3, 128))


def check_row(method: Any, weight_bits: Any, group_size: Any) -> tuple[str, int, int]:
    """A valid ``(method, weight_bits, group_size)``; ``int4`` is Keras's round-to-nearest reference."""
    if method not in METHOD_BITS:
        raise ValueError(f"method must be one of {list(METHOD_BITS)}, got {method!r}")
    if weight_bits not in METHOD_BITS[method] or isinstance(weight_bits, bool):
        raise ValueError(f"weight_bits for {method} must be one of {METHOD_BITS[method]} (what Keras supports), "
                         f"got {weight_bits!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer (input values sharing one scale), got {group_size!r}")
    return method, weight_bits, group_size


def default_block_outputs() -> list[str]:
    """The zoo encoder's blocks for calibration: ending at each residual add, then at the logits."""
    from qlab.zoo.transformer import BLOCKS

    return [f"block{i}_residual2" for i in range(BLOCKS)] + ["logits"]


def sequential_blocks(model: Any, block_outputs: Sequence[str]) -> list[Any]:
    """``model`` cut into sub-models run one after another, each ending at a layer of ``block_outputs``.

    Keras calibrates block by block, feeding each block the previous one's outputs, the way a text
    model's transformer blocks follow each other. The first block starts at the model's input, so
    the embedding lies in a block and is calibrated too; the blocks share ``model``'s layers.
    """
    keras = _keras()
    if len(model.inputs) != 1:
        raise ValueError(f"calibrated quantization needs a model with one input, got {len(model.inputs)}")
    names = [layer.name for layer in model.layers]
    missing = [name for name in block_outputs if name not in names]
    if not block_outputs or missing:
        raise ValueError(f"block_outputs must name layers of the model that end each block, in order; "
                         f"not found: {missing or 'none given'}")
    starts = [model.inputs[0]] + [model.get_layer(name).output for name in block_outputs[:-1]]
    return [keras.Model(start, model.get_layer(end).output) for start, end in zip(starts, block_outputs)]


def calibration_config(model: Any, method: str, weight_bits: int, group_size: int, calibration: np.ndarray,
                       block_outputs: Sequence[str]) -> Any:
    """Keras's ``GPTQConfig`` or ``AWQConfig`` for ``model``, calibrated on ``calibration`` (one image a sample).

    Keras's calibration was written for token-id text models: it flattens ``dataset`` into one int32
    token stream, cuts windows of ``sequence_length`` tokens at an offset from Python's salted
    ``hash`` and runs each through ``pre_block_layers`` (a text model's embedding). Images are not
    token ids, so each "token" here is the index of one image (``sequence_length=1``: every image
    once, whatever the hash) and the one pre-block step looks it up. One image a sample, because
    Keras passes only ``block(x)[0]`` on to the next block.
    """
    keras = _keras()
    images = np.asarray(calibration, np.float32)

    def look_up(ids: Any) -> Any:
        return keras.ops.convert_to_tensor(images[np.asarray(ids).reshape(-1)])

    structure = {"pre_block_layers": [look_up], "sequential_blocks": sequential_blocks(model, block_outputs)}
    common = dict(dataset=[np.arange(len(images), dtype=np.int32)], tokenizer=lambda text: text,
                  num_samples=len(images), sequence_length=1, group_size=group_size,
                  quantization_layer_structure=structure)
    if method == "gptq":
        return keras.quantizers.GPTQConfig(weight_bits=weight_bits, **common)
    return keras.quantizers.AWQConfig(weight_bits=weight_bits, **common)


def calibrated_copy(model: Any, method: str, weight_bits: int, group_size: int, calibration: Any = None,
                    block_outputs: Sequence[str] | None = None) -> Any:
    """A copy of the Keras 3 ``model`` quantized by ``method``; ``model`` itself stays float.

    ``int4``: ``model.quantize`` with ``Int4QuantizationConfig(block_size=group_size)``, round to
    nearest. ``gptq``/``awq``: calibrated on ``calibration`` (inputs shaped like the model's, at
    least one), in the blocks ending at ``block_outputs`` (default :func:`default_block_outputs`).
    """
    import warnings

    from qlab.ptq.keras3_quantize import one_garbage_collection, quantized_copy
    from qlab.zoo.keras3 import copy_keras3_model, is_keras3_model

    method, weight_bits, group_size = check_row(method, weight_bits, group_size)
    if not is_keras3_model(model):
        raise TypeError(f"{method} is Keras 3's model.quantize: give a Keras 3 model (`import keras`), "
                        f"not {type(model).__module__}.{type(model).__name__}")
    if method == "int4":
        return quantized_copy(model, "int4", group_size)
    calibration = check_calibration(model, calibration)
    copy = copy_keras3_model(model)
    config = calibration_config(copy, method, weight_bits, group_size, calibration,
                                block_outputs or default_block_outputs())
    with warnings.catch_warnings(), one_garbage_collection():
        warnings.filterwarnings("ignore", message="Layer .* does not have a `quantize` method")
        copy.quantize(method, config=config)
    left_float = [layer.path for layer in quantized_layers(copy)
                  if not getattr(layer, f"is_{method}_calibrated", False)]
    if left_float:  # Keras leaves them float, beside integer buffers of zeros
        raise ValueError(f"layers {left_float} lie in no block of block_outputs, so {method} never quantized them")
    return copy


def check_calibration(model: Any, calibration: Any) -> np.ndarray:
    """``calibration`` as float32 inputs for ``model``: shaped like its input, at least one sample."""
    if calibration is None:
        raise ValueError("calibration data is required for gptq and awq: a few inputs shaped like the model's")
    x = np.asarray(calibration)
    expected = tuple(model.inputs[0].shape[1:])  # None: any length
    if x.ndim != len(expected) + 1 or any(e not in (None, n) for e, n in zip(expected, x.shape[1:])):
        raise ValueError(f"calibration must have shape (n, {', '.join(map(str, expected))}), got {x.shape}")
    if len(x) == 0:
        raise ValueError("calibration is empty: give at least one input (the lesson uses 128 training images)")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise ValueError("calibration must hold finite numbers")
    return x.astype(np.float32)


def quantized_layers(model: Any) -> list[Any]:
    """The Dense and EinsumDense layers of ``model`` that carry a quantization mode."""
    keras = _keras()
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) and layer.quantization_mode]


def integer_weights(layer: Any) -> np.ndarray:
    """A quantized layer's integer weights as ``(inputs, outputs)`` on the unsigned grid ``0 .. 2**bits - 1``.

    ``int4`` stores signed values -8 .. 7 in the kernel's shape; GPTQ and AWQ store 0 .. 15 (or
    0 .. 2**bits - 1) transposed, ``(outputs, inputs)``. ``layer.kernel`` unpacks both.
    """
    codes = _keras().ops.convert_to_numpy(layer.kernel).astype(np.int32)
    if layer.quantization_mode == "int4":
        return codes.reshape(-1, layer.kernel_scale.shape[-1]) + 8
    if layer.quantization_mode in ("gptq", "awq"):
        return codes.T
    raise ValueError(f"layer {layer.path} is {layer.quantization_mode!r}, not int4, gptq or awq")


def round_to_nearest(kernel: Any, weight_bits: int, group_size: int) -> np.ndarray:
    """Round-to-nearest integers of a float ``(inputs, outputs)`` kernel, as Keras's min/max grid defines them.

    Each output's inputs fall in groups of ``group_size``; a group's ``[min, max]`` maps onto
    ``0 .. 2**bits - 1`` with ``scale = (max - min) / (2**bits - 1)`` and ``zero = round(-min / scale)``,
    and ``q = clip(round(w / scale + zero))``. Zeros pad the last group when there are several
    (as Keras does), so they can widen its range.
    """
    w = np.asarray(kernel, np.float32).T  # (outputs, inputs): groups run along the inputs
    outputs, inputs = w.shape
    groups = -(-inputs // group_size)
    padded = np.pad(w, ((0, 0), (0, groups * group_size - inputs))) if groups > 1 else w
    grouped = padded.reshape(outputs, groups, -1)
    low, high = grouped.min(axis=2), grouped.max(axis=2)
    flat = low == high
    low, high = np.where(flat, low - 1, low), np.where(flat, high + 1, high)
    top = np.float32(2**weight_bits - 1)
    scale = (high - low) / top
    zero = np.round(-low / scale)
    group = np.arange(inputs) // group_size
    return np.clip(np.round(w / scale[:, group] + zero[:, group]), 0, top).astype(np.int32).T


def share_differing(quantized: Any, model: Any, weight_bits: int, group_size: int) -> float:
    """Share of ``quantized``'s integer weights that differ from round-to-nearest of ``model``'s float kernels."""
    floats = {layer.path: layer for layer in model._flatten_layers()}
    differing = total = 0
    for layer in quantized_layers(quantized):
        codes = integer_weights(layer)
        float_kernel = _keras().ops.convert_to_numpy(floats[layer.path].kernel)
        reference = round_to_nearest(float_kernel.reshape(codes.shape), weight_bits, group_size)
        differing += int(np.sum(codes != reference))
        total += codes.size
    if total == 0:
        raise ValueError("the quantized model has no int4, gptq or awq layer")
    return differing / total


def keras3_calibrated_table(model: Any, calibration: Any, x_test: np.ndarray, y_test: np.ndarray,
                            rows: Sequence[tuple[str, int, int]] = DEFAULT_ROWS,
                            block_outputs: Sequence[str] | None = None, files: bool = False) -> "pd.DataFrame":
    """GPTQ and AWQ beside round-to-nearest int4 on a Keras 3 classifier, measured.

    One row per ``(method, weight bits, group size)`` after a float row: Keras accuracy and top-1
    agreement with the float model on ``x_test``, weight bytes in memory, and ``differs from
    round-to-nearest``, the share of integer weights unlike :func:`round_to_nearest` of the float
    kernels (0.0: the method stored plain rounding, whatever its calibration). ``calibration``:
    inputs for GPTQ and AWQ (the lesson uses 128 training images); ``block_outputs``: see
    :func:`sequential_blocks`. ``files``: also convert each model with the TFLite converter as it
    is (:func:`qlab.ptq.keras3_quantize.quantized_file`) and add its bytes, constants by dtype and
    LiteRT accuracy. Taught in the transformer lesson.
    """
    import pandas as pd

    from qlab.ptq.keras3_quantize import weight_bytes
    from qlab.zoo.models import predict_keras

    rows = [check_row(*row) for row in rows]
    if any(method != "int4" for method, _, _ in rows):
        calibration = check_calibration(model, calibration)
    y_test = np.asarray(y_test)
    reference = predict_keras(model, x_test).argmax(axis=1)
    table = []
    for method, bits, group_size in [("float32", 32, None), *rows]:
        start = time.perf_counter()
        quantized = model if method == "float32" else calibrated_copy(model, method, bits, group_size,
                                                                      calibration, block_outputs)
        seconds = time.perf_counter() - start
        predicted = predict_keras(quantized, x_test).argmax(axis=1)
        row = {"method": method, "weight bits": bits, "group size": group_size or "-",
               "Keras accuracy": float(np.mean(predicted == y_test)),
               "agreement with float": float(np.mean(predicted == reference)),
               "weight bytes in memory": sum(weight_bytes(quantized).values()),
               "differs from round-to-nearest": (np.nan if method == "float32"
                                                 else share_differing(quantized, model, bits, group_size)),
               "quantize seconds": round(seconds, 1)}
        table.append({**row, **(_file_columns(quantized, x_test, y_test) if files else {})})
    return pd.DataFrame(table)


def _file_columns(quantized: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """What the converter as it is makes of ``quantized``: file bytes, constants by dtype, LiteRT accuracy."""
    from qlab.conversion.converter import RefusedConversion
    from qlab.conversion.tflite import evaluate_tflite
    from qlab.conversion.tflite_file import size_breakdown
    from qlab.ptq.keras3_quantize import quantized_file

    try:
        model_bytes = quantized_file(quantized)
    except RefusedConversion as exc:
        return {"file bytes": np.nan, "file constants": f"the converter refused: {exc.reason}",
                "LiteRT accuracy": np.nan}
    constants = {k: v for k, v in size_breakdown(model_bytes).items() if k not in ("scales_zero_points", "other")}
    return {"file bytes": len(model_bytes),
            "file constants": ", ".join(f"{k} {v:,} B" for k, v in sorted(constants.items(), key=lambda kv: -kv[1])),
            "LiteRT accuracy": evaluate_tflite(model_bytes, x_test, y_test)}


def _keras() -> Any:
    from qlab.zoo.keras3 import require_keras3

    return require_keras3()
