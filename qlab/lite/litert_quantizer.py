"""The LiteRT Quantizer (``ai-edge-quantizer``): recipes applied to a float ``.tflite``, beside the converter.

The converter quantizes while it converts a Keras model; the LiteRT Quantizer starts
from the float32 ``.tflite`` and applies a *recipe*: a list of configs, each naming a
scope (a regex searched in an op's output tensor names), an op (or ``*`` for every
op it supports), bit widths, a weight granularity and a weight algorithm. Later
configs win over earlier ones where both match. An op a config does not support
(4-bit static weights exist only for ``CONV_2D`` and ``FULLY_CONNECTED``) falls back
to an earlier config, or stays float: hence the layered ``aeq_int4_static`` recipe,
8 bits for every op and then 4 bits for those two.

qlab adds what the package leaves to the user: checks that name the problem (a file
that is already quantized, a recipe op or scope the model does not have, calibration
images of the wrong shape), the converter's min/max calibration as an option beside
the Quantizer's moving average (:data:`CALIBRATIONS`), the machine's core count for its
threads, a tensor-by-tensor search for the first difference between two files
(:func:`first_difference`) and a count of the ops that are not integer-only
(:func:`qlab.lite.tflite.integer_only_ops`, taught here). Taught in ``10_litert_quantizer``.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from qlab.lite.conversion import AEQ_VARIANTS
from qlab.lite.quiet import tflite_chatter_silenced
from qlab.lite.tflite import count_non_integer_ops, file_ops, integer_only_ops, read_flatbuffer

if TYPE_CHECKING:
    import pandas as pd

#: The public names; the op-table readers come from :mod:`qlab.lite.tflite`, taught here.
__all__ = [
    "AEQ_VARIANTS", "ALGORITHMS", "BLOCK_SIZE", "CALIBRATIONS", "FOUR_BIT_ROWS", "ROUTE_CALIBRATIONS",
    "ROUTE_PAIRS", "calibrate", "calibration_data", "check_algorithm", "check_float_tflite", "check_recipe",
    "count_non_integer_ops", "file_ops", "first_difference", "four_bit_recovery", "four_bit_study",
    "integer_only_ops", "model_signature", "quantize", "quantize_variant", "read_flatbuffer", "route_rows",
    "routes_study", "stored_outputs", "validate", "variant_recipe", "weight_rounding",
]

#: How static recipes turn per-image activation ranges into one range per tensor: the Quantizer's
#: default moving average (0.95) of each image's min and max, or the converter's global min and max.
CALIBRATIONS = ("moving_average", "min_max")
#: qlab's names for the Quantizer's weight algorithms (``recipe.AlgorithmName``).
ALGORITHMS = {"min_max": "min_max_uniform_quantize", "mse": "MSE", "octav": "OCTAV"}
#: Block size of ``aeq_int4_blockwise``: one scale per 32 consecutive input weights of a dense row.
BLOCK_SIZE = 32


def _aeq() -> Any:
    """The ``ai_edge_quantizer`` modules qlab uses (imported on first use)."""
    from types import SimpleNamespace

    from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe_manager
    from ai_edge_quantizer import model_validator
    from ai_edge_quantizer.utils import qsv_utils, tfl_interpreter_utils, validation_utils

    return SimpleNamespace(calibrator=calibrator, qtyping=qtyping, quantizer=quantizer,
                           recipe_manager=recipe_manager, model_validator=model_validator,
                           qsv_utils=qsv_utils, tfl_interpreter_utils=tfl_interpreter_utils,
                           validation_utils=validation_utils)


@contextlib.contextmanager
def _quantizer_chatter_silenced() -> Iterator[None]:
    """Hide the Quantizer's routine noise: its tqdm bars, LiteRT's warning that keeping every
    tensor is for debugging (calibration and validation need exactly that) and native log lines."""
    with tflite_chatter_silenced(), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        yield


def check_algorithm(algorithm: Any) -> str:
    """The Quantizer's key for one of :data:`ALGORITHMS`; a ValueError names the valid ones."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown weight algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[algorithm]


