"""Run an int8 ``.tflite`` model with numpy integers only, and prove it matches TFLite.

The int8 model a converter writes is a recipe of integer arithmetic: int8
activations with zero points, int32 accumulators, int32 biases, and a
fixed-point multiplier and shift per output channel that bring each
accumulator back to int8. :func:`run` follows that recipe operator by operator
with the kernels in :mod:`qlab.numerics.intkernels`; :func:`check` runs the TFLite
interpreter beside it and counts, tensor by tensor, the values that differ
(zero everywhere against the reference kernels); :func:`explain` shows every
step that produces one output value.

The fixed-point steps are introduced in ``02_error_accumulation``
(:mod:`qlab.numerics.fixedpoint`). Two findings a reader of the TFLite source would not
guess, both measured against LiteRT's reference kernels: FULLY_CONNECTED
requantizes with a single rounding while the convolutions round twice, and
the int8 SOFTMAX reference kernel is the 256-entry float table, not gemmlowp's
fixed-point exp.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from qlab.conversion.tflite import op_resolver_type
from qlab.numerics import intkernels as K
from qlab.numerics.fixedpoint import quantize_multiplier

__all__ = [
    "SUPPORTED_OPS",
    "UnsupportedOperatorError",
    "TensorInfo",
    "Operator",
    "IntModel",
    "load",
    "run",
    "run_all",
    "quantize_model_input",
    "reference_tensors",
    "check",
    "CheckReport",
    "TensorMismatch",
    "explain",
    "Explanation",
    "Step",
    "output_multipliers",
]

_NUMPY_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
_PADDING = {0: "SAME", 1: "VALID"}


class UnsupportedOperatorError(NotImplementedError):
    """Raised for an operator (or an operator option) that :mod:`qlab.conversion.intsim` cannot compute exactly."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the model: shape, dtype, quantization and (for weights) its constant data."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    scale: np.ndarray  # float32, one per channel for per-axis quantization, empty if not quantized
    zero_point: np.ndarray
    quantized_dimension: int
    data: np.ndarray | None = field(default=None, repr=False)

    @property
    def per_axis(self) -> bool:
        return self.scale.size > 1

    def scalar_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of a per-tensor quantized tensor."""
        if self.scale.size != 1:
            raise ValueError(f"tensor {self.name!r} has {self.scale.size} scales, expected one")
        return float(self.scale[0]), int(self.zero_point[0])


@dataclass(frozen=True)
class Operator:
    """One operator: its builtin name, input/output tensor indices and its options.

    Taught in ``04_post_training_quantization``.
    """

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Mapping[str, Any]


@dataclass(frozen=True)
class IntModel:
    """The parts of a ``.tflite`` flatbuffer that integer inference needs (first subgraph).

    Returned by :func:`load`. Taught in ``04_post_training_quantization``.
    """

    tensors: tuple[TensorInfo, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    content: bytes = field(repr=False)

    def tensor(self, key: int | str) -> TensorInfo:
        """A tensor by index or by name."""
        if isinstance(key, (int, np.integer)):
            return self.tensors[int(key)]
        for info in self.tensors:
            if info.name == key:
                return info
        raise KeyError(f"no tensor named {key!r}; names are {[t.name for t in self.tensors]}")


def _read_tensor(index: int, tensor: Any, buffers: Sequence[Any]) -> TensorInfo:
    dtype = _NUMPY_TYPES.get(tensor.type)
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    q = tensor.quantization
    scale = np.asarray(q.scale if q is not None and q.scale is not None else [], dtype=np.float32)
    zero_point = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], dtype=np.int64)
    axis = int(q.quantizedDimension) if q is not None else 0
    raw = buffers[tensor.buffer].data if tensor.buffer < len(buffers) else None
    data = None
    if raw is not None and len(raw) and dtype is not None:
        data = np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes(), dtype=dtype).reshape(shape)
    return TensorInfo(index, name, shape, dtype, scale, zero_point, axis, data)


def load(model: str | os.PathLike | bytes | IntModel) -> IntModel:
    """Read operators, tensors, weights and quantization parameters from a ``.tflite`` file or bytes.

    Taught in ``04_post_training_quantization``.
    """
    if isinstance(model, IntModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as handle:
            content = handle.read()
    elif isinstance(model, (bytes, bytearray, memoryview)):
        content = bytes(model)
    else:
        raise TypeError(f"model must be a .tflite path, bytes or IntModel, got {type(model).__name__}")
    from ai_edge_litert import schema_py_generated as schema

    from qlab.conversion.tflite_file import enum_names, read_flatbuffer

    flat = read_flatbuffer(content, "model")
    graph = flat.subgraphs[0]
    names = enum_names(schema.BuiltinOperator)
    tensors = tuple(_read_tensor(i, t, flat.buffers) for i, t in enumerate(graph.tensors))
    operators = []
    for i, op in enumerate(graph.operators or []):
        code = flat.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        options = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        operators.append(Operator(i, names.get(builtin, f"BUILTIN_{builtin}"),
                                  tuple(int(t) for t in op.inputs), tuple(int(t) for t in op.outputs), options))
    return IntModel(tensors, tuple(operators), tuple(int(t) for t in graph.inputs),
                    tuple(int(t) for t in graph.outputs), content)


# --- one function per operator: (model, op, values) -> output array -----------------------------


def _quant(model: IntModel, index: int) -> tuple[float, int]:
    return model.tensors[index].scalar_quantization()


def _fused(op: Operator, model: IntModel) -> tuple[int, int]:
    scale, zero_point = _quant(model, op.outputs[0])
    code = int(op.options.get("fusedActivationFunction", 0))
    if K.FUSED_ACTIVATIONS.get(code) not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise UnsupportedOperatorError(
            f"operator {op.index} ({op.name}) has fused activation "
            f"{K.FUSED_ACTIVATIONS.get(code, code)}, which qlab.conversion.intsim does not support"
        )
    return K.activation_range(code, scale, zero_point)


def _bias(model: IntModel, op: Operator) -> np.ndarray | None:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    return model.tensors[op.inputs[2]].data


def output_multipliers(model: IntModel, op: Operator) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(multiplier, shift)`` from input_scale * weight_scale / output_scale (in double)."""
    input_scale, _ = _quant(model, op.inputs[0])
    output_scale, _ = _quant(model, op.outputs[0])
    weights = model.tensors[op.inputs[1]]
    channels = weights.shape[weights.quantized_dimension] if weights.per_axis else weights.shape[
        3 if op.name == "DEPTHWISE_CONV_2D" else 0]
    scales = np.broadcast_to(weights.scale.astype(np.float64), (channels,)) if weights.per_axis else (
        np.full(channels, np.float64(weights.scale[0])))
    real = np.float64(input_scale) * scales / np.float64(output_scale)
    multiplier, shift = quantize_multiplier(real)
    return np.asarray(multiplier, dtype=np.int64), np.asarray(shift, dtype=np.int64)


