"""Running TFLite models: the LiteRT interpreter, accuracy, and batch-1 latency.

``ai_edge_litert.interpreter.Interpreter`` is TFLite's interpreter as its own
package (``tf.lite.Interpreter`` is deprecated); qlab falls back to the latter only
if LiteRT is not installed. int8 input and output tensors are quantized and
dequantized here with the tensor's own ``scale`` and ``zero_point``.

Used from ``04_post_training_quantization`` on; ``06_quantization_aware_training``
lists a converted file's ops with :func:`op_table` and ``07_custom_quantization``
reads its stored weights with :func:`weight_tensors`.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qlab.numerics import intkernels
from qlab.zoo.quiet import native_stderr_silenced

if TYPE_CHECKING:
    import pandas as pd


def make_interpreter(model_bytes: bytes, num_threads: int = 1) -> Any:
    """A LiteRT interpreter for a flatbuffer (``tf.lite.Interpreter`` if LiteRT is missing).

    Taught in ``04_post_training_quantization``; used again in
    ``06_quantization_aware_training``.
    """
    if not isinstance(model_bytes, (bytes, bytearray)):
        raise TypeError(f"model_bytes must be a TFLite flatbuffer (bytes), got "
                        f"{type(model_bytes).__name__}")
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - LiteRT is a dependency
        from qlab.zoo.keras2 import tf

        Interpreter = tf.lite.Interpreter
    with native_stderr_silenced():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=num_threads)
        interpreter.allocate_tensors()  # the delegate is applied (and announces itself) here
    return interpreter


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float data -> the input tensor's dtype, as TFLite's QUANTIZE op would do it.

    ``round(x / scale) + zero_point``, half away from zero, clamped
    (:func:`qlab.numerics.intkernels.quantize`). ``detail`` is the interpreter's
    input detail. Taught in ``04_post_training_quantization``.
    """
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    return intkernels.quantize(x, scale=scale, zero_point=zero_point, dtype=dtype)


