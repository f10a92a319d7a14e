"""Two ``.tflite`` files of the same model side by side: where their tensors first differ, and why.

Two routes to an int8 file (the converter and the LiteRT Quantizer, say) can agree on
almost every output and still store different numbers. :func:`first_difference` runs
both files on the same images with every intermediate tensor kept and names the first
tensor, in execution order, whose stored integers or quantization parameters differ;
:func:`weight_rounding` says which weights of one op round to different integers and
by how much their scales differ; :func:`stored_outputs` turns a file's float outputs
back into the integers it stored, so outputs compare as stored, not as floats.
Taught in ``10_litert_quantizer``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.conversion.tflite_file import file_ops, read_flatbuffer


def weight_rounding(float_bytes: bytes, a_bytes: bytes, b_bytes: bytes, op_index: int) -> dict[str, Any]:
    """The first weight of op ``op_index`` that two quantized files of ``float_bytes`` store differently, and why.

    Returns its ``position``, the ``float weight`` and the ``scale`` both files share, the
    quotient ``weight / scale`` computed in ``float32`` and in ``float64``, and the two stored
    integers ``a`` and ``b``: a quotient that is a tie (x.5) in one precision and not in the
    other rounds apart. Empty when the op has no weights or its weights are the same.
    """
    from qlab.conversion.tflite_file import WEIGHT_OPS, file_weights

    def stored(model_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
        index = file_ops(model_bytes)[op_index]["inputs"][1]
        detail, _, values = next(w for w in file_weights(model_bytes) if w[0]["index"] == index)
        return values, detail["quantization_parameters"]["scales"]

    ops = file_ops(a_bytes)
    if not 0 <= op_index < len(ops) or ops[op_index]["op"] not in WEIGHT_OPS:
        return {}
    (wa, scales), (wb, _) = stored(a_bytes), stored(b_bytes)
    float_weights = stored(float_bytes)[0]
    differing = np.argwhere(wa != wb)
    if not len(differing):
        return {}
    position = tuple(int(i) for i in differing[0])
    scale = np.float32(scales[position[0]] if len(scales) > 1 else scales[0])
    weight = np.float32(float_weights[position])
    return {"position": position, "float weight": float(weight), "scale": float(scale),
            "float32": float(weight / scale), "float64": float(np.float64(weight) / np.float64(scale)),
            "a": int(wa[position]), "b": int(wb[position])}


def _quant_params(graph: Any, index: int) -> tuple[tuple[float, ...], tuple[int, ...]]:
    q = graph.tensors[index].quantization
    if q is None or q.scale is None:
        return (), ()
    return tuple(float(s) for s in q.scale), tuple(int(z) for z in q.zeroPoint)


def _all_tensors(model_bytes: bytes, x: np.ndarray) -> dict[int, np.ndarray]:
    """Every tensor of a ``.tflite`` after running ``x`` (quantized with its own input parameters)."""
    from qlab.conversion.tflite import interpreter_keeping_all_tensors, quantize_input

    interpreter = interpreter_keeping_all_tensors(model_bytes)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], quantize_input(x, detail))
    interpreter.invoke()
    tensors = {}
    for d in interpreter.get_tensor_details():
        try:
            tensors[d["index"]] = np.array(interpreter.get_tensor(d["index"]))
        except ValueError:  # a tensor with no data (an optional input)
            continue
    return tensors


def _describe(params: tuple[tuple[float, ...], tuple[int, ...]]) -> str:
    scales, zero_points = params
    if not scales:
        return "float"
    if len(scales) == 1:  # 9 digits tell two float32 scales apart
        return f"scale {scales[0]:.9g}, zero point {zero_points[0]}"
    return f"{len(scales)} scales ({min(scales):.4g}..{max(scales):.4g})"


def first_difference(a_bytes: bytes, b_bytes: bytes, x: np.ndarray) -> dict[str, Any]:
    """Where two ``.tflite`` files of one model first differ, tensor by tensor, in execution order.

    Both files run the images ``x`` on LiteRT's builtin kernels with every tensor kept. For
    each op in turn it compares what the op reads (constant weights and biases: stored values
    and quantization parameters) and what it writes (quantization parameters, then values).
    The input tensor comes first. Returns ``{"identical": True}`` if nothing differs, else:
    ``op_index`` (-1 for the model input), ``op``, ``tensor`` (in file a), ``what``
    (``"op"``, ``"input parameters"``, ``"weights"``, ``"bias"``, ``"output parameters"`` or
    ``"output values"``), ``a`` and ``b`` (the two sides, described; for values, with the op's
    version in each file) and ``differing`` (the share of differing values, for values). For
    output parameters, ``b_parameters_in_a`` names the tensors of file a that carry b's
    scale and zero point (where b's range came from, when a has it elsewhere). Used in ``10_litert_quantizer`` to explain why the
    Quantizer's int8 file and the converter's disagree.
    """
    fa, fb = read_flatbuffer(a_bytes, "a_bytes"), read_flatbuffer(b_bytes, "b_bytes")
    ga, gb = fa.subgraphs[0], fb.subgraphs[0]
    ops_a, ops_b = file_ops(a_bytes), file_ops(b_bytes)
    ta, tb = _all_tensors(a_bytes, x), _all_tensors(b_bytes, x)

    def found(op_index: int, op: str, tensor: int, what: str, a: str, b: str,
              differing: float | None = None) -> dict[str, Any]:
        return {"identical": False, "op_index": op_index, "op": op, "tensor": ga.tensors[tensor].name.decode(),
                "what": what, "a": a, "b": b, "differing": differing}

    ia, ib = int(ga.inputs[0]), int(gb.inputs[0])
    if _quant_params(ga, ia) != _quant_params(gb, ib):
        return found(-1, "input", ia, "input parameters", _describe(_quant_params(ga, ia)),
                     _describe(_quant_params(gb, ib)))
    for index, (op_a, op_b) in enumerate(zip(ops_a, ops_b)):
        if op_a["op"] != op_b["op"] or len(op_a["inputs"]) != len(op_b["inputs"]):
            return found(index, op_a["op"], op_a["outputs"][0], "op", op_a["op"], op_b["op"])
        for position, (i, j) in enumerate(zip(op_a["inputs"], op_b["inputs"])):
            constant = fa.buffers[ga.tensors[i].buffer].data is not None
            if not constant:
                continue
            what = "weights" if position == 1 else "bias" if position == 2 else f"constant input {position}"
            if _quant_params(ga, i) != _quant_params(gb, j):
                return found(index, op_a["op"], i, what, _describe(_quant_params(ga, i)),
                             _describe(_quant_params(gb, j)))
            if i in ta and j in tb and (ta[i].shape != tb[j].shape or not np.array_equal(ta[i], tb[j])):
                share = float(np.mean(ta[i] != tb[j])) if ta[i].shape == tb[j].shape else 1.0
                return found(index, op_a["op"], i, what, f"{ta[i].dtype} {ta[i].shape}",
                             f"{tb[j].dtype} {tb[j].shape}", share)
        for i, j in zip(op_a["outputs"], op_b["outputs"]):
            if _quant_params(ga, i) != _quant_params(gb, j):
                same_in_a = [t.name.decode() for k, t in enumerate(ga.tensors)
                             if k != i and _quant_params(ga, k) == _quant_params(gb, j)]
                return dict(found(index, op_a["op"], i, "output parameters", _describe(_quant_params(ga, i)),
                                  _describe(_quant_params(gb, j))), b_parameters_in_a=same_in_a)
            if not np.array_equal(ta[i], tb[j]):
                diff = np.abs(ta[i].astype(np.float64) - tb[j].astype(np.float64))
                versions = [f.operatorCodes[g.operators[index].opcodeIndex].version for f, g in ((fa, ga), (fb, gb))]
                return found(index, op_a["op"], i, "output values",
                             f"max difference {diff.max():.4g}; op version {versions[0]}",
                             f"op version {versions[1]}", float(np.mean(diff > 0)))
    if len(ops_a) != len(ops_b):
        return {"identical": False, "op_index": min(len(ops_a), len(ops_b)), "op": "", "tensor": "",
                "what": "op count", "a": str(len(ops_a)), "b": str(len(ops_b)), "differing": None}
    return {"identical": True}


def stored_outputs(model_bytes: bytes, scores: np.ndarray) -> np.ndarray:
    """The integers an int8-output file stored for ``scores`` (its dequantized outputs); float outputs as they are.

    Two files can store the same integers under output scales one float32 step apart: their
    dequantized scores then differ in the last bits though the files computed the same thing.
    """
    from qlab.conversion.tflite import make_interpreter, quantize_input

    detail = make_interpreter(model_bytes).get_output_details()[0]
    if not np.issubdtype(detail["dtype"], np.integer):
        return scores
    return quantize_input(scores, detail).astype(np.int64)  # exact: each score is (q - zero_point) * scale
