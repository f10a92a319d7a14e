"""qlab: a workbook for learning and experimenting with neural-network quantization.

Importing qlab is quick and has no side effects: it seeds nothing, prints nothing
and does not import TensorFlow. Everything below is loaded on first use, and the
modules that need TensorFlow get it through ``qlab._keras``, the one place that
picks Keras 2.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (loaded lazily by __getattr__ below)
_LAZY: dict[str, str] = {
    "load_mnist": "qlab.data",
    "set_seed": "qlab.seed",
    "record": "qlab.notebook",
    "expect_error": "qlab.notebook",
    "environment_report": "qlab.environment",
    "check_environment": "qlab.environment",
    # TensorFlow and Keras 2 (tf_keras) as qlab configures them, for notebooks: qlab.tf, qlab.keras
    "tf": "qlab._keras",
    "keras": "qlab._keras",
    "QuantParams": "qlab.quant",
    "choose_quant_params": "qlab.quant",
    "quantize": "qlab.quant",
    "dequantize": "qlab.quant",
    "fake_quant": "qlab.quant",
    "nudge_range": "qlab.quant",
    "minmax_range": "qlab.calibration",
    "moving_average_range": "qlab.calibration",
    "percentile_range": "qlab.calibration",
    "mse_optimal_range": "qlab.calibration",
    "estimate_range": "qlab.calibration",
    "clipping_error_curve": "qlab.calibration",
    "mse": "qlab.metrics",
    "max_abs_error": "qlab.metrics",
    "sqnr_db": "qlab.metrics",
    "bucket_occupancy": "qlab.metrics",
    "error_report": "qlab.metrics",
    "describe_buckets": "qlab.metrics",
    "simulate_chain": "qlab.accumulate",
    "MODELS": "qlab.models",
    "load_or_train": "qlab.models",
    "mnist_for": "qlab.models",
    "VARIANTS": "qlab.conversion",
    "convert": "qlab.conversion",
    "convert_qat": "qlab.conversion",
    "representative_dataset": "qlab.conversion",
    "evaluate_tflite": "qlab.tflite",
    "predict_tflite": "qlab.tflite",
    "measure_latency": "qlab.tflite",
    "compare": "qlab.pipeline",
    "compare_keras_model": "qlab.pipeline",
    "load_keras_model": "qlab.models",
    "calibration_study": "qlab.pipeline",
    "ComparisonResult": "qlab.pipeline",
    "quantize_whole_model": "qlab.qat",
    "quantize_partial": "qlab.qat",
    "load_or_fine_tune": "qlab.qat",
    "layer_support_table": "qlab.qat",
    "layer_error_table": "qlab.debug",
    "selective_quantization": "qlab.debug",
    "plot_accuracy_vs_size": "qlab.plots",
    "plot_latency": "qlab.plots",
    "plot_layer_errors": "qlab.plots",
}
# sub-modules reachable as attributes, e.g. ``qlab.data.load_mnist()``
_SUBMODULES = {"data", "seed", "notebook", "environment", "paths", "io", "intsim", "intkernels",
               "quant", "calibration", "metrics", "fixedpoint", "accumulate", "widget_figures",
               "widgets",
               "models", "cache", "conversion", "tflite", "qat", "pipeline", "debug", "plots"}

__all__ = sorted([*_LAZY, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"qlab.{name}")
    else:
        raise AttributeError(f"module 'qlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
