"""What a ``.tflite`` file holds: its ops and the dtypes they compute in, its weights, where its bytes go.

A converted file is a FlatBuffer: an op graph, tensors with their quantization
parameters, and constant buffers. :func:`op_table` lists the ops as LiteRT runs them
(``CONV_2D`` on int8 inputs is an integer kernel; ``QUANTIZE``/``DEQUANTIZE`` mark the
borders of float islands), :func:`file_ops` reads the file's own op table (input,
output and weight dtypes, before any delegate), :func:`weight_tensors` and
:func:`file_weights` the stored weights, :func:`size_breakdown` where the bytes go and
:func:`integer_only_ops` which ops an integer-only chip could not run.

Taught in ``06_quantization_aware_training`` (:func:`op_table`), ``07_custom_quantization``
(:func:`weight_tensors`) and ``10_litert_quantizer`` (:func:`integer_only_ops`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qlab.conversion.tflite import make_interpreter

if TYPE_CHECKING:
    import pandas as pd


#: TFLite ops whose second input is a weight tensor.
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def operators(interpreter: Any) -> list[dict[str, Any]]:
    """The ops of the file an interpreter holds, in execution order, as LiteRT describes them.

    LiteRT offers this only through a private method; qlab calls it here and nowhere else.
    """
    # DELEGATE is XNNPACK's stand-in for the ops it took over, not an op of the file
    return [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]


def op_table(model_bytes: bytes) -> pd.DataFrame:
    """Every op of a TFLite model in execution order with the dtypes it reads and writes.

    Shows what a converted model really computes in: ``CONV_2D`` on int8 inputs is an
    integer kernel, on float32 a float one; ``QUANTIZE``/``DEQUANTIZE`` mark the borders.
    Taught in ``06_quantization_aware_training``.
    """
    import pandas as pd

    interpreter = make_interpreter(model_bytes)
    return pd.DataFrame([{"op": op["op_name"],
                          "input dtypes": ", ".join(np.dtype(t).name for t in op["operand_types"]),
                          "output dtype": ", ".join(np.dtype(t).name for t in op["result_types"])}
                         for op in operators(interpreter)])


def size_breakdown(model_bytes: bytes) -> dict[str, int]:
    """Bytes of a TFLite file by what they store: constant tensors per dtype, scales, the rest.

    Constant tensors (weights, biases) are the tensors no op produces and that are not
    model inputs. ``scales_zero_points`` is the quantization parameters of every tensor:
    the file stores each scale as float32 and each zero-point as int64 (12 bytes per
    channel). ``other`` is the rest of the flatbuffer: the op graph, tensor names and
    shapes. Neither of the last two shrinks with int8.
    """
    interpreter = make_interpreter(model_bytes)
    ops = operators(interpreter)
    produced = {int(i) for op in ops for i in op["outputs"]}
    produced |= {int(d["index"]) for d in interpreter.get_input_details()}
    used = {int(i) for op in ops for i in op["inputs"] if int(i) >= 0}
    breakdown: dict[str, int] = {}
    quant_bytes = 0
    for detail in interpreter.get_tensor_details():
        params = detail["quantization_parameters"]
        quant_bytes += 4 * params["scales"].size + 8 * params["zero_points"].size
        if detail["index"] in used and detail["index"] not in produced:
            dtype = np.dtype(detail["dtype"])
            nbytes = int(np.prod(detail["shape"])) * dtype.itemsize
            breakdown[dtype.name] = breakdown.get(dtype.name, 0) + nbytes
    breakdown["scales_zero_points"] = int(quant_bytes)
    breakdown["other"] = len(model_bytes) - sum(breakdown.values())
    return breakdown


def file_weights(model_bytes: bytes) -> list[tuple[dict[str, Any], str, np.ndarray]]:
    """``(tensor detail, op name, stored values)`` of the weight tensor of every conv/dense op.

    The values as the interpreter returns them (int8 for an integer file). The one reader
    behind :func:`weight_tensors` and the pruning and clustering tables
    (:mod:`qlab.compression.prune`, :mod:`qlab.compression.cluster`).
    """
    interpreter = make_interpreter(model_bytes)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = []
    for op in operators(interpreter):
        if op["op_name"] in WEIGHT_OPS:
            detail = details[int(op["inputs"][1])]
            found.append((detail, op["op_name"], np.array(interpreter.get_tensor(detail["index"]))))
    return found


def weight_tensors(model_bytes: bytes) -> pd.DataFrame:
    """The weight tensor of every conv/dense op of a TFLite model, read from the file.

    Columns: ``op``, ``tensor`` (its name), ``dtype``, ``shape``, ``scales`` (1:
    per-tensor, one per output channel: per-channel), ``distinct scales`` (the converter's
    per-tensor switch stores FULLY_CONNECTED weights with one scale per output channel, all
    equal: per-tensor in effect), ``levels`` (most distinct stored
    values in one channel, or in the tensor when per-tensor), ``min``/``max`` of the
    stored values and ``bytes`` (of the values as the interpreter returns them). A 4-bit
    model converted by TFLite shows at most 15 levels in [-7, 7]. The interpreter hands
    weights back as int8 even when the file stores them packed as INT4 (TF >= 2.16 does
    that for 4-bit per-tensor fake-quant); the file size tells the two apart.
    Taught in ``07_custom_quantization``.
    """
    import pandas as pd

    from qlab.numerics.compression import unique_values_per_channel

    rows = []
    for detail, op_name, values in file_weights(model_bytes):
        quant = detail["quantization_parameters"]
        scales = len(quant["scales"])
        axis = int(quant["quantized_dimension"]) if scales > 1 else None
        rows.append({"op": op_name, "tensor": detail["name"], "dtype": values.dtype.name,
                     "shape": tuple(int(s) for s in values.shape), "scales": scales,
                     "distinct scales": len(np.unique(quant["scales"])),
                     "levels": int(unique_values_per_channel(values, axis).max()),
                     "min": values.min().item(), "max": values.max().item(),
                     "bytes": int(values.nbytes)})
    return pd.DataFrame(rows)


def read_flatbuffer(model_bytes: Any, argument: str = "model_bytes") -> Any:
    """The parsed flatbuffer (``schema.ModelT``) of a ``.tflite``: what the file stores, before any interpreter.

    A TypeError when ``model_bytes`` is not bytes, a ValueError naming ``argument`` when it is
    not a ``.tflite`` file.
    """
    from ai_edge_litert import schema_py_generated as schema

    if not isinstance(model_bytes, (bytes, bytearray)):
        raise TypeError(f"{argument} must be the bytes of a .tflite file, got {type(model_bytes).__name__}")
    if len(model_bytes) < 8 or bytes(model_bytes[4:8]) != b"TFL3":
        raise ValueError(f"{argument} is not a readable .tflite flatbuffer (no TFL3 identifier in its first 8 "
                         "bytes)")
    try:
        return schema.ModelT.InitFromPackedBuf(bytes(model_bytes), 0)
    except Exception as error:  # a corrupt flatbuffer raises anything from struct to IndexError
        raise ValueError(f"{argument} is not a readable .tflite flatbuffer ({error})") from error


def enum_names(enum: Any) -> dict[int, str]:
    """``{value: name}`` of a flatbuffer schema enum (``schema.TensorType``, ``schema.BuiltinOperator``)."""
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def file_ops(model_bytes: bytes) -> list[dict[str, Any]]:
    """The ops of a ``.tflite``'s main graph as the file stores them, in execution order.

    Each: ``op`` (``CONV_2D``, ...), ``scope`` (its output tensor names, each followed by ``;``:
    the string a LiteRT Quantizer recipe's regex is searched in, as the Quantizer builds it),
    ``output_names``, ``inputs``/``outputs`` (tensor indices), ``input_shapes`` and ``types``
    (the stored types of every tensor it reads, then writes). Read by
    :mod:`qlab.conversion.litert_quantizer` and :func:`qlab.conversion.converter.weight_storage`.
    """
    from ai_edge_litert import schema_py_generated as schema

    flat = read_flatbuffer(model_bytes)
    op_names, type_names = enum_names(schema.BuiltinOperator), enum_names(schema.TensorType)
    graph, found = flat.subgraphs[0], []
    for op in graph.operators or []:
        code = flat.operatorCodes[op.opcodeIndex]
        inputs = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        outputs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        names = [graph.tensors[i].name.decode() for i in outputs]
        shapes = [tuple(int(d) for d in (graph.tensors[i].shape if graph.tensors[i].shape is not None else ()))
                  for i in inputs]
        found.append({"op": op_names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "CUSTOM"),
                      "scope": "".join(f"{name};" for name in names), "output_names": names, "input_shapes": shapes,
                      "inputs": inputs, "outputs": outputs,
                      "types": [type_names[graph.tensors[i].type] for i in inputs + outputs]})
    return found


#: Tensor types that an integer-only accelerator cannot take.
FLOAT_TYPES = ("FLOAT32", "FLOAT16", "BFLOAT16", "FLOAT64")


def op_counts(model_bytes: bytes) -> dict[str, int]:
    """``{op: how many times the main graph has it}``, most frequent first (from :func:`file_ops`)."""
    counts: dict[str, int] = {}
    for op in file_ops(model_bytes):
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def integer_only_ops(model_bytes: bytes) -> "pd.DataFrame":
    """Every op of a ``.tflite`` that is not integer-only, read from the file's own op table.

    An op is integer-only when no tensor it reads or writes is stored as a float type
    (:data:`FLOAT_TYPES`): what an integer-only accelerator (an Edge TPU, say) can run. QUANTIZE and
    DEQUANTIZE at a float border count, as does any op computing in float. Columns: ``op``,
    ``count``, ``float tensors`` (the float types it touches).
    """
    import pandas as pd

    counts: dict[str, list[Any]] = {}
    for op in file_ops(model_bytes):
        floats = sorted({t for t in op["types"] if t in FLOAT_TYPES})
        if floats:
            entry = counts.setdefault(op["op"], [0, set()])
            entry[0] += 1
            entry[1].update(floats)
    return pd.DataFrame([{"op": op, "count": n, "float tensors": ", ".join(sorted(types))}
                         for op, (n, types) in counts.items()], columns=["op", "count", "float tensors"])


def count_non_integer_ops(model_bytes: bytes) -> int:
    """How many ops of a ``.tflite`` are not integer-only (:func:`integer_only_ops`); 0 for a full-int8 file."""
    table = integer_only_ops(model_bytes)
    return int(table["count"].sum()) if len(table) else 0