def variant_recipe(variant: str, algorithm: str = "min_max", model_bytes: bytes | None = None
                   ) -> list[dict[str, Any]]:
    """The Quantizer recipe of one of :data:`AEQ_VARIANTS`, as ``Quantizer.load_quantization_recipe`` takes it.

    Args:
        variant: the variant name.
        algorithm: the weight algorithm (:data:`ALGORITHMS`) of its weight configs.
        model_bytes: a float ``.tflite``; when given, the configs for an op it does not have are
            left out (MobileNet v1 ends in a 1x1 CONV_2D, not FULLY_CONNECTED), so the recipe
            passes :func:`check_recipe`; and for ``aeq_int4_blockwise`` a FULLY_CONNECTED whose
            input size is not a multiple of :data:`BLOCK_SIZE` gets per-channel INT4 weights
            (the Quantizer refuses blocks that do not tile the row).
    """
    aeq, key = _aeq(), check_algorithm(algorithm)
    ops, granularity = aeq.qtyping.TFLOperationName, aeq.qtyping.QuantGranularity
    manager = aeq.recipe_manager.RecipeManager()
    if variant in ("aeq_int8_per_channel", "aeq_int8_per_tensor", "aeq_int4_static"):
        per_tensor = variant == "aeq_int8_per_tensor"
        manager.add_static_config(".*", ops.ALL_SUPPORTED, 8, 8, algorithm_key=key, weight_granularity=(
            granularity.TENSORWISE if per_tensor else granularity.CHANNELWISE))
        if variant == "aeq_int4_static":  # 4-bit static weights exist for these two ops only
            for op in (ops.CONV_2D, ops.FULLY_CONNECTED):
                manager.add_static_config(".*", op, 8, 4, algorithm_key=key)
    elif variant == "aeq_dynamic_int8":
        manager.add_dynamic_config(".*", ops.ALL_SUPPORTED, 8, algorithm_key=key)
    elif variant == "aeq_int4_weight_only":  # layered too: 4-bit weight-only covers no DEPTHWISE_CONV_2D
        manager.add_weight_only_config(".*", ops.ALL_SUPPORTED, 8, algorithm_key=key)
        for op in (ops.CONV_2D, ops.FULLY_CONNECTED):
            manager.add_weight_only_config(".*", op, 4, algorithm_key=key)
    elif variant == "aeq_int4_blockwise":  # blockwise weights exist for dynamic FULLY_CONNECTED only
        manager.add_dynamic_config(".*", ops.ALL_SUPPORTED, 8, algorithm_key=key)
        manager.add_dynamic_config(".*", ops.CONV_2D, 4, algorithm_key=key)
        manager.add_dynamic_config(".*", ops.FULLY_CONNECTED, 4, algorithm_key=key,
                                   granularity=getattr(granularity, f"BLOCKWISE_{BLOCK_SIZE}"))
    else:
        raise ValueError(f"unknown LiteRT Quantizer variant {variant!r}; valid: {', '.join(AEQ_VARIANTS)}")
    if model_bytes is None:
        return manager.get_quantization_recipe()
    ops_in_file = file_ops(model_bytes)
    if variant == "aeq_int4_blockwise":
        for op in ops_in_file:
            if op["op"] == "FULLY_CONNECTED" and op["input_shapes"][1][-1] % BLOCK_SIZE:
                manager.add_dynamic_config(f"^{re.escape(op['scope'])}$", ops.FULLY_CONNECTED, 4, algorithm_key=key)
    recipe = manager.get_quantization_recipe()
    present = {op["op"] for op in ops_in_file}
    return [config for config in recipe if config["operation"] in ("*", *present)]


def check_float_tflite(model_bytes: Any, argument: str = "model_bytes") -> bytes:
    """``model_bytes`` as bytes if it is a float ``.tflite`` the Quantizer can start from; else a ValueError.

    A file with QUANTIZE/DEQUANTIZE ops (float16 weights have them too) or ops on integer or
    float16 tensors has been quantized already (by the converter or the Quantizer): quantizing
    it again is not what a recipe means.
    """
    found = set()
    for op in file_ops(model_bytes):
        if op["op"] in ("QUANTIZE", "DEQUANTIZE"):
            found.add(f"{op['op']} ops")
        found.update(f"{t} tensors" for t in op["types"] if t in ("INT4", "INT8", "UINT8", "INT16", "FLOAT16"))
    if found:
        raise ValueError(f"{argument} is already quantized (it has {', '.join(sorted(found))}); the LiteRT "
                         "Quantizer starts from a float32 .tflite, such as qlab.lite.conversion.convert(model, "
                         "'float32')")
    return bytes(model_bytes)


