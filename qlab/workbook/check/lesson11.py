"""Checks for ``11_transformers``: a mixed-bit recipe graded by the file it makes, kernel ranges by the file's scales.

Both references are the LiteRT Quantizer's own output: the recipe is applied to the lesson's
float file and the new file's FULLY_CONNECTED weights are read back (stored type, by scope);
the per-channel ranges are set beside the scales the Quantizer stored for the same kernels.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from qlab.workbook.check import CORRECT, NotDone, exercise_check

#: Test images the learner's file is run on.
CHECK_IMAGES = 500
#: The scopes of the encoder's layer groups in its float file (as ``qlab.ptq.layer_bits.ENCODER_GROUPS``).
ATTENTION, FEED_FORWARD = r".*_attention_1/.*", r".*_ff[12]_1/.*"


def _stored_weights(model_bytes: bytes) -> list[tuple[str, str]]:
    """``(scope, stored weight type)`` of every FULLY_CONNECTED op of a file, in execution order."""
    from qlab.conversion.tflite_file import file_ops

    return [(op["scope"], op["types"][1]) for op in file_ops(model_bytes) if op["op"] == "FULLY_CONNECTED"]


def _types_in(stored: list[tuple[str, str]], scope: str) -> set[str]:
    return {kind for name, kind in stored if re.fullmatch(scope, name)}


@exercise_check("11.keep_attention", "2-bit feed-forward weights, the attention projections kept at 8 bits")
def check_keep_attention(recipe: Any, *, float_file: bytes, x_test: np.ndarray, y_test: np.ndarray,
                         low_bits: int) -> str | None:
    """The file from ``recipe``: attention weights INT8, feed-forward weights at ``low_bits``, accuracy measured."""
    from qlab.conversion import litert_quantizer as lq
    from qlab.conversion.tflite import predict_tflite

    if not isinstance(recipe, (list, tuple)):
        raise TypeError("pass the recipe the Quantizer holds, my_quantizer.get_quantization_recipe(); got a "
                        f"{type(recipe).__name__}")
    if not recipe:
        raise NotDone
    mine = lq.quantize(float_file, list(recipe))
    stored = _stored_weights(mine)
    low = f"INT{low_bits}"
    if "FLOAT32" in {kind for _, kind in stored}:
        return ("some FULLY_CONNECTED weights are still float32: start with a config that gives every "
                "FULLY_CONNECTED op 8-bit weights ('.*'), then lower the feed-forward ones.")
    feed_forward, attention = _types_in(stored, FEED_FORWARD), _types_in(stored, ATTENTION)
    if feed_forward != {low}:
        return (f"the feed-forward weights are stored as {sorted(feed_forward)}, not {low}: a config for them with "
                f"{low_bits}-bit weights must come after the 8-bit config for every op (later configs win), and its "
                "regex must match both feed-forward layers' scopes in both blocks.")
    if attention != {"INT8"}:
        return (f"the attention projections are stored as {sorted(attention)}: they are the part that breaks at "
                f"{low_bits} bits, keep them at 8 (make the low-bit regex match the feed-forward scopes only).")
    accuracy = float(np.mean(predict_tflite(mine, x_test[:CHECK_IMAGES]).argmax(1) == y_test[:CHECK_IMAGES]))
    print(f"your file: {len(mine):,} bytes, accuracy {accuracy:.2%} on {min(CHECK_IMAGES, len(x_test))} test images")
    return CORRECT


def _file_bounds(float_file: bytes) -> dict[str, np.ndarray]:
    """``{FULLY_CONNECTED scope: max |weight| of each output channel}``, from the scales of an 8-bit weight file.

    Symmetric narrow-range int8 stores ``scale = max|w| / 127`` for each output channel.
    """
    from qlab.conversion import litert_quantizer as lq
    from qlab.conversion.tflite_file import file_ops, read_flatbuffer

    quantized = lq.quantize(float_file, lq.mixed_weight_recipe(float_file, 8, None))
    graph = read_flatbuffer(quantized).subgraphs[0]
    return {op["scope"]: np.asarray(graph.tensors[op["inputs"][1]].quantization.scale) * 127
            for op in file_ops(quantized) if op["op"] == "FULLY_CONNECTED"}


def _bounds_hint(name: str, mine: Any, kernel: np.ndarray, summed: tuple[int, ...], reference: np.ndarray
                 ) -> str | None:
    """A hint for one kernel's ranges, or None when they are the ones the file's scales imply."""
    if mine is None or mine is Ellipsis:
        raise NotDone
    mine = np.asarray(mine, dtype=np.float64)
    channels = tuple(s for i, s in enumerate(kernel.shape) if i not in summed)
    if mine.size == 1:
        return f"{name} is one number for the whole kernel; take one range per output channel."
    if mine.shape != channels:
        return (f"{name} has shape {mine.shape}; the kernel {kernel.shape} has one output channel per position of "
                f"the axes the layer does not sum over: reduce over the summed axes (the letters of the kernel "
                "that are missing from the equation's output), and only those.")
    if np.allclose(mine, np.max(kernel, axis=summed)) or np.allclose(mine, np.min(kernel, axis=summed)):
        return f"{name}: a weight's range is set by its size, positive or negative: take the largest |w|."
    if not np.allclose(mine.ravel(), reference, rtol=1e-5, atol=1e-7):
        worst = int(np.argmax(np.abs(mine.ravel() - reference)))
        return (f"{name}: output channel {worst}'s range is {mine.ravel()[worst]:.6f}, and the LiteRT Quantizer's "
                "scale for it implies another. Each range is the largest |w| over the summed axes.")
    return None


@exercise_check("11.channel_bounds", "the range of each output channel of attention kernels, as the file stores it")
def check_channel_bounds(query_bounds: Any, output_bounds: Any, *, model: Any, float_file: bytes,
                         block: str = "block0") -> str | None:
    """``max |w|`` per output channel of a query and an attention-output kernel, against the file's scales."""
    kernels = {w.path: np.asarray(w) for w in model.weights}
    query, output = kernels[f"{block}_attention/query/kernel"], kernels[f"{block}_attention/attention_output/kernel"]
    files = _file_bounds(float_file)
    file_query = next(v for k, v in files.items() if f"{block}_attention_1/query_1/" in k)
    file_output = next(v for k, v in files.items() if f"{block}_attention_1/attention_output_1/" in k)
    # query: (width, heads, head size) -> sums the width; attention_output: (heads, head size, width) -> sums both
    for name, mine, kernel, summed, reference in (("my_query_bounds", query_bounds, query, (0,), file_query),
                                                  ("my_output_bounds", output_bounds, output, (0, 1), file_output)):
        hint = _bounds_hint(name, mine, kernel, summed, reference)
        if hint:
            return hint
    return CORRECT
