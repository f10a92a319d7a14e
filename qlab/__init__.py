"""qlab: a workbook for learning and experimenting with neural-network quantization.

The package is built in layers, one folder each; a module imports only from its
own layer or the ones listed before it (``tests/unit/test_layers.py`` checks it):

- ``qlab.numerics``: quantization math with numpy only (scale and zero point,
  calibration, error metrics, fixed point, integer kernels, synthetic tensors);
- ``qlab.files``: where data and artifacts live, atomic writes, MNIST;
- ``qlab.lite``: TensorFlow, Keras 2, TFMOT and LiteRT (the model zoo, conversion,
  the interpreter, QAT, the debugger, the integer simulator);
- ``qlab.plots``: one module per picture, a pure compute function and a draw
  function on a matplotlib ``Figure`` (no pyplot, no TensorFlow);
- ``qlab.widgets``: thin ipywidgets wrappers around the plots;
- ``qlab.workbook``: the comparison pipeline, the notebook runner and records,
  the benchmark.

Importing qlab is quick and has no side effects: it seeds nothing, prints nothing
and does not import TensorFlow. Everything below is loaded on first use, and the
modules that need TensorFlow get it through ``qlab.lite.keras2``, the one place
that picks Keras 2.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (loaded lazily by __getattr__ below)
_LAZY: dict[str, str] = {
    "load_mnist": "qlab.files.data",
    "set_seed": "qlab.lite.seed",
    "record": "qlab.workbook.notebook",
    "expect_error": "qlab.workbook.notebook",
    "environment_report": "qlab.lite.environment",
    "check_environment": "qlab.lite.environment",
    # TensorFlow and Keras 2 (tf_keras) as qlab configures them, for notebooks: qlab.tf, qlab.keras
    "tf": "qlab.lite.keras2",
    "keras": "qlab.lite.keras2",
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
    "MODELS": "qlab.lite.models",
    "load_or_train": "qlab.lite.models",
    "mnist_for": "qlab.lite.models",
    "VARIANTS": "qlab.lite.conversion",
    "convert": "qlab.lite.conversion",
    "convert_qat": "qlab.lite.conversion",
    "representative_dataset": "qlab.lite.conversion",
    "evaluate_tflite": "qlab.lite.tflite",
    "predict_tflite": "qlab.lite.tflite",
    "measure_latency": "qlab.lite.tflite",
    "compare": "qlab.workbook.pipeline",
    "compare_keras_model": "qlab.workbook.pipeline",
    "load_keras_model": "qlab.lite.models",
    "rebuild_in_tf_keras": "qlab.lite.keras3",
    "keras3_fit_progress": "qlab.lite.progress",
    "cpu_mirrored_strategy": "qlab.lite.distribute",
    "quantize_under": "qlab.lite.distribute",
    "logical_cpus": "qlab.lite.distribute",
    "ComparisonResult": "qlab.workbook.pipeline",
    "quantize_whole_model": "qlab.lite.qat",
    "quantize_partial": "qlab.lite.qat",
    "load_or_fine_tune": "qlab.lite.qat",
    "layer_support_table": "qlab.lite.qat",
    "layer_error_table": "qlab.lite.debug",
    "selective_quantization": "qlab.lite.debug",
    "weight_quant_params": "qlab.numerics.quant",
    "tflite_round": "qlab.numerics.rounding",
    "ROUNDING_NOISE": "qlab.numerics.metrics",
    "synthetic_tensor": "qlab.numerics.synthetic",
    "synthetic_depthwise_kernel": "qlab.numerics.synthetic",
    "channel_ranges_view": "qlab.numerics.per_channel",
    "layer_weights": "qlab.lite.introspect",
    "weight_layers": "qlab.lite.introspect",
    "channel_ranges_table": "qlab.lite.introspect",
    "static_bucket_explorer": "qlab.plots.buckets",
    "static_error_accumulation": "qlab.plots.accumulation",
    "static_per_channel_ranges": "qlab.plots.channel_ranges",
    "draw_channel_ranges": "qlab.plots.channel_ranges",
    "plot_accuracy_vs_size": "qlab.plots.comparison",
    "plot_latency": "qlab.plots.comparison",
    "plot_accuracy_delta": "qlab.plots.comparison",
    "plot_layer_errors": "qlab.plots.layer_errors",
    "plot_stages": "qlab.plots.deep_compression",
}
# sub-modules reachable as attributes, e.g. ``qlab.data.load_mnist()`` -> the module in its layer
_SUBMODULES: dict[str, str] = {
    # the layers themselves
    "numerics": "qlab.numerics", "files": "qlab.files", "lite": "qlab.lite", "plots": "qlab.plots",
    "widgets": "qlab.widgets", "workbook": "qlab.workbook",
    # short names for the modules lessons use
    "quant": "qlab.numerics.quant", "calibration": "qlab.numerics.calibration",
    "metrics": "qlab.numerics.metrics", "fixedpoint": "qlab.numerics.fixedpoint",
    "accumulate": "qlab.numerics.accumulate", "intkernels": "qlab.numerics.intkernels",
    "data": "qlab.files.data", "io": "qlab.files.io", "paths": "qlab.files.paths",
    "rounding": "qlab.numerics.rounding", "synthetic": "qlab.numerics.synthetic",
    "per_channel": "qlab.numerics.per_channel", "introspect": "qlab.lite.introspect",
    "seed": "qlab.lite.seed", "environment": "qlab.lite.environment", "models": "qlab.lite.models",
    "cache": "qlab.lite.cache", "conversion": "qlab.lite.conversion", "tflite": "qlab.lite.tflite",
    "qat": "qlab.lite.qat", "keras3": "qlab.lite.keras3",
    "distribute": "qlab.lite.distribute", "shipped": "qlab.lite.shipped",
    "prune": "qlab.lite.prune", "cluster": "qlab.lite.cluster", "compression": "qlab.numerics.compression",
    "deep_compression": "qlab.lite.deep_compression",
    "debug": "qlab.lite.debug", "intsim": "qlab.lite.intsim",
    "pipeline": "qlab.workbook.pipeline", "notebook": "qlab.workbook.notebook",
    "studies": "qlab.workbook.studies",
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
