"""Low-bit QAT beside its control, cached and shipped: lesson 06's live break and recovery.

At a weight bit width where post-training quantization breaks a model (3-bit weights on
``mobilenet_v1``), two fine-tunes with the same budget are compared:

- :func:`load_or_fine_tune_low_bit` with ``kind="qat"``: TFMOT's
  ``DefaultNBitQuantizeScheme(num_bits_weight=N, num_bits_activation=8)`` with every
  activation range started from the data (:func:`qlab.qat.training.n_bit_qat_from_data`),
  then fine-tuned;
- ``kind="control"``: the float model fine-tuned in float with exactly QAT's steps, images,
  batch size, optimizer, schedule and seed (:func:`float_fine_tune`), so that "QAT helped"
  is measured against "more training helped".

Both are cached like the zoo's other fine-tunes. The QAT fine-tunes of :data:`SHIPPED_LOW_BIT`
ship in ``data/models/``; the control (about 20 s on two cores for ``mobilenet_v1``) is made on
first use, which keeps the shipped models within their 100 MB budget. The recorded ``bits_picture`` study makes the same two
fine-tunes at every bit width (:mod:`qlab.workbook.studies.bits_picture`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qlab.numerics.validate import check_int

#: Model -> (learning rate, epochs over ``QAT_BUDGETS``' images) of QAT and of its control.
#: Measured on mnist_cnn, 2-bit weights, 235 steps: at qat.QAT_LEARNING_RATE (1e-4) QAT reached
#: 37.5% (below min-max per-channel PTQ's 45%), at 1e-3 94.8%, and the float control kept its
#: accuracy (99.22% against 99.25%). 1e-3 is a third of the MobileNets' training rate: at 2
#: and 3 bits a weight has to move a whole bucket before its code changes.
FINE_TUNE_SETTINGS: dict[str, tuple[float, int]] = {
    "mnist_cnn": (1e-3, 1), "mobilenet_v1": (1e-3, 1), "mobilenet_v2": (1e-3, 1)}
SETTINGS_DEFAULT = (1e-4, 1)
BATCH_SIZE = 128
KINDS = ("qat", "control")
#: Model -> the weight bit widths whose QAT fine-tunes ship in ``data/models/``.
SHIPPED_LOW_BIT: dict[str, tuple[int, ...]] = {"mobilenet_v1": (3,)}


def float_fine_tune(model: Any, x: np.ndarray, y: np.ndarray, epochs: int, learning_rate: float,
                    seed: int) -> tuple[Any, dict[str, Any]]:
    """A copy of the float ``model`` fine-tuned exactly as :func:`qlab.qat.training.fine_tune` tunes QAT.

    Same images, batch size, Adam, cosine schedule and seed: the control that separates
    "QAT helped" from "more training helped". Returns (model, fine_tune's info).
    Taught in ``06_quantization_aware_training``.
    """
    from qlab.zoo.models import copy_model
    from qlab.qat.training import fine_tune

    copy = copy_model(model)
    info = fine_tune(copy, x, y, epochs, BATCH_SIZE, learning_rate, seed, verbose=0)
    return copy, info


def fine_tune_data(name: str, size: str) -> dict[str, np.ndarray]:
    """The images of every low-bit fine-tune: calibration, training (``QAT_BUDGETS``) and test."""
    from qlab.conversion.converter import CALIBRATION_SAMPLES
    from qlab.zoo.models import mnist_for
    from qlab.qat.training import QAT_BUDGETS

    (x_train, y_train), (x_test, y_test) = mnist_for(name, size)
    samples = QAT_BUDGETS[size][1]
    return {"x_calib": x_train[:CALIBRATION_SAMPLES[size]], "x_train": x_train[:samples],
            "y_train": y_train[:samples], "x_test": x_test, "y_test": y_test}


def low_bit_config(name: str, weight_bits: int, kind: str, size: str = "full", seed: int = 0
                   ) -> dict[str, Any]:
    """Everything that determines a low-bit fine-tune's weights (its cache key)."""
    from qlab.conversion.converter import CALIBRATION_SAMPLES
    from qlab.zoo.models import training_config
    from qlab.qat.training import QAT_BUDGETS

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    weight_bits = check_int(weight_bits, "weight_bits", 2, 8)
    learning_rate, epochs = FINE_TUNE_SETTINGS.get(name, SETTINGS_DEFAULT)
    config = {**training_config(name, size, seed), "low_bit": kind, "weight_bits": weight_bits,
              "fine_tune": {"epochs": epochs, "samples": QAT_BUDGETS[size][1], "batch_size": BATCH_SIZE,
                            "learning_rate": learning_rate, "schedule": "cosine"}}
    if kind == "qat":
        config["qat_scheme"] = f"default_n_bit({weight_bits}, 8)"
        config["qat_start"] = f"minmax ranges of {CALIBRATION_SAMPLES[size]} training images"
    else:  # the control is the same float fine-tune at every bit width
        config.pop("weight_bits")
    return config


def low_bit_label(name: str, weight_bits: int, kind: str, size: str = "full", seed: int = 0) -> str:
    """The cache and shipped-file label of a low-bit fine-tune."""
    return f"{name}-{size}-s{seed}-" + (f"qat_w{weight_bits}a8" if kind == "qat" else "float_tuned")


def load_or_fine_tune_low_bit(name: str, weight_bits: int = 3, kind: str = "qat", size: str = "full",
                              seed: int = 0, verbose: int | str = "auto") -> Any:
    """The ``kind`` fine-tune (``"qat"`` or its float ``"control"``) of zoo model ``name``, cached.

    ``"qat"``: W``weight_bits``A8 QAT from data ranges; ``"control"``: the float fine-tune with
    the same budget (its weights do not depend on ``weight_bits``). Loaded from the cache or
    ``data/models/``, else fine-tuned (tens of seconds at full size) and cached.
    Taught in ``06_quantization_aware_training``.
    """
    from qlab.zoo.cache import load_or_build
    from qlab.zoo.models import compile_for_training, copy_model, load_or_train
    from qlab.qat.quantize import quantize_whole_model_n_bit
    from qlab.qat.ranges import start_from_data
    from qlab.qat.training import fine_tune

    config = low_bit_config(name, weight_bits, kind, size, seed)
    learning_rate, epochs = config["fine_tune"]["learning_rate"], config["fine_tune"]["epochs"]
    made_from = {}  # the float model build() started from: train() calibrates against it

    def build() -> Any:
        made_from["float"] = load_or_train(name, size, seed, verbose)
        if kind == "control":
            return copy_model(made_from["float"])
        return quantize_whole_model_n_bit(made_from["float"], weight_bits, 8)

    def train(model: Any) -> dict[str, Any]:
        images = fine_tune_data(name, size)
        if kind == "qat":  # what qlab.qat.training.n_bit_qat_from_data does, on the model build() made
            start_from_data(model, made_from["float"], images["x_calib"], "minmax", 8, seed)
        what = f"QAT {weight_bits}-bit weights" if kind == "qat" else "float control"
        return fine_tune(model, images["x_train"], images["y_train"], epochs, BATCH_SIZE, learning_rate,
                         seed, verbose=verbose, description=f"fine-tuning {name} ({what}, {size})")

    model, _ = load_or_build(low_bit_label(name, weight_bits, kind, size, seed), config, build, train)
    compile_for_training(model, learning_rate)
    return model