def dequantize_output(q: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """An output tensor -> float32: ``(q - zero_point) * scale`` for integer tensors."""
    if not np.issubdtype(detail["dtype"], np.integer):
        return q.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def cpu_count() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _predict_batches(interpreter: Any, x: np.ndarray, starts: Sequence[int],
                     batch_size: int) -> list[np.ndarray]:
    inp = interpreter.get_input_details()[0]
    outputs, current = [], None
    for start in starts:
        batch = x[start:start + batch_size]
        if len(batch) != current:
            interpreter.resize_tensor_input(inp["index"], [len(batch), *x.shape[1:]])
            interpreter.allocate_tensors()
            current = len(batch)
            out = interpreter.get_output_details()[0]
        interpreter.set_tensor(inp["index"], quantize_input(batch, inp))
        interpreter.invoke()
        outputs.append(dequantize_output(interpreter.get_tensor(out["index"]), out))
    return outputs


def predict_tflite(model_bytes: bytes, x: np.ndarray, batch_size: int = 250,
                   num_threads: int = 1, workers: int | None = None) -> np.ndarray:
    """Float outputs (logits) of a TFLite model for every image in ``x``.

    The input is resized to ``batch_size`` so 10,000 images take 40 invokes, not
    10,000; the tests check this gives the same predictions as batch 1. The batches
    are shared out among ``workers`` threads (default: one per CPU core), each with
    its own interpreter: LiteRT releases the GIL while it computes, so the
    single-threaded 16x8 reference kernels finish about 2x sooner on 2 cores. Every
    image is computed the same way whatever the number of workers (tested).
    Taught in ``06_quantization_aware_training``.
    """
    if len(x) == 0:
        raise ValueError("x is empty: there are no images to run the model on")
    first = make_interpreter(model_bytes, num_threads)
    shape = tuple(first.get_input_details()[0]["shape"])
    if shape[1:] != x.shape[1:]:
        raise ValueError(f"x has shape {x.shape}, the model input is {shape}")
    starts = list(range(0, len(x), batch_size))
    workers = max(1, min(workers or cpu_count(), len(starts)))
    if workers == 1:
        return np.concatenate(_predict_batches(first, x, starts, batch_size))
    chunks = [list(chunk) for chunk in np.array_split(starts, workers)]
    interpreters = [first] + [make_interpreter(model_bytes, num_threads) for _ in chunks[1:]]
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(lambda job: _predict_batches(job[0], x, job[1], batch_size),
                         zip(interpreters, chunks))
        return np.concatenate([output for part in parts for output in part])


def evaluate_tflite(model_bytes: bytes, x: np.ndarray, y: np.ndarray, batch_size: int = 250) -> float:
    """Top-1 accuracy of a TFLite model on images ``x`` with integer labels ``y``.

    Taught in ``04_post_training_quantization``; used again in ``07_custom_quantization``.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    predictions = predict_tflite(model_bytes, x, batch_size).argmax(axis=1)
    return float(np.mean(predictions == np.asarray(y)))


@dataclass(frozen=True)
class LatencyStats:
    """Batch-1 latency of one model over ``runs`` invokes after a warm-up, in milliseconds."""

    median_ms: float
    min_ms: float
    max_ms: float
    runs: int

    def __repr__(self) -> str:
        return (f"LatencyStats(median {self.median_ms:.3f} ms, min {self.min_ms:.3f}, "
                f"max {self.max_ms:.3f}, {self.runs} runs)")


def measure_latency(model_bytes: bytes, runs: int = 200, warmup: int = 20,
                    num_threads: int = 1, x: np.ndarray | None = None) -> LatencyStats:
    """Time single-image ``invoke()`` calls: ``warmup`` untimed, then ``runs`` timed.

    The median resists the noise of a shared machine; compare models only with
    numbers measured in the same process, close together in time.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    interpreter = make_interpreter(model_bytes, num_threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    if x is None:
        x = np.random.default_rng(0).random(inp["shape"], dtype=np.float32)
    interpreter.set_tensor(inp["index"], quantize_input(x[:1], inp))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return LatencyStats(statistics.median(times), min(times), max(times), runs)


def tensor_summary(model_bytes: bytes) -> dict[str, Any]:
    """Input/output dtypes and quantization of a TFLite model, for display."""
    interpreter = make_interpreter(model_bytes)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return {"input_dtype": np.dtype(inp["dtype"]).name, "input_quantization": inp["quantization"],
            "output_dtype": np.dtype(out["dtype"]).name, "output_quantization": out["quantization"]}


def compare_latency(models: dict[str, bytes], runs: int = 200, warmup: int = 20, rounds: int = 4,
                    num_threads: int = 1) -> dict[str, LatencyStats]:
    """Batch-1 latency of several models, interleaved so machine noise hits them all alike.

    Each model gets ``warmup`` untimed invokes, then ``rounds`` rounds in which every
    model is timed for ``runs / rounds`` invokes in turn; the statistics are over all
    of a model's timed invokes. Ratios between models of one call are the fair ones.
    """
    if runs < rounds or warmup < 0:
        raise ValueError(f"runs must be >= rounds ({rounds}) and warmup >= 0, got runs={runs}, "
                         f"warmup={warmup}")
    interpreters = {}
    for name, model_bytes in models.items():
        interpreter = make_interpreter(model_bytes, num_threads)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        x = np.random.default_rng(0).random(inp["shape"], dtype=np.float32)
        interpreter.set_tensor(inp["index"], quantize_input(x, inp))
        for _ in range(warmup):
            interpreter.invoke()
        interpreters[name] = interpreter
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, interpreter in interpreters.items():
            for _ in range(runs // rounds):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: LatencyStats(statistics.median(t), min(t), max(t), len(t))
            for name, t in times.items()}


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


def interpreter_keeping_all_tensors(model_bytes: bytes) -> Any:
    """A LiteRT interpreter whose intermediate tensors stay readable after ``invoke``.

    It runs LiteRT's builtin kernels without the XNNPACK delegate, which would fuse the graph
    into one node. Used by :mod:`qlab.ptq.depth_error` and
    :func:`qlab.conversion.litert_quantizer.first_difference`.
    """
    if not isinstance(model_bytes, (bytes, bytearray)):
        raise TypeError(f"model_bytes must be a TFLite flatbuffer (bytes), got "
                        f"{type(model_bytes).__name__}")
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - LiteRT is a dependency
        from qlab.zoo.keras2 import tf

        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    import warnings

    with native_stderr_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": we are
        interpreter = Interpreter(
            model_content=bytes(model_bytes), experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    return interpreter