def check_recipe(model_bytes: bytes, recipe: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each config of ``recipe`` with the ops of ``model_bytes`` it matches; a ValueError for one that matches none.

    The Quantizer itself skips a config whose op or scope the model does not have, and the
    layer it meant stays as it was without a word: a typo in a layer name would go unseen.
    Returns one dict per config: ``regex``, ``operation``, ``matched`` (op indices).
    """
    if not isinstance(recipe, (list, tuple)) or not recipe:
        raise ValueError("recipe must be a non-empty list of configs (dicts with 'regex' and 'operation')")
    ops, coverage = file_ops(model_bytes), []
    have = sorted({op["op"] for op in ops})
    for number, config in enumerate(recipe):
        if not isinstance(config, dict) or "regex" not in config or "operation" not in config:
            raise ValueError(f"recipe config {number} must be a dict with 'regex' and 'operation', got {config!r}")
        operation = str(getattr(config["operation"], "value", config["operation"]))
        if operation != "*" and operation not in have:
            raise ValueError(f"recipe config {number} names op {operation!r}, which the model does not have; "
                             f"its ops: {', '.join(have)}")
        try:
            scope = re.compile(config["regex"])
        except (re.error, TypeError) as error:
            raise ValueError(f"recipe config {number} has an invalid regex {config['regex']!r} ({error})") from error
        matched = [i for i, op in enumerate(ops)
                   if (operation == "*" or op["op"] == operation) and scope.search(op["scope"])]
        if not matched:
            scopes = ", ".join(op["scope"].rstrip(";") for op in ops if operation == "*" or op["op"] == operation)
            raise ValueError(f"recipe config {number}: regex {config['regex']!r} matches no "
                             f"{'op' if operation == '*' else operation + ' op'} of the model; "
                             f"the scopes it could match: {scopes}")
        coverage.append({"regex": config["regex"], "operation": operation, "matched": matched})
    return coverage


def model_signature(model_bytes: bytes) -> tuple[str, str, tuple[int, ...]]:
    """``(signature key, input name, input shape)`` of a single-input ``.tflite``."""
    from qlab.lite.tflite import make_interpreter

    interpreter = make_interpreter(model_bytes)
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise ValueError(f"the model has {len(signatures)} signatures; qlab quantizes single-signature models")
    key = next(iter(signatures))
    inputs = signatures[key]["inputs"]
    if len(inputs) != 1:
        raise ValueError(f"the model has {len(inputs)} inputs; qlab quantizes single-input models")
    shape = tuple(int(d) for d in interpreter.get_input_details()[0]["shape"])
    return key, inputs[0], shape


def calibration_data(model_bytes: bytes, x: Any, num_samples: int) -> dict[str, list[dict[str, np.ndarray]]]:
    """The Quantizer's calibration (or validation) data: ``{signature: [{input: one image}, ...]}``.

    The first ``num_samples`` images of ``x``, one at a time, checked and taken by the converter's
    :func:`qlab.lite.conversion.representative_dataset` against the file's input shape.
    """
    from qlab.lite.conversion import representative_dataset

    key, name, shape = model_signature(model_bytes)
    if isinstance(x, np.ndarray) and len(x) == 0:
        raise ValueError("calibration images are empty: there is nothing to calibrate on")
    images = [batch[0] for batch in representative_dataset(x, num_samples, shape)()]  # its checks, its order
    if not all(np.isfinite(image).all() for image in images):
        raise ValueError("calibration images contain NaN or inf")
    return {key: [{name: image} for image in images]}


def _threads(num_threads: int | None) -> int:
    from qlab.lite.tflite import cpu_count

    return cpu_count() if num_threads is None else num_threads


def calibrate(float_bytes: bytes, recipe: Sequence[dict[str, Any]], x: np.ndarray, num_samples: int,
              calibration: str = "moving_average", num_threads: int | None = None,
              xnnpack: bool = True) -> dict[str, Any]:
    """Activation ranges ``{tensor name: {"min", "max"}}`` of a float ``.tflite`` for a static ``recipe``.

    ``calibration="moving_average"`` is ``Quantizer.calibrate`` (each image's min and max folded
    in with a 0.95 moving average); ``"min_max"`` keeps the least min and greatest max over all
    images, as the TFLite converter does. The Quantizer runs the float file on LiteRT's default
    XNNPACK kernels; ``xnnpack=False`` runs it on TFLite's builtin kernels, as the converter's
    calibrator does. The two sum in another order, and a range can differ in its last float32 bit.
    """
    aeq = _aeq()
    if calibration not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {calibration!r}; valid: {', '.join(CALIBRATIONS)}")
    data = calibration_data(float_bytes, x, num_samples)
    update = aeq.qsv_utils.moving_average_update if calibration == "moving_average" \
        else aeq.qsv_utils.min_max_update
    manager = aeq.recipe_manager.RecipeManager()
    manager.load_quantization_recipe(list(recipe))
    with _quantizer_chatter_silenced():
        calibrator = aeq.calibrator.Calibrator(float_bytes, num_threads=_threads(num_threads),
                                               qsv_update_func=update)
        if not xnnpack:  # the Calibrator always asks for XNNPACK; its interpreter is the one thing swapped
            calibrator._tfl_interpreter = aeq.tfl_interpreter_utils.create_tfl_interpreter(
                float_bytes, use_xnnpack=False, num_threads=_threads(num_threads), preserve_all_tensors=True)
        calibrator.calibrate(data, manager)
    return calibrator.get_model_qsvs()


def quantize(float_bytes: Any, recipe: Sequence[dict[str, Any]], x: np.ndarray | None = None,
             num_samples: int = 500, calibration: str = "moving_average",
             num_threads: int | None = None, xnnpack: bool = True) -> bytes:
    """A float ``.tflite`` quantized by the LiteRT Quantizer with ``recipe``; the new file's bytes.

    The same steps as ``Quantizer(float_bytes)``, ``load_quantization_recipe``, ``calibrate``
    and ``quantize``, with the checks above: a float file, a recipe whose every config
    matches an op of the model, calibration images shaped like its input (static recipes
    only). Taught in ``10_litert_quantizer``.

    Args:
        float_bytes: the float32 ``.tflite``.
        recipe: a list of configs (``recipe.static_wi8_ai8()``, :func:`variant_recipe`, ...).
        x: float32 images shaped like the model input, for static recipes.
        num_samples: how many of ``x`` calibrate (the converter's variants use the same ones).
        calibration: one of :data:`CALIBRATIONS`.
        num_threads: interpreter threads for calibration (default: this machine's cores).
        xnnpack: calibrate on LiteRT's XNNPACK kernels (the Quantizer's way) or, False, on
            TFLite's builtin kernels (the converter's); see :func:`calibrate`.
    """
    aeq = _aeq()
    if calibration not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {calibration!r}; valid: {', '.join(CALIBRATIONS)}")
    float_bytes = check_float_tflite(float_bytes, "float_bytes")
    check_recipe(float_bytes, recipe)
    quantizer = aeq.quantizer.Quantizer(float_bytes)
    quantizer.load_quantization_recipe(list(recipe))
    ranges = None
    if quantizer.need_calibration:
        if x is None:
            raise ValueError("this recipe quantizes activations (static): it needs calibration images x")
        ranges = calibrate(float_bytes, recipe, x, num_samples, calibration, num_threads, xnnpack)
    with _quantizer_chatter_silenced():
        result = quantizer.quantize(ranges, enable_progress_report=False)
    return bytes(result.quantized_model)


def quantize_variant(float_bytes: bytes, variant: str, x: np.ndarray | None = None, num_samples: int = 500,
                     algorithm: str = "min_max", calibration: str = "moving_average", xnnpack: bool = True) -> bytes:
    """One of :data:`AEQ_VARIANTS` of a float ``.tflite`` (``qlab compare`` calls this)."""
    return quantize(float_bytes, variant_recipe(variant, algorithm, float_bytes), x, num_samples, calibration,
                    xnnpack=xnnpack)


def validate(float_bytes: bytes, quantized_bytes: bytes, x: np.ndarray, num_samples: int = 10,
             num_threads: int | None = None) -> "pd.DataFrame":
    """The Quantizer's tensor-by-tensor comparison of a quantized file with its float original.

    ``Quantizer.validate``'s measure (``model_validator.compare_model``): both files run on the
    same images, and every tensor the two share by name is compared after dequantizing: MSE,
    SNR (the Quantizer's power ratio of the float signal to the error, here in dB) and cosine
    similarity. One row per tensor, the input first, then the tensors the float file's ops
    write in execution order, then constants: ``tensor``, ``kind`` (input, intermediate,
    constant, output), ``mse``, ``snr_db``, ``cosine``.
    """
    import pandas as pd

    aeq = _aeq()
    float_bytes = check_float_tflite(float_bytes, "float_bytes")
    read_flatbuffer(quantized_bytes, "quantized_bytes")
    data = calibration_data(float_bytes, x, num_samples)
    metrics = [aeq.validation_utils.ValidationErrorMetric.MSE, aeq.validation_utils.ValidationErrorMetric.SNR,
               aeq.validation_utils.ValidationErrorMetric.COSINE_SIMILARITY]
    with _quantizer_chatter_silenced():
        result = aeq.model_validator.compare_model(float_bytes, bytes(quantized_bytes), data, metrics,
                                                   compare_fns=None, num_threads=_threads(num_threads))
    order = {name: i for i, op in enumerate(file_ops(float_bytes)) for name in op["output_names"]}
    rows = []
    for key in result.available_signature_keys():
        signature = result.get_signature_comparison_result(key)
        for kind in ("input", "intermediate", "constant", "output"):
            for tensor, values in getattr(signature, f"{kind}_tensors").items():
                snr = values.get("snr")
                rows.append({"tensor": tensor, "kind": kind, "mse": values.get("mse"),
                             "snr_db": None if snr is None else float(10 * np.log10(max(snr, 1e-30))),
                             "cosine": values.get("cosine_similarity"),
                             "_order": order.get(tensor, -1 if kind == "input" else len(order))})
    table = pd.DataFrame(rows).sort_values(["_order", "kind"], kind="stable", ignore_index=True)
    return table.drop(columns="_order")


def weight_rounding(float_bytes: bytes, a_bytes: bytes, b_bytes: bytes, op_index: int) -> dict[str, Any]:
    """The first weight of op ``op_index`` that two quantized files of ``float_bytes`` store differently, and why.

    Returns its ``position``, the ``float weight`` and the ``scale`` both files share, the
    quotient ``weight / scale`` computed in ``float32`` and in ``float64``, and the two stored
    integers ``a`` and ``b``: a quotient that is a tie (x.5) in one precision and not in the
    other rounds apart. Empty when the op has no weights or its weights are the same.
    """
    from qlab.lite.tflite import WEIGHT_OPS, file_weights

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
    from qlab.lite.tflite import interpreter_keeping_all_tensors, quantize_input

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


def _static_4bit_recipe(model_bytes: bytes, per_tensor: bool, algorithm: str) -> list[dict[str, Any]]:
    """``aeq_int4_static``'s layering with a choice of weight granularity (the 4-bit study's break).

    Unlike :func:`variant_recipe`, the 8-bit config keeps min-max weights whatever ``algorithm``
    says, so the study varies only the 4-bit weights' algorithm.
    """
    aeq, key = _aeq(), check_algorithm(algorithm)
    ops, granularity = aeq.qtyping.TFLOperationName, aeq.qtyping.QuantGranularity
    weights = granularity.TENSORWISE if per_tensor else granularity.CHANNELWISE
    manager = aeq.recipe_manager.RecipeManager()
    manager.add_static_config(".*", ops.ALL_SUPPORTED, 8, 8, weight_granularity=weights)
    present = {op["op"] for op in file_ops(model_bytes)}
    for op in (ops.CONV_2D, ops.FULLY_CONNECTED):
        if op.value in present:
            manager.add_static_config(".*", op, 8, 4, weight_granularity=weights, algorithm_key=key)
    return manager.get_quantization_recipe()


def stored_outputs(model_bytes: bytes, scores: np.ndarray) -> np.ndarray:
    """The integers an int8-output file stored for ``scores`` (its dequantized outputs); float outputs as they are.

    Two files can store the same integers under output scales one float32 step apart: their
    dequantized scores then differ in the last bits though the files computed the same thing.
    """
    from qlab.lite.tflite import make_interpreter, quantize_input

    detail = make_interpreter(model_bytes).get_output_details()[0]
    if not np.issubdtype(detail["dtype"], np.integer):
        return scores
    return quantize_input(scores, detail).astype(np.int64)  # exact: each score is (q - zero_point) * scale


#: The routes study's pairs: (Quantizer variant, the converter variant it is set beside).
ROUTE_PAIRS = (("aeq_int8_per_channel", "int8_per_channel"), ("aeq_int8_per_tensor", "int8_per_tensor"))
#: The routes study's calibrations, one difference from the converter's removed at a time:
#: label -> (calibration, XNNPACK kernels).
ROUTE_CALIBRATIONS = {"moving average": ("moving_average", True), "min/max": ("min_max", True),
                      "min/max, builtin kernels": ("min_max", False)}


def route_rows(float_bytes: bytes, converter_bytes: bytes, variant: str, x: np.ndarray, x_test: np.ndarray,
               y_test: np.ndarray, num_samples: int) -> list[dict[str, Any]]:
    """The Quantizer's ``variant`` made with each of :data:`ROUTE_CALIBRATIONS`, set beside the converter's file.

    One row per calibration: both files' accuracy on ``x_test``, size and ops that are not
    integer-only (:func:`count_non_integer_ops`), the share of identical stored output values and
    of images whose every score is identical, top-1 agreement, and the first tensor where the
    files differ (:func:`first_difference` on 50 test images), with the tensors of the
    Quantizer's file that carry the converter's parameters when those differ.
    """
    from qlab.lite.tflite import predict_tflite

    their_scores = predict_tflite(converter_bytes, x_test)
    theirs_stored = stored_outputs(converter_bytes, their_scores)
    rows = []
    for label, (calibration, xnnpack) in ROUTE_CALIBRATIONS.items():
        ours = quantize_variant(float_bytes, variant, x, num_samples, calibration=calibration, xnnpack=xnnpack)
        scores = predict_tflite(ours, x_test)
        first = first_difference(ours, converter_bytes, x_test[:50])
        same = stored_outputs(ours, scores) == theirs_stored
        rows.append({"quantizer": variant, "calibration": label,
                     "quantizer accuracy": float((scores.argmax(1) == y_test).mean()),
                     "converter accuracy": float((their_scores.argmax(1) == y_test).mean()),
                     "quantizer bytes": len(ours), "converter bytes": len(converter_bytes),
                     "quantizer non-integer ops": count_non_integer_ops(ours),
                     "converter non-integer ops": count_non_integer_ops(converter_bytes),
                     "identical values": float(same.mean()), "identical images": float(same.all(axis=1).mean()),
                     "top1 agreement": float((scores.argmax(1) == their_scores.argmax(1)).mean()),
                     "first difference": "none" if first["identical"] else first["what"],
                     "op index": first.get("op_index"), "op": first.get("op"), "tensor": first.get("tensor"),
                     "quantizer side": first.get("a"), "converter side": first.get("b"),
                     "converter parameters found at": "; ".join(first.get("b_parameters_in_a", [])),
                     "differing share": first.get("differing")})
    return rows


def routes_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = False) -> "pd.DataFrame":
    """The Quantizer's static int8 beside the converter's, same model, images and granularity.

    :func:`route_rows` for each of :data:`ROUTE_PAIRS`, with the converter's file converted
    from the same float model and calibrated on the same images. A recorded study for
    ``10_litert_quantizer``.
    """
    import pandas as pd

    from qlab.lite.conversion import DEFAULT_CALIBRATION_SAMPLES, convert
    from qlab.lite.models import load_or_train, mnist_for

    (x, _), (x_test, y_test) = mnist_for(model_name, size)
    model = load_or_train(model_name, size, seed, verbose=0)
    float_bytes, rows = convert(model, "float32"), []
    for variant, converter_variant in ROUTE_PAIRS:
        if verbose:
            print(f"  {model_name}: {variant} against {converter_variant}", flush=True)
        theirs = convert(model, converter_variant, x, DEFAULT_CALIBRATION_SAMPLES)
        rows += [{"model": model_name, "converter": converter_variant, **row}
                 for row in route_rows(float_bytes, theirs, variant, x, x_test, y_test, DEFAULT_CALIBRATION_SAMPLES)]
    return pd.DataFrame(rows)


#: The 4-bit study's rows: (label, how the file is made, weight algorithm).
FOUR_BIT_ROWS = tuple((f"{name} ({algorithm})", name, algorithm)
                      for name in ("static per-tensor", "static per-channel", "weight-only per-channel")
                      for algorithm in ALGORITHMS) + (("QAT 4-bit (converter)", "qat_4bit", "min_max"),)


def four_bit_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = False) -> "pd.DataFrame":
    """4-bit weights after training (the Quantizer) and with training (TFMOT QAT, the converter).

    Rows: float32, then :data:`FOUR_BIT_ROWS`: the layered static recipe with per-tensor and
    per-channel INT4 weights and ``aeq_int4_weight_only``, each with the min-max, MSE and OCTAV
    weight algorithms, and the zoo's ``qat_4bit`` file. Columns: ``accuracy``, its change from
    float32 in points with a 95% paired bootstrap interval, ``bytes``, ``size ratio`` (float32
    / file) and ``non-integer ops``. A recorded study for ``10_litert_quantizer``.
    """
    import pandas as pd

    from qlab.lite.conversion import DEFAULT_CALIBRATION_SAMPLES, convert, convert_qat
    from qlab.lite.models import load_or_train, mnist_for
    from qlab.lite.qat import load_or_fine_tune
    from qlab.lite.tflite import predict_tflite
    from qlab.numerics.metrics import gain_columns

    (x, _), (x_test, y_test) = mnist_for(model_name, size)
    float_bytes = convert(load_or_train(model_name, size, seed, verbose=0), "float32")
    files = {"float32": float_bytes}
    for label, how, algorithm in FOUR_BIT_ROWS:
        if verbose:
            print(f"  {model_name}: {label}", flush=True)
        if how == "qat_4bit":
            files[label] = convert_qat(load_or_fine_tune(model_name, "qat_4bit", size, seed, verbose=0))
        elif how == "weight-only per-channel":
            files[label] = quantize_variant(float_bytes, "aeq_int4_weight_only", algorithm=algorithm)
        else:
            files[label] = quantize(float_bytes, _static_4bit_recipe(float_bytes, how == "static per-tensor",
                                                                     algorithm), x, DEFAULT_CALIBRATION_SAMPLES)
    scores = {label: predict_tflite(b, x_test) for label, b in files.items()}
    rows = []
    for label, model_bytes in files.items():
        row = {"model": model_name, "file": label, "accuracy": float((scores[label].argmax(1) == y_test).mean()),
               "bytes": len(model_bytes), "size ratio": len(float_bytes) / len(model_bytes),
               "non-integer ops": count_non_integer_ops(model_bytes)}
        row.update(gain_columns(scores[label], scores["float32"], y_test, "vs float32 (points)",
                                "vs float32 low", "vs float32 high"))
        rows.append(row)
    return pd.DataFrame(rows)


def four_bit_recovery(table: "pd.DataFrame") -> "pd.DataFrame":
    """What wins back the loss of per-tensor 4-bit weights after training, per model, from :func:`four_bit_study`.

    The break is the layered static recipe with per-tensor min-max INT4 weights. Beside it, in
    points from float32: the same recipe with the MSE and with the OCTAV weight algorithm,
    per-channel min-max weights, and 4-bit QAT. ``recovered`` columns are the share of the
    break's loss each wins back (1 = all of it, negative = worse); None when there is no loss.
    """
    import pandas as pd

    arms = {"per-tensor min-max": "static per-tensor (min_max)", "per-tensor MSE": "static per-tensor (mse)",
            "per-tensor OCTAV": "static per-tensor (octav)", "per-channel min-max": "static per-channel (min_max)",
            "QAT 4-bit": "QAT 4-bit (converter)"}
    rows = []
    for model_name, group in table.groupby("model", sort=False):
        points = dict(zip(group["file"], group["vs float32 (points)"]))
        high = dict(zip(group["file"], group["vs float32 high"]))
        loss = -points[arms["per-tensor min-max"]]
        row = {"model": model_name, "break: loss (points)": loss,
               "break measurable": bool(high[arms["per-tensor min-max"]] < 0)}
        for arm, file in list(arms.items())[1:]:
            row[f"{arm} (points)"] = points[file]
            row[f"{arm} recovered"] = None if loss <= 0 else (points[file] + loss) / loss
        rows.append(row)
    return pd.DataFrame(rows)