def _conv_like(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    multiplier, shift = output_multipliers(model, op)
    act_min, act_max = _fused(op, model)
    o = op.options
    common = dict(
        input_zero_point=_quant(model, op.inputs[0])[1], multiplier=multiplier, shift=shift,
        output_zero_point=_quant(model, op.outputs[0])[1], act_min=act_min, act_max=act_max,
        stride=(o["strideH"], o["strideW"]), dilation=(o["dilationHFactor"], o["dilationWFactor"]),
        padding=_PADDING[o["padding"]],
    )
    weights = model.tensors[op.inputs[1]].data
    if op.name == "CONV_2D":
        return K.conv2d(values[op.inputs[0]], weights, _bias(model, op), **common)
    depth_multiplier = weights.shape[3] // model.tensors[op.inputs[0]].shape[3]
    return K.depthwise_conv2d(values[op.inputs[0]], weights, _bias(model, op),
                              depth_multiplier=depth_multiplier, **common)


def _fully_connected(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    multiplier, shift = output_multipliers(model, op)
    if multiplier.size > 1 and np.all(multiplier == multiplier[0]) and np.all(shift == shift[0]):
        multiplier, shift = multiplier[:1], shift[:1]
    act_min, act_max = _fused(op, model)
    weights = model.tensors[op.inputs[1]]
    out = K.fully_connected(
        values[op.inputs[0]], weights.data, _bias(model, op), input_zero_point=_quant(model, op.inputs[0])[1],
        weights_zero_point=int(weights.zero_point[0]), multiplier=multiplier, shift=shift,
        output_zero_point=_quant(model, op.outputs[0])[1], act_min=act_min, act_max=act_max,
    )
    if op.options.get("keepNumDims"):
        return out.reshape(values[op.inputs[0]].shape[:-1] + (out.shape[-1],))
    return out


def _pool(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    o = op.options
    act_min, act_max = _fused(op, model)
    kernel = K.max_pool2d if op.name == "MAX_POOL_2D" else K.average_pool2d
    return kernel(values[op.inputs[0]], filter_size=(o["filterHeight"], o["filterWidth"]),
                  stride=(o["strideH"], o["strideW"]), padding=_PADDING[o["padding"]],
                  act_min=act_min, act_max=act_max)


def _mean(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    in_scale, in_zp = _quant(model, op.inputs[0])
    out_scale, out_zp = _quant(model, op.outputs[0])
    axes = [int(a) for a in np.ravel(model.tensors[op.inputs[1]].data)]
    return K.mean(values[op.inputs[0]], axes, bool(op.options.get("keepDims", False)), input_scale=in_scale,
                  input_zero_point=in_zp, output_scale=out_scale, output_zero_point=out_zp)


def _add(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    (s1, z1), (s2, z2), (so, zo) = (_quant(model, i) for i in (*op.inputs, op.outputs[0]))
    act_min, act_max = _fused(op, model)
    a, b = (_value(model, values, i) for i in op.inputs)
    return K.add(a, b, scales=(s1, s2, so), zero_points=(z1, z2, zo), act_min=act_min, act_max=act_max)


def _reshape(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    x = values[op.inputs[0]]
    target = model.tensors[op.outputs[0]].shape
    return x.reshape((x.shape[0],) + tuple(target[1:]))


def _pad(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    paddings = model.tensors[op.inputs[1]].data
    value = _quant(model, op.outputs[0])[1]
    if op.name == "PADV2" and len(op.inputs) > 2:
        value = int(np.ravel(model.tensors[op.inputs[2]].data)[0])
    return K.pad(values[op.inputs[0]], paddings, value)


def _softmax(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    out_scale, out_zp = _quant(model, op.outputs[0])
    if out_zp != -128 or abs(out_scale - 1 / 256) > 1e-3 / 256:
        raise UnsupportedOperatorError(f"SOFTMAX output must have scale 1/256 and zero point -128, "
                                       f"got {out_scale} and {out_zp}")
    return K.softmax(values[op.inputs[0]], beta=float(op.options.get("beta", 1.0)),
                     input_scale=_quant(model, op.inputs[0])[0], output_scale=out_scale,
                     output_zero_point=out_zp)


def _quantize(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    x = values[op.inputs[0]]
    out_scale, out_zp = _quant(model, op.outputs[0])
    if model.tensors[op.inputs[0]].dtype == np.float32:
        return K.quantize(x, scale=out_scale, zero_point=out_zp)
    in_scale, in_zp = _quant(model, op.inputs[0])
    return K.requantize(x, input_scale=in_scale, input_zero_point=in_zp, output_scale=out_scale,
                        output_zero_point=out_zp)


def _dequantize(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    scale, zero_point = _quant(model, op.inputs[0])
    return K.dequantize(values[op.inputs[0]], scale=scale, zero_point=zero_point)


def _relu(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    low, high = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}[op.name]
    in_scale, in_zp = _quant(model, op.inputs[0])
    out_scale, out_zp = _quant(model, op.outputs[0])
    return K.relu(values[op.inputs[0]], low=low, high=high, input_scale=in_scale, input_zero_point=in_zp,
                  output_scale=out_scale, output_zero_point=out_zp)


# Shape arithmetic: Keras' Reshape with a dynamic batch becomes SHAPE -> STRIDED_SLICE -> PACK
# -> RESHAPE. These tensors describe one example (batch 1, as in the flatbuffer) and carry no
# batch axis here.
SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")


def _shape_value(model: IntModel, values: dict[int, np.ndarray], index: int) -> np.ndarray:
    if index in values:
        return values[index]
    if model.tensors[index].data is None:
        raise UnsupportedOperatorError(f"tensor {model.tensors[index].name!r} is neither constant nor computed")
    return model.tensors[index].data


def _shape(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    return np.asarray(model.tensors[op.inputs[0]].shape, dtype=np.int32)


def _strided_slice(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    x, begin, end, strides = (_shape_value(model, values, i) for i in op.inputs)
    o = op.options
    if x.ndim != 1 or o.get("ellipsisMask") or o.get("newAxisMask") or o.get("offset"):
        raise UnsupportedOperatorError(f"operator {op.index} (STRIDED_SLICE): only 1-D shape slicing "
                                       "without ellipsis/new-axis masks is supported")
    start = None if o.get("beginMask", 0) & 1 else int(begin[0])
    stop = None if o.get("endMask", 0) & 1 else int(end[0])
    if o.get("shrinkAxisMask", 0) & 1:
        return np.asarray(x[int(begin[0])], dtype=x.dtype)
    return x[slice(start, stop, int(strides[0]))].copy()


def _pack(model: IntModel, op: Operator, values: dict[int, np.ndarray]) -> np.ndarray:
    parts = [np.asarray(_shape_value(model, values, i)) for i in op.inputs]
    return np.stack(parts, axis=int(op.options.get("axis", 0)))


_KERNELS: dict[str, Callable[[IntModel, Operator, dict[int, np.ndarray]], np.ndarray]] = {
    "CONV_2D": _conv_like,
    "DEPTHWISE_CONV_2D": _conv_like,
    "FULLY_CONNECTED": _fully_connected,
    "MAX_POOL_2D": _pool,
    "AVERAGE_POOL_2D": _pool,
    "MEAN": _mean,
    "ADD": _add,
    "RESHAPE": _reshape,
    "PAD": _pad,
    "PADV2": _pad,
    "SOFTMAX": _softmax,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "RELU": _relu,
    "RELU6": _relu,
    "RELU_N1_TO_1": _relu,
    "SHAPE": _shape,
    "STRIDED_SLICE": _strided_slice,
    "PACK": _pack,
}
SUPPORTED_OPS = tuple(sorted(_KERNELS))


def _value(model: IntModel, values: dict[int, np.ndarray], index: int) -> np.ndarray:
    """A computed activation, or a constant tensor (with a leading batch axis of 1)."""
    if index in values:
        return values[index]
    return model.tensors[index].data


def _check_supported(model: IntModel) -> None:
    for op in model.operators:
        if op.name not in _KERNELS:
            raise UnsupportedOperatorError(
                f"operator {op.index} is {op.name}, which qlab.conversion.intsim does not implement; "
                f"supported operators: {', '.join(SUPPORTED_OPS)}"
            )
        for index in op.inputs[:1]:
            dtype = model.tensors[index].dtype
            if op.name in SHAPE_OPS and dtype == np.int32:
                continue
            if dtype not in (np.int8, np.float32) or (dtype == np.float32 and op.name != "QUANTIZE"):
                raise UnsupportedOperatorError(
                    f"operator {op.index} ({op.name}) has a {np.dtype(dtype).name} input; "
                    "qlab.conversion.intsim runs int8 models only"
                )


def _prepare_input(model: IntModel, x: Any) -> np.ndarray:
    info = model.tensors[model.inputs[0]]
    x = np.asarray(x)
    if x.dtype != info.dtype:
        raise TypeError(f"x must have dtype {np.dtype(info.dtype).name} (the model input), got {x.dtype}")
    if x.shape == info.shape[1:]:
        x = x[None]
    if x.shape[1:] != info.shape[1:]:
        raise ValueError(f"x must have shape (batch,) + {info.shape[1:]}, got {x.shape}")
    return x


def quantize_model_input(model: str | os.PathLike | bytes | IntModel, x: Any) -> np.ndarray:
    """Quantize float images with the int8 model input's scale and zero point (TFLite's QUANTIZE)."""
    model = load(model)
    info = model.tensors[model.inputs[0]]
    if info.dtype != np.int8:
        raise ValueError(f"model input is {np.dtype(info.dtype).name}, not int8: pass float x to run() directly")
    scale, zero_point = info.scalar_quantization()
    return K.quantize(np.asarray(x, dtype=np.float32), scale=scale, zero_point=zero_point)


def run_all(model: str | os.PathLike | bytes | IntModel, x: Any) -> dict[int, np.ndarray]:
    """Every tensor qlab computes, by tensor index, for a batch ``x`` (the model input included).

    Taught in ``04_post_training_quantization``.
    """
    model = load(model)
    if len(model.inputs) != 1:
        raise UnsupportedOperatorError(f"qlab.conversion.intsim runs single-input models, this one has {len(model.inputs)}")
    _check_supported(model)
    values = {model.inputs[0]: _prepare_input(model, x)}
    for op in model.operators:
        values[op.outputs[0]] = _KERNELS[op.name](model, op, values)
    return values


def run(model: str | os.PathLike | bytes | IntModel, x: Any) -> np.ndarray:
    """The model output for an int8 batch ``x``, computed with numpy integers only.

    Args:
        model: a ``.tflite`` path or its bytes (full-integer quantized, int8 ops).
        x: int8 array of shape ``(batch,) + input_shape[1:]`` (or one example without the batch axis),
            already quantized with the input tensor's scale and zero point.

    Returns:
        the int8 output, shape ``(batch,) + output_shape[1:]``.

    Raises:
        UnsupportedOperatorError: the model contains an operator qlab.conversion.intsim does not implement.
    """
    model = load(model)
    return run_all(model, x)[model.outputs[0]]


def reference_tensors(
    model: str | os.PathLike | bytes | IntModel, x: Any, kernels: str = "reference"
) -> dict[int, np.ndarray]:
    """Run the TFLite interpreter one example at a time and keep every operator output.

    ``kernels``: ``"reference"`` (BUILTIN_REF, the kernels the spec is written
    from), ``"optimized"`` (the builtin optimized kernels, no delegate) or
    ``"default"`` (what ``Interpreter()`` uses: optimized kernels plus the
    XNNPACK delegate - only the model outputs are readable then).
    """
    resolver = op_resolver_type(kernels)
    from ai_edge_litert.interpreter import Interpreter

    model = load(model)
    x = _prepare_input(model, x)
    interpreter = Interpreter(model_content=model.content,
                              experimental_op_resolver_type=resolver,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    wanted = list(model.outputs) if kernels == "default" else [op.outputs[0] for op in model.operators]
    unbatched = {op.outputs[0] for op in model.operators if op.name in SHAPE_OPS}
    collected: dict[int, list[np.ndarray]] = {i: [] for i in wanted}
    for example in x:
        interpreter.set_tensor(model.inputs[0], example[None])
        interpreter.invoke()
        for index in wanted:
            value = interpreter.get_tensor(index)
            collected[index].append((value if index in unbatched else value[0]).copy())
    return {i: np.stack(v) for i, v in collected.items()}


@dataclass(frozen=True)
class TensorMismatch:
    """How one tensor computed by qlab differs from TFLite's."""

    index: int
    name: str
    operator: str
    size: int
    mismatches: int
    max_difference: float  # in quantized steps for integer tensors


@dataclass(frozen=True)
class CheckReport:
    """Per-tensor mismatch counts between qlab's integer simulation and a TFLite interpreter.

    Returned by :func:`check`. Taught in ``04_post_training_quantization``.
    """

    kernels: str
    examples: int
    tensors: tuple[TensorMismatch, ...]

    @property
    def mismatches(self) -> dict[str, int]:
        """Tensor name -> number of values that differ (0 everywhere when bit-exact)."""
        return {t.name: t.mismatches for t in self.tensors}

    @property
    def bit_exact(self) -> bool:
        return all(t.mismatches == 0 for t in self.tensors)

    @property
    def total_mismatches(self) -> int:
        return sum(t.mismatches for t in self.tensors)

    @property
    def max_difference(self) -> int:
        return max((t.max_difference for t in self.tensors), default=0)

    def __getitem__(self, name: str) -> int:
        return self.mismatches[name]

    def _rows(self) -> list[tuple[str, ...]]:
        return [(str(t.index), t.operator, t.name, str(t.size), str(t.mismatches), str(t.max_difference))
                for t in self.tensors]

    def __repr__(self) -> str:
        verdict = "bit-exact" if self.bit_exact else f"{self.total_mismatches} values differ"
        head = f"CheckReport(kernels={self.kernels!r}, examples={self.examples}: {verdict})"
        lines = [f"  {r[1]:<18} {r[2][:40]:<40} values={r[3]:>8} differ={r[4]:>7} max|diff|={r[5]}"
                 for r in self._rows()]
        return "\n".join([head, *lines])

    def _repr_html_(self) -> str:
        header = "".join(f"<th>{h}</th>" for h in ("tensor", "operator", "name", "values", "differ", "max |diff|"))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self._rows())
        verdict = "bit-exact" if self.bit_exact else f"{self.total_mismatches} values differ"
        return (f"<p>qlab.conversion.intsim vs TFLite <b>{self.kernels}</b> kernels on {self.examples} examples: "
                f"<b>{verdict}</b></p><table><tr>{header}</tr>{body}</table>")


def check(model: str | os.PathLike | bytes | IntModel, x: Any, kernels: str = "reference") -> CheckReport:
    """Run qlab and the TFLite interpreter on ``x`` and count the differing values of every tensor.

    Against ``kernels="reference"`` every count is 0 (that is the claim qlab
    makes); against ``"optimized"``/``"default"`` the counts show where the
    fast kernels round differently. Taught in ``04_post_training_quantization``.
    """
    model = load(model)
    ours = run_all(model, x)
    theirs = reference_tensors(model, x, kernels)
    producer = {op.outputs[0]: op.name for op in model.operators}
    rows = []
    for index, expected in theirs.items():
        got = ours[index]
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        largest = float(np.max(diff, initial=0.0))
        rows.append(TensorMismatch(index, model.tensors[index].name, producer.get(index, "?"), int(diff.size),
                                   int(np.count_nonzero(diff)), int(largest) if largest.is_integer() else largest))
    return CheckReport(kernels, int(np.asarray(x).shape[0]), tuple(rows))


# --- the teaching view: every step of one output value ------------------------------------------

_EXPLAINED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class Step:
    """One line of an :class:`Explanation`: what is computed, how, and the number it gives."""

    name: str
    formula: str
    value: Any


@dataclass(frozen=True)
class Explanation:
    """The integer arithmetic behind one output value of one operator, step by step.

    Returned by :func:`explain`. Taught in ``04_post_training_quantization``.
    """

    operator: str
    tensor: str
    output_index: tuple[int, ...]
    steps: tuple[Step, ...]
    real_value: float  # what the int8 result stands for: scale * (q - zero_point)
    float_reference: float  # the same layer computed in float from the dequantized inputs

    def __repr__(self) -> str:
        width = max(len(s.name) for s in self.steps)
        lines = [f"{self.operator} -> {self.tensor}{list(self.output_index)}"]
        lines += [f"  {s.name:<{width}}  {s.formula}  = {s.value}" for s in self.steps]
        lines.append(f"  stands for {self.real_value:.6g} (float computation from the same inputs: "
                     f"{self.float_reference:.6g})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(s.name)}</td><td><code>{html.escape(s.formula)}</code></td>"
                       f"<td style='text-align:right'><b>{html.escape(str(s.value))}</b></td></tr>"
                       for s in self.steps)
        return (f"<p><b>{html.escape(self.operator)}</b> &rarr; <code>{html.escape(self.tensor)}"
                f"{list(self.output_index)}</code></p><table><tr><th>step</th><th>integer arithmetic</th>"
                f"<th>value</th></tr>{rows}</table><p>The int8 result stands for <b>{self.real_value:.6g}</b>; "
                f"the float layer on the same (dequantized) inputs gives {self.float_reference:.6g}.</p>")


def _find_operator(model: IntModel, op: int | str) -> Operator:
    if isinstance(op, (int, np.integer)):
        if not 0 <= int(op) < len(model.operators):
            raise ValueError(f"op must be an operator index in [0, {len(model.operators)}), got {op}")
        return model.operators[int(op)]
    for candidate in model.operators:
        if model.tensors[candidate.outputs[0]].name == op:
            return candidate
    raise ValueError(f"op {op!r} is neither an operator index nor the name of an operator output")


def _receptive_field(model: IntModel, op: Operator, x: np.ndarray, index: tuple[int, ...]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The input values (0 where padding) and weights that meet in output ``index`` (h, w, c)."""
    weights = model.tensors[op.inputs[1]].data.astype(np.int64)
    z_x = _quant(model, op.inputs[0])[1]
    o = op.options
    _, height, width, _ = x.shape
    kh, kw = weights.shape[1:3]
    out_h, out_w = model.tensors[op.outputs[0]].shape[1:3]
    pad_h = K.padding_before(height, kh, o["strideH"], o["dilationHFactor"], out_h)
    pad_w = K.padding_before(width, kw, o["strideW"], o["dilationWFactor"], out_w)
    rows = index[0] * o["strideH"] - pad_h + np.arange(kh) * o["dilationHFactor"]
    cols = index[1] * o["strideW"] - pad_w + np.arange(kw) * o["dilationWFactor"]
    inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    patch = x[0, np.clip(rows, 0, height - 1)][:, np.clip(cols, 0, width - 1)].astype(np.int64) - z_x
    patch = np.where(inside[..., None], patch, 0)  # padding holds the zero point: contributes 0
    channel = index[2]
    if op.name == "CONV_2D":
        return patch.ravel(), weights[channel].ravel()
    depth_multiplier = weights.shape[3] // x.shape[3]
    return patch[:, :, channel // depth_multiplier].ravel(), weights[0, :, :, channel].ravel()


def explain(model: str | os.PathLike | bytes | IntModel, op: int | str, output_index: Sequence[int],
            x: Any) -> Explanation:
    """Show every integer step that produces one output value of a CONV_2D, DEPTHWISE_CONV_2D or FC.

    Taught in ``04_post_training_quantization``.

    Args:
        model: a ``.tflite`` path, bytes or loaded :class:`IntModel`.
        op: the operator index, or the name of its output tensor.
        output_index: the position in that operator's output for one example, without the
            batch axis: ``(h, w, channel)`` for convolutions, ``(unit,)`` for FULLY_CONNECTED.
        x: one input example (model input dtype), with or without the batch axis of 1.

    Returns:
        an :class:`Explanation` (a table in a notebook); its last step equals what :func:`run`
        computes for that value.
    """
    model = load(model)
    operator = _find_operator(model, op)
    if operator.name not in _EXPLAINED_OPS:
        raise ValueError(f"explain covers {', '.join(_EXPLAINED_OPS)}; operator {operator.index} is {operator.name}")
    x = np.asarray(x)
    values = run_all(model, x if x.ndim == len(model.tensors[model.inputs[0]].shape) else x[None])
    if values[model.inputs[0]].shape[0] != 1:
        raise ValueError(f"x must be one example, got a batch of {values[model.inputs[0]].shape[0]}")
    out = values[operator.outputs[0]][0]
    index = tuple(int(i) for i in output_index)
    if len(index) != out.ndim or any(not 0 <= i < n for i, n in zip(index, out.shape)):
        raise ValueError(f"output_index must index an output of shape {out.shape}, got {index}")
    return _explain_steps(model, operator, values, index, int(out[index]))


def _explain_steps(model: IntModel, op: Operator, values: dict[int, np.ndarray], index: tuple[int, ...],
                   expected: int) -> Explanation:
    s_x, z_x = _quant(model, op.inputs[0])
    s_y, z_y = _quant(model, op.outputs[0])
    x = values[op.inputs[0]]
    channel = index[-1]
    if op.name == "FULLY_CONNECTED":
        w = model.tensors[op.inputs[1]]
        inputs = x.reshape(1, -1)[0].astype(np.int64) - z_x
        weights = w.data[channel].astype(np.int64) - int(w.zero_point[0])
    else:
        inputs, weights = _receptive_field(model, op, x, index)
    multipliers, shifts = output_multipliers(model, op)
    m, n = int(multipliers[channel if multipliers.size > 1 else 0]), int(shifts[channel if shifts.size > 1 else 0])
    w_info = model.tensors[op.inputs[1]]
    s_w = float(w_info.scale[channel if w_info.per_axis else 0])
    bias_data = _bias(model, op)
    bias = int(bias_data[channel]) if bias_data is not None else 0
    dot = int(np.dot(inputs, weights))
    acc = dot + bias
    act_min, act_max = _fused(op, model)
    real_multiplier = np.float64(s_x) * np.float64(s_w) / np.float64(s_y)
    terms = " + ".join(f"({a})*({b})" for a, b in list(zip(inputs, weights))[:3])
    more = f" + ... ({len(inputs)} products)" if len(inputs) > 3 else ""
    steps = [
        Step("integer dot product", f"sum (q_x {'-' if z_x >= 0 else '+'} {abs(z_x)}) * q_w = {terms}{more}", dot),
        Step("add int32 bias", f"{dot} + {bias}   (bias scale = s_x*s_w = {s_x * s_w:.3g})", acc),
        Step("real multiplier", f"s_x*s_w/s_y = {s_x:.6g}*{s_w:.6g}/{s_y:.6g}", f"{real_multiplier:.9g}"),
        Step("fixed-point multiplier", f"M = m * 2**(shift-31), m={m}, shift={n}", f"{m * 2.0 ** (n - 31):.9g}"),
    ]
    if op.name == "FULLY_CONNECTED":
        scaled = int(K.multiply_by_quantized_multiplier_single_round(np.int64(acc), m, n))
        steps.append(Step("multiply, round once", f"({acc}*{m} + 2**{30 - n}) >> {31 - n}", scaled))
    else:
        from qlab.numerics.fixedpoint import rounding_divide_by_pot, saturating_rounding_doubling_high_mul

        left, right = max(n, 0), max(-n, 0)
        high = int(saturating_rounding_doubling_high_mul(acc * 2**left, m))
        scaled = int(rounding_divide_by_pot(high, right))
        steps.append(Step("rounding doubling high mul", f"round({acc}*2**{left} * {m} / 2**31)", high))
        steps.append(Step("rounding right shift", f"round({high} / 2**{right}), ties away from 0", scaled))
    shifted = scaled + z_y
    result = int(np.clip(shifted, act_min, act_max))
    steps += [Step("add output zero point", f"{scaled} + {z_y}", shifted),
              Step("clamp (fused activation)", f"clip({shifted}, {act_min}, {act_max})", result)]
    if result != expected:  # cannot happen unless the explanation and the kernel disagree
        raise AssertionError(f"explain computed {result} but the kernel computed {expected}")
    float_reference = float(s_x * s_w * acc)
    low, high_real = s_y * (act_min - z_y), s_y * (act_max - z_y)
    float_reference = float(np.clip(float_reference, low, high_real))
    return Explanation(op.name, model.tensors[op.outputs[0]].name, index, tuple(steps),
                       float(s_y * (result - z_y)), float_reference)
