"""Running TFLite models: the LiteRT interpreter, accuracy, and batch-1 latency.

``ai_edge_litert.interpreter.Interpreter`` is TFLite's interpreter as its own
package (``tf.lite.Interpreter`` is deprecated); qlab falls back to the latter only
if LiteRT is not installed. int8 input and output tensors are quantized and
dequantized here with the tensor's own ``scale`` and ``zero_point``.

Used from ``04_post_training_quantization`` on. What a file holds (its ops, weights and
bytes) is read by :mod:`qlab.conversion.tflite_file`.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from qlab.numerics import intkernels
from qlab.zoo.quiet import native_stderr_silenced


#: LiteRT's kernel sets by qlab's name for them: ``"default"`` is what ``Interpreter()`` uses (the
#: optimized kernels plus the XNNPACK delegate), ``"optimized"`` the optimized kernels without a
#: delegate, ``"reference"`` the reference kernels the integer spec is written from (and TFLM's
#: kernels follow).
KERNELS = {"default": "AUTO", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


def op_resolver_type(kernels: str) -> Any:
    """LiteRT's ``OpResolverType`` for a name of :data:`KERNELS`; a ValueError names the valid ones."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {sorted(KERNELS)}, got {kernels!r}")
    try:
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:  # pragma: no cover - LiteRT is a dependency
        from qlab.zoo.keras2 import tf

        OpResolverType = tf.lite.experimental.OpResolverType
    return getattr(OpResolverType, KERNELS[kernels])


def make_interpreter(model_bytes: bytes, num_threads: int = 1, kernels: str = "default") -> Any:
    """A LiteRT interpreter for a flatbuffer (``tf.lite.Interpreter`` if LiteRT is missing).

    ``kernels`` picks LiteRT's kernel set (:data:`KERNELS`). Taught in
    ``04_post_training_quantization``; used again in ``06_quantization_aware_training``.
    """
    if not isinstance(model_bytes, (bytes, bytearray)):
        raise TypeError(f"model_bytes must be a TFLite flatbuffer (bytes), got "
                        f"{type(model_bytes).__name__}")
    resolver = op_resolver_type(kernels)
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - LiteRT is a dependency
        from qlab.zoo.keras2 import tf

        Interpreter = tf.lite.Interpreter
    with native_stderr_silenced():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=num_threads,
                                  experimental_op_resolver_type=resolver)
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
                   num_threads: int = 1, workers: int | None = None, kernels: str = "default") -> np.ndarray:
    """Float outputs (logits) of a TFLite model for every image in ``x``.

    The input is resized to ``batch_size`` so 10,000 images take 40 invokes, not
    10,000; the tests check this gives the same predictions as batch 1. The batches
    are shared out among ``workers`` threads (default: one per CPU core), each with
    its own interpreter: LiteRT releases the GIL while it computes, so the
    single-threaded 16x8 reference kernels finish about 2x sooner on 2 cores. Every
    image is computed the same way whatever the number of workers (tested). ``kernels``
    picks LiteRT's kernel set (:data:`KERNELS`). Taught in ``06_quantization_aware_training``.
    """
    if len(x) == 0:
        raise ValueError("x is empty: there are no images to run the model on")
    first = make_interpreter(model_bytes, num_threads, kernels)
    shape = tuple(first.get_input_details()[0]["shape"])
    if shape[1:] != x.shape[1:]:
        raise ValueError(f"x has shape {x.shape}, the model input is {shape}")
    starts = list(range(0, len(x), batch_size))
    workers = max(1, min(workers or cpu_count(), len(starts)))
    if workers == 1:
        return np.concatenate(_predict_batches(first, x, starts, batch_size))
    chunks = [list(chunk) for chunk in np.array_split(starts, workers)]
    interpreters = [first] + [make_interpreter(model_bytes, num_threads, kernels) for _ in chunks[1:]]
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
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - LiteRT is a dependency
        from qlab.zoo.keras2 import tf

        Interpreter = tf.lite.Interpreter
    import warnings

    with native_stderr_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": we are
        interpreter = Interpreter(
            model_content=bytes(model_bytes), experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=op_resolver_type("optimized"))
        interpreter.allocate_tensors()
    return interpreter
