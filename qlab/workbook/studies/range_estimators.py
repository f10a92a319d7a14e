"""Study ``range_estimators`` (lesson 04): min-max, percentile and MSE activation ranges at 8 to 4 bits.

Each estimator's ranges are set in TFMOT's quantizers (:func:`qlab.ptq.ranges.quantize_with_ranges`);
at 8 bits the file is converted and run in LiteRT, below 8 bits the fake-quantized
Keras model is evaluated (no TFLite kernel exists), and the table says which.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

from qlab.numerics.validate import check_int, check_num_bits
from qlab.ptq.ranges import METHODS, check_images, check_method, quantize_with_ranges
from qlab.zoo.models import predict_keras

if TYPE_CHECKING:
    import pandas as pd


def compare_estimators(model: Any, data: Any, methods: Sequence[str] = tuple(METHODS),
                       bit_widths: Sequence[int] = (8, 6, 5, 4, 3), num_samples: int = 500,
                       name: str | None = None, seed: int = 0, verbose: bool = False
                       ) -> pd.DataFrame:
    """Accuracy and fine metrics of each range estimator at each activation bit width.

    8 bits: the frozen TFMOT model is converted to an int8 file and run with LiteRT;
    TFLite has no kernels for activations below 8 bits, so the fake-quantized Keras model is run
    (``evaluated_with`` says which). Everything is measured against the float model's
    scores on the same test images (:func:`qlab.numerics.metrics.fine_metrics`); the
    8-bit files also against the converter's own min/max int8 file calibrated on the same
    images (``agreement_with_converter``, ``sqnr_db_vs_converter``).
    Taught in ``04_post_training_quantization``.

    Args:
        model: the trained float Keras 2 model.
        data: ``((x_train, y_train), (x_test, y_test))``; the first ``num_samples``
            training images calibrate (as the converter would use them).
        methods, bit_widths: what to sweep.
        seed: seeds the sample of activation values the percentile and MSE
            estimators read (:func:`collect_activations`).
    """
    import pandas as pd

    from qlab.conversion.converter import convert, convert_qat
    from qlab.conversion.tflite import predict_tflite
    from qlab.numerics.metrics import fine_metrics, output_sqnr_db, top1_agreement

    methods = [check_method(m) for m in methods]
    bit_widths = [check_num_bits(b, high=8) for b in bit_widths]
    (x_train, _), (x_test, y_test) = data
    x_calib = check_images(model, x_train, "x_train")[:check_int(num_samples, "num_samples", 1, len(x_train))]
    x_test = check_images(model, x_test, "x_test")
    reference = predict_keras(model, x_test)
    # the converter's own min/max calibration on the same images: what the 8-bit files are compared with
    converter = predict_tflite(convert(model, "int8_per_channel", x_calib, len(x_calib)), x_test) \
        if 8 in bit_widths else None
    rows = []
    for bits in bit_widths:
        for method in methods:
            start = time.perf_counter()
            if verbose:
                print(f"  {name or model.name}: {method} ranges, {bits}-bit activations", flush=True)
            qat_model, ranges = quantize_with_ranges(model, x_calib, method, bits, seed=seed)
            if bits == 8:
                scores, how = predict_tflite(convert_qat(qat_model, int8_io=True), x_test), "litert int8"
            else:
                scores, how = predict_keras(qat_model, x_test), "keras fake-quant (no TFLite kernels)"
            same = {} if bits != 8 else {
                "agreement_with_converter": top1_agreement(converter, scores),
                "sqnr_db_vs_converter": output_sqnr_db(converter, scores)}
            rows.append({"model": name or model.name, "method": method, "num_bits": bits,
                         "evaluated_with": how, **fine_metrics(reference, scores, y_test),
                         "clipped % (mean)": float(ranges["clipped %"].mean()),
                         "activation SQNR dB (mean)": float(ranges["SQNR dB"].mean()),
                         **same, "seconds": round(time.perf_counter() - start, 1)})
    return pd.DataFrame(rows)


def estimator_study(model_name: str, size: str = "full", seed: int = 0, verbose: bool = True
                    ) -> pd.DataFrame:
    """:func:`compare_estimators` on zoo model ``model_name`` (a ``qlab.workbook.studies`` study).

    Full size: every estimator, 500 calibration images, 8, 6, 5, 4 and 3-bit activations.
    Smoke (for tests, under 15 s): min/max and MSE, 100 images, 8 and 4 bits.
    Taught in ``04_post_training_quantization``.
    """
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train(model_name, size, seed, verbose=0)
    if size == "full":
        methods, num_samples, bit_widths = tuple(METHODS), 500, (8, 6, 5, 4, 3)
    else:
        methods, num_samples, bit_widths = ("minmax", "mse"), 100, (8, 4)
    return compare_estimators(model, mnist_for(model_name, size), methods, bit_widths, num_samples,
                              name=model_name, seed=seed, verbose=verbose)
