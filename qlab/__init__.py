"""qlab: a workbook for learning and experimenting with neural-network quantization.

The package is built in layers, one or more folders each; a module imports only from
its own layer or the ones listed before it, and no module imports itself back through
others (``tests/unit/test_layers.py`` checks both):

- ``qlab.numerics``: quantization math with numpy only (scale and zero point,
  calibration, error metrics, fixed point, integer kernels, synthetic tensors);
- ``qlab.files``: where data and artifacts live, atomic writes, MNIST;
- TensorFlow, Keras 2, TFMOT and LiteRT, a folder per family of techniques, each
  using only the ones before it:

  - ``qlab.zoo``: the model zoo, its cache and shipped weights, the Keras 2 / Keras 3
    adapters, seeding, progress and ``tf.distribute`` (lesson 03);
  - ``qlab.conversion``: the converter's variants, the LiteRT Quantizer, running and
    reading ``.tflite`` files, the integer-only simulator (lessons 03, 04, 10);
  - ``qlab.ptq`` and ``qlab.qat``: post-training techniques (representative data,
    activation ranges, batch-norm folding, equalization, bias correction, AdaRound, the
    debugger, error by depth; lessons 04, 05, 08) and quantization-aware training
    (whole model, annotated layers, QuantizeConfigs, ranges during training, placement,
    mixed precision; lessons 06, 07), side by side;
  - ``qlab.compression``: pruning, clustering and Deep Compression (lesson 09);
- ``qlab.plots``: one module per picture, a pure compute function and a draw
  function on a matplotlib ``Figure`` (no pyplot, no TensorFlow);
- ``qlab.widgets``: thin ipywidgets wrappers around the plots;
- ``qlab.workbook``: the comparison pipeline, the notebook runner and records,
  the lessons' recorded studies (``qlab.workbook.studies``), the exercises' checks
  (``qlab.check``) and the lessons' time estimates, the benchmark.

Importing qlab is quick and has no side effects: it seeds nothing, prints nothing
and does not import TensorFlow. Everything below is loaded on first use, and the
modules that need TensorFlow get it through ``qlab.zoo.keras2``, the one place
that picks Keras 2.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (loaded lazily by __getattr__ below)
_LAZY: dict[str, str] = {
    "load_mnist": "qlab.files.data",
    "set_seed": "qlab.zoo.seed",
    "record": "qlab.workbook.notebook",
    "expect_error": "qlab.workbook.notebook",
    "environment_report": "qlab.zoo.environment",
    "check_environment": "qlab.zoo.environment",
    # TensorFlow and Keras 2 (tf_keras) as qlab configures them, for notebooks: qlab.tf, qlab.keras
    "tf": "qlab.zoo.keras2",
    "keras": "qlab.zoo.keras2",
    "QuantParams": "qlab.numerics.quant",
    "choose_quant_params": "qlab.numerics.quant",
    "quantize": "qlab.numerics.quant",
    "dequantize": "qlab.numerics.quant",
    "fake_quant": "qlab.numerics.quant",
    "nudge_range": "qlab.numerics.quant",
    "minmax_range": "qlab.numerics.calibration",
    "moving_average_range": "qlab.numerics.calibration",
    "percentile_range": "qlab.numerics.calibration",
    "mse_optimal_range": "qlab.numerics.calibration",
    "estimate_range": "qlab.numerics.calibration",
    "clipping_error_curve": "qlab.numerics.calibration",
    "mse": "qlab.numerics.metrics",
    "max_abs_error": "qlab.numerics.metrics",
    "sqnr_db": "qlab.numerics.metrics",
    "bucket_occupancy": "qlab.numerics.metrics",
    "error_report": "qlab.numerics.metrics",
    "describe_buckets": "qlab.numerics.metrics",
    "top1_agreement": "qlab.numerics.metrics",
    "output_sqnr_db": "qlab.numerics.metrics",
    "softmax_kl": "qlab.numerics.metrics",
    "AccuracyDifference": "qlab.numerics.metrics",
    "paired_accuracy_difference": "qlab.numerics.metrics",
    "mcnemar_exact_p": "qlab.numerics.metrics",
    "fine_metrics": "qlab.numerics.metrics",
    "run_study": "qlab.workbook.studies",
    "simulate_chain": "qlab.numerics.accumulate",
    "MODELS": "qlab.zoo.models",
    "load_or_train": "qlab.zoo.models",
    "mnist_for": "qlab.zoo.models",
    "VARIANTS": "qlab.conversion.converter",
    "KERAS3_VARIANTS": "qlab.conversion.converter",
    "convert": "qlab.conversion.converter",
    "convert_qat": "qlab.conversion.converter",
    "representative_dataset": "qlab.conversion.converter",
    "evaluate_tflite": "qlab.conversion.tflite",
    "predict_tflite": "qlab.conversion.tflite",
    "measure_latency": "qlab.conversion.tflite",
    "compare": "qlab.workbook.pipeline",
    "compare_keras_model": "qlab.workbook.pipeline",
    "load_keras_model": "qlab.zoo.models",
    "rebuild_in_tf_keras": "qlab.zoo.keras3",
    "keras3_fit_progress": "qlab.zoo.progress",
    "cpu_mirrored_strategy": "qlab.zoo.distribute",
    "quantize_under": "qlab.qat.training",
    "logical_cpus": "qlab.zoo.distribute",
    "ComparisonResult": "qlab.workbook.pipeline",
    "quantize_whole_model": "qlab.qat.quantize",
    "quantize_partial": "qlab.qat.quantize",
    "load_or_fine_tune": "qlab.qat.training",
    "layer_support_table": "qlab.qat.quantize",
    "layer_error_table": "qlab.ptq.debug",
    "selective_quantization": "qlab.ptq.debug",
    "weight_quant_params": "qlab.numerics.quant",
    "tflite_round": "qlab.numerics.rounding",
    "ROUNDING_NOISE": "qlab.numerics.metrics",
    "synthetic_tensor": "qlab.numerics.synthetic",
    "synthetic_depthwise_kernel": "qlab.numerics.synthetic",
    "channel_ranges_view": "qlab.numerics.per_channel",
    "layer_weights": "qlab.zoo.introspect",
    "weight_layers": "qlab.zoo.introspect",
    "channel_ranges_table": "qlab.zoo.introspect",
    "static_bucket_explorer": "qlab.plots.buckets",
    "static_error_accumulation": "qlab.plots.accumulation",
    "static_per_channel_ranges": "qlab.plots.channel_ranges",
    "draw_channel_ranges": "qlab.plots.channel_ranges",
    "plot_accuracy_vs_size": "qlab.plots.comparison",
    "plot_latency": "qlab.plots.comparison",
    "plot_accuracy_delta": "qlab.plots.comparison",
    "plot_layer_errors": "qlab.plots.layer_errors",
    "plot_stages": "qlab.plots.deep_compression",
    "micro_interpreter": "qlab.conversion.micro",
    "micro_agreement": "qlab.conversion.micro",
    "smallest_arena": "qlab.conversion.micro",
    "Board": "qlab.conversion.micro_boards",
    "BOARDS": "qlab.conversion.micro_boards",
    "fit_table": "qlab.conversion.micro_boards",
    "plot_fit": "qlab.plots.micro_fit",
}
# sub-modules reachable as attributes, e.g. ``qlab.data.load_mnist()`` -> the module in its layer
_SUBMODULES: dict[str, str] = {
    # the layers and technique folders themselves
    "numerics": "qlab.numerics", "files": "qlab.files", "zoo": "qlab.zoo", "conversion": "qlab.conversion",
    "ptq": "qlab.ptq", "qat": "qlab.qat", "compression": "qlab.compression", "plots": "qlab.plots",
    "widgets": "qlab.widgets", "workbook": "qlab.workbook",
    # short names for the modules lessons use
    "quant": "qlab.numerics.quant", "calibration": "qlab.numerics.calibration",
    "metrics": "qlab.numerics.metrics", "fixedpoint": "qlab.numerics.fixedpoint",
    "accumulate": "qlab.numerics.accumulate", "intkernels": "qlab.numerics.intkernels",
    "data": "qlab.files.data", "io": "qlab.files.io", "paths": "qlab.files.paths",
    "rounding": "qlab.numerics.rounding", "synthetic": "qlab.numerics.synthetic",
    "per_channel": "qlab.numerics.per_channel", "introspect": "qlab.zoo.introspect",
    "seed": "qlab.zoo.seed", "environment": "qlab.zoo.environment", "models": "qlab.zoo.models",
    "cache": "qlab.zoo.cache", "converter": "qlab.conversion.converter", "tflite": "qlab.conversion.tflite",
    "tflite_file": "qlab.conversion.tflite_file",
    "keras3": "qlab.zoo.keras3", "distribute": "qlab.zoo.distribute", "shipped": "qlab.zoo.shipped",
    "prune": "qlab.compression.prune", "cluster": "qlab.compression.cluster",
    "deep_compression": "qlab.compression.deep_compression",
    "debug": "qlab.ptq.debug", "intsim": "qlab.conversion.intsim", "micro": "qlab.conversion.micro",
    "micro_boards": "qlab.conversion.micro_boards",
    "pipeline": "qlab.workbook.pipeline", "notebook": "qlab.workbook.notebook",
    "studies": "qlab.workbook.studies", "check": "qlab.workbook.check",
}
__all__ = sorted([*_LAZY, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'qlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
