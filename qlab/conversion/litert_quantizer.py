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
(:func:`qlab.conversion.file_diff.first_difference`) and a count of the ops that are not integer-only
(:func:`qlab.conversion.tflite_file.integer_only_ops`, taught here). Taught in ``10_litert_quantizer``.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from qlab.conversion.converter import AEQ_VARIANTS
from qlab.zoo.quiet import tflite_chatter_silenced
from qlab.conversion.file_diff import first_difference, stored_outputs, weight_rounding
from qlab.conversion.tflite_file import count_non_integer_ops, file_ops, integer_only_ops, read_flatbuffer
from qlab.numerics.validate import check_int

if TYPE_CHECKING:
    import pandas as pd

#: The public names; the op-table readers come from :mod:`qlab.conversion.tflite` and the file
#: comparisons from :mod:`qlab.conversion.file_diff`, both taught with the Quantizer.
__all__ = [
    "AEQ_VARIANTS", "ALGORITHMS", "BLOCK_SIZE", "CALIBRATIONS", "calibrate", "calibration_data",
    "check_algorithm", "check_float_tflite", "check_recipe", "count_non_integer_ops", "file_ops",
    "first_difference", "integer_only_ops", "mixed_weight_recipe", "model_signature", "quantize",
    "quantize_variant", "read_flatbuffer",
    "static_4bit_recipe", "stored_outputs", "validate", "variant_recipe", "weight_rounding",
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
                         "Quantizer starts from a float32 .tflite, such as qlab.conversion.converter.convert(model, "
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
    from qlab.conversion.tflite import make_interpreter

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
    :func:`qlab.conversion.converter.representative_dataset` against the file's input shape.
    """
    from qlab.conversion.converter import representative_dataset

    key, name, shape = model_signature(model_bytes)
    if isinstance(x, np.ndarray) and len(x) == 0:
        raise ValueError("calibration images are empty: there is nothing to calibrate on")
    images = [batch[0] for batch in representative_dataset(x, num_samples, shape)()]  # its checks, its order
    if not all(np.isfinite(image).all() for image in images):
        raise ValueError("calibration images contain NaN or inf")
    return {key: [{name: image} for image in images]}


def _threads(num_threads: int | None) -> int:
    from qlab.conversion.tflite import cpu_count

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


def static_4bit_recipe(model_bytes: bytes, per_tensor: bool, algorithm: str) -> list[dict[str, Any]]:
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


def mixed_weight_recipe(model_bytes: bytes, low_bits: int, low_scopes: str | None) -> list[dict[str, Any]]:
    """A dynamic-range recipe: 8-bit weights, ``low_bits`` for the FULLY_CONNECTED ops whose scope matches.

    ``low_scopes`` None lowers nothing (8 bits everywhere). Weights have one scale per output
    channel; activations stay float (quantized on the fly), so only the weights' bit width varies.
    """
    low_bits = check_int(low_bits, "low_bits", 2, 8)
    model_bytes = check_float_tflite(model_bytes)
    aeq = _aeq()
    ops, granularity = aeq.qtyping.TFLOperationName, aeq.qtyping.QuantGranularity
    manager = aeq.recipe_manager.RecipeManager()
    manager.add_dynamic_config(".*", ops.FULLY_CONNECTED, 8)
    if low_scopes is not None:
        matched = [op for op in file_ops(model_bytes) if op["op"] == "FULLY_CONNECTED"
                   and re.fullmatch(low_scopes, op["scope"])]
        if not matched:
            raise ValueError(f"no FULLY_CONNECTED op of the model has a scope matching {low_scopes!r}")
        manager.add_dynamic_config(low_scopes, ops.FULLY_CONNECTED, low_bits,
                                   granularity=granularity.CHANNELWISE)
    return manager.get_quantization_recipe()
