"""The model zoo: small Keras models trained on MNIST here, on the CPU, and cached.

Three architectures, each with a ``full`` and a ``smoke`` training budget:

- ``mnist_cnn``: a small CNN (conv, pooling, dense) in the spirit of TFMOT's MNIST example.
- ``mobilenet_v1`` / ``mobilenet_v2``: ``keras.applications`` MobileNets (``weights=None``,
  small ``alpha``) on MNIST zero-padded to 32x32, the architectures of the published
  QAT tables, where depthwise convolutions make per-channel quantization matter.

Apart from those three (:data:`NARROW_MODELS`, built, trained, cached and shipped alike, used
when named): ``mobilenet_v2_035``, the same MobileNetV2 at width ``alpha`` 0.35, the model
made narrow enough for a 256 KB-RAM / 1 MB-flash microcontroller.

A trained model is cached under ``artifacts/models/`` keyed by its whole config
(model, budget, seed, library versions). The entry is written atomically (a temp
directory beside the target, then ``os.replace``) with a manifest holding the
config and the sha256 of the weights file; on load both are checked, and a
corrupted or stale entry is rebuilt with a logged warning, never used.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

SIZES = ("full", "smoke")


@dataclass(frozen=True)
class TrainConfig:
    """A training budget: how many samples, epochs and what optimizer schedule."""

    epochs: int
    batch_size: int
    learning_rate: float
    train_samples: int | None  # None: all 60,000
    test_samples: int | None  # None: all 10,000


@dataclass(frozen=True)
class ModelSpec:
    """One entry of :data:`MODELS` or :data:`NARROW_MODELS`: how to build it and how long to train it."""

    name: str
    description: str
    input_size: int  # 28 (native MNIST) or 32 (zero-padded for the MobileNets)
    build: Callable[..., Any] = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    full: TrainConfig = TrainConfig(5, 128, 1e-3, None, None)
    smoke: TrainConfig = TrainConfig(1, 64, 1e-3, 512, 500)

    def budget(self, size: str) -> TrainConfig:
        """The :class:`TrainConfig` for ``size`` ("full" or "smoke")."""
        check_size(size)
        return self.full if size == "full" else self.smoke


def check_size(size: str) -> str:
    """Return ``size`` if it is a known training budget, else raise a ValueError."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return size


def _build_mnist_cnn(input_shape: tuple[int, int, int]) -> Any:
    from qlab.zoo.keras2 import keras

    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, 3, activation="relu", name="conv1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(64, 3, activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dense(128, activation="relu", name="dense"),
        layers.Dense(10, name="logits"),
    ], name="mnist_cnn")


def _with_bn_momentum(model: Any, momentum: float) -> Any:
    """Rebuild ``model`` with every BatchNormalization momentum set to ``momentum``.

    keras.applications uses 0.999, which needs thousands of steps before the moving
    statistics match the data; after a few MNIST epochs the model then evaluates
    at chance although training looked fine. 0.9 converges within an epoch.
    """
    from qlab.zoo.keras2 import keras

    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "BatchNormalization":
            layer["config"]["momentum"] = momentum
    return keras.Model.from_config(config)


def _build_mobilenet(version: int, input_shape: tuple[int, int, int], alpha: float,
                     bn_momentum: float) -> Any:
    from qlab.zoo.keras2 import keras

    app = keras.applications.MobileNet if version == 1 else keras.applications.MobileNetV2
    # softmax stays out of the model: logits quantize better and argmax is unchanged
    base = app(input_shape=input_shape, alpha=alpha, weights=None, classes=10,
               classifier_activation=None)
    return _with_bn_momentum(base, bn_momentum)


MODELS: dict[str, ModelSpec] = {
    "mnist_cnn": ModelSpec(
        "mnist_cnn", "2 conv + 2 max-pool + 2 dense, 28x28 input (like TFMOT's MNIST example)", 28,
        _build_mnist_cnn, full=TrainConfig(6, 128, 2e-3, None, None)),
    "mobilenet_v1": ModelSpec(
        "mobilenet_v1", "keras.applications.MobileNet, alpha 0.5, MNIST zero-padded to 32x32", 32,
        lambda input_shape, **kw: _build_mobilenet(1, input_shape, **kw),
        options={"alpha": 0.5, "bn_momentum": 0.9},
        full=TrainConfig(6, 64, 3e-3, None, None)),
    "mobilenet_v2": ModelSpec(
        "mobilenet_v2", "keras.applications.MobileNetV2, alpha 1.0, MNIST zero-padded to 32x32", 32,
        lambda input_shape, **kw: _build_mobilenet(2, input_shape, **kw),
        options={"alpha": 1.0, "bn_momentum": 0.9},
        full=TrainConfig(6, 64, 3e-3, None, None)),
}


#: Zoo models kept out of :data:`MODELS`, whose three CNNs every lesson, ``"all"``, ``qlab bench`` and
#: many tests iterate over (each model there costs them minutes): these are found by :func:`get_spec`,
#: trained, cached and shipped like the others, and compared when named. ``mobilenet_v2_035`` is the
#: width lever of the microcontroller lesson: ``mobilenet_v2``'s int8 file does not fit a board with
#: 1 MB of flash, the same architecture at alpha 0.35 does.
NARROW_MODELS: dict[str, ModelSpec] = {
    "mobilenet_v2_035": ModelSpec(
        "mobilenet_v2_035", "keras.applications.MobileNetV2, alpha 0.35, MNIST zero-padded to 32x32", 32,
        lambda input_shape, **kw: _build_mobilenet(2, input_shape, **kw),
        options={"alpha": 0.35, "bn_momentum": 0.9},
        full=TrainConfig(6, 64, 3e-3, None, None)),
}


def known_models() -> list[str]:
    """Every zoo name :func:`get_spec` knows: :data:`MODELS`, then :data:`NARROW_MODELS`."""
    return [*MODELS, *NARROW_MODELS]


def get_spec(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` called ``name``, or raise a ValueError listing the valid names."""
    spec = MODELS.get(name) or NARROW_MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(known_models())}")
    return spec


def input_shape_for(name: str) -> tuple[int, int, int]:
    """The (height, width, channels) a zoo model takes."""
    size = get_spec(name).input_size
    return (size, size, 1)


def preprocess(images: np.ndarray, input_size: int) -> np.ndarray:
    """uint8 (n, 28, 28) MNIST -> float32 (n, size, size, 1) in [0, 1].

    32x32 is made by zero-padding 2 pixels on every side: exact (MNIST's border is
    already black) and cheap, unlike interpolation. It is done once, in numpy and
    outside the model, so no resize/rescale layer stands in the way of TFMOT.
    """
    x = images.astype(np.float32) / 255.0
    pad = (input_size - x.shape[1]) // 2
    if pad < 0 or x.shape[1] + 2 * pad != input_size:
        raise ValueError(f"input_size must be 28 + an even number, got {input_size}")
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    return x[..., None]


def mnist_for(name: str, size: str = "full") -> tuple[tuple[np.ndarray, np.ndarray],
                                                      tuple[np.ndarray, np.ndarray]]:
    """MNIST preprocessed for model ``name``: ``(x_train, y_train), (x_test, y_test)``.

    ``x`` is float32 (n, h, w, 1) in [0, 1], ``y`` int64 labels. The ``smoke`` size
    takes the first few hundred images of each split. Taught in
    ``04_post_training_quantization``; the later lessons load their data with it.
    """
    from qlab.files.data import load_mnist

    spec, budget = get_spec(name), get_spec(name).budget(size)
    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train, y_train = x_train[:budget.train_samples], y_train[:budget.train_samples]
    x_test, y_test = x_test[:budget.test_samples], y_test[:budget.test_samples]
    return ((preprocess(x_train, spec.input_size), y_train.astype(np.int64)),
            (preprocess(x_test, spec.input_size), y_test.astype(np.int64)))


def predict_keras(model: Any, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """A Keras model's output scores on ``x``, in batches, without a progress bar.

    The float (or fake-quantized) reference that qlab's comparisons measure files against.
    """
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def build_model(name: str, seed: int = 0) -> Any:
    """A freshly initialised (untrained) Keras 2 model for zoo entry ``name``."""
    from qlab.zoo.seed import set_seed

    spec = get_spec(name)
    set_seed(seed)
    return spec.build(input_shape=input_shape_for(name), **spec.options)


def copy_model(model: Any) -> Any:
    """A copy of a Keras 2 model with the same weights, for work that must leave ``model`` as it is.

    TFMOT's pruning and clustering wrappers, and fine-tuning, change the layers they are
    given in place; ``keras.models.clone_model`` alone gives fresh, untrained weights.
    """
    from qlab.zoo.keras2 import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def compile_for_training(model: Any, learning_rate: float, decay_steps: int | None = None,
                         strategy: Any = None) -> Any:
    """Compile with Adam (cosine-decayed when ``decay_steps`` is given) and sparse CE on logits.

    With a ``tf.distribute`` ``strategy`` the optimizer is made in its scope; the model
    must have been built there (:mod:`qlab.zoo.distribute`).
    """
    from qlab.zoo.distribute import check_built_under, strategy_scope
    from qlab.zoo.keras2 import keras

    check_built_under(strategy, model)
    with strategy_scope(strategy):
        lr = learning_rate
        if decay_steps:
            lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.01)
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    return model


def training_config(name: str, size: str = "full", seed: int = 0) -> dict[str, Any]:
    """Everything that determines a zoo model's trained weights (the cache key)."""
    from qlab.zoo.cache import versioned

    spec = get_spec(name)
    return versioned({"model": name, "size": check_size(size), "seed": int(seed),
                      "input_size": spec.input_size, "options": spec.options,
                      "budget": asdict(spec.budget(size))})


def train_model(model: Any, name: str, size: str = "full", seed: int = 0,
                verbose: int | str = "auto", strategy: Any = None) -> dict[str, Any]:
    """Train ``model`` (from :func:`build_model`) in place; return timing and accuracy.

    Adam with a cosine-decayed learning rate, seeded shuffling. The float test
    accuracy is measured after training, not assumed: the MobileNets' batch-norm
    moving statistics are what inference uses, and they lag behind training.
    ``strategy``: a ``tf.distribute`` strategy the model was built under
    (:func:`build_under`); the budget's batch size is then the
    global batch, split across the replicas.
    """
    from qlab.zoo.progress import fit_progress
    from qlab.zoo.seed import set_seed

    budget = get_spec(name).budget(size)
    (x_train, y_train), (x_test, y_test) = mnist_for(name, size)
    steps = budget.epochs * math.ceil(len(x_train) / budget.batch_size)
    compile_for_training(model, budget.learning_rate, decay_steps=steps, strategy=strategy)
    set_seed(seed)
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=budget.epochs, batch_size=budget.batch_size,
                        shuffle=True, verbose=verbose,
                        callbacks=fit_progress(f"training {name} ({size})"))
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    log.info("%s (%s) trained in %.0f s, float test accuracy %.4f", name, size, seconds, accuracy)
    return {"train_seconds": round(seconds, 1), "keras_test_accuracy": float(accuracy),
            "history": {k: [float(v) for v in vals] for k, vals in history.history.items()}}


def load_or_train(name: str, size: str = "full", seed: int = 0, verbose: int | str = "auto",
                  return_manifest: bool = False) -> Any:
    """The trained zoo model ``name``, from the cache under ``artifacts/models/`` or trained now.

    Taught in ``03_float_baselines``; the later lessons load their models with it.

    Args:
        name: a key of :data:`MODELS` or :data:`NARROW_MODELS`.
        size: ``"full"`` (the accuracies of the results table) or ``"smoke"``
            (a few hundred samples, one short epoch: for tests).
        seed: seeds initialisation and shuffling; same seed and config give
            identical weights on the CPU.
        verbose: Keras progress (``"auto"``, 0, 1 or 2) while training.
        return_manifest: also return the cache manifest (config, training time,
            float accuracy).
    """
    from qlab.zoo.cache import load_or_build

    config = training_config(name, size, seed)
    model, manifest = load_or_build(
        f"{name}-{size}-s{seed}", config, build=lambda: build_model(name, seed),
        train=lambda m: train_model(m, name, size, seed, verbose))
    compile_for_training(model, get_spec(name).budget(size).learning_rate)
    return (model, manifest) if return_manifest else model


def load_keras_model(path: str | os.PathLike) -> Any:
    """Load a model you bring: a Keras 3 ``.keras`` file, or a Keras 2 ``.h5``/``.keras``/SavedModel.

    A ``.keras`` file saved by Keras 3 comes back as the Keras 3 model (``import keras``):
    every post-training variant converts it as it is, and :func:`qlab.compare_keras_model`
    rebuilds it in tf_keras for the QAT variants (:mod:`qlab.zoo.keras3`). Anything else is
    loaded with tf_keras. A missing or unreadable file raises a one-line error. Taught in
    ``12_your_own_model``.
    """
    from qlab.zoo.keras2 import keras, require_keras2_model

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}; give the path of a .keras or .h5 file or "
                                "of a SavedModel folder")
    from qlab.zoo.keras3 import saved_keras_version

    version = saved_keras_version(path) if path.is_file() else None
    if version and version.startswith("3."):
        from qlab.zoo.keras3 import load_keras3_model

        return load_keras3_model(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"tf_keras could not load {path} ({first}); give a .keras, .h5 or "
                         "SavedModel saved by Keras") from None
    return require_keras2_model(model)


def example_user_model(size: str = "full", seed: int = 0) -> Path:
    """Path of a saved ``.h5`` model that stands in for "your model" in ``12_your_own_model``.

    A small CNN that is *not* in the zoo (batch norm, global average pooling), trained
    on MNIST (60,000 images, 3 epochs; smoke: 512 images, 1 epoch) and saved once under
    ``artifacts/your_model/`` (atomically). Replace it with the path of your own file.
    """
    from qlab.files.io import exclusive
    from qlab.files.paths import artifacts_dir

    with exclusive(artifacts_dir() / "your_model" / f"example_cnn-{check_size(size)}-s{seed}.h5") as path:
        if not path.exists():
            _train_example_model(path, size, seed)
    return path


def _train_example_model(path: Path, size: str, seed: int) -> None:
    from qlab.files.io import atomic_path
    from qlab.zoo.keras2 import keras
    from qlab.zoo.progress import fit_progress
    from qlab.zoo.seed import set_seed

    set_seed(seed)
    layers = keras.layers
    model = keras.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(24, 3, padding="same", use_bias=False), layers.BatchNormalization(), layers.ReLU(),
        layers.MaxPooling2D(), layers.Conv2D(48, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(), layers.Dense(10)], name="example_cnn")
    model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    (x_train, y_train), _ = mnist_for("mnist_cnn", size)
    samples, epochs = (None, 3) if size == "full" else (512, 1)
    model.fit(x_train[:samples], y_train[:samples], epochs=epochs, batch_size=64, verbose=0,
              callbacks=fit_progress(f"training the example model ({size})"))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
        model.save(tmp)  # .h5: the format most saved models people bring are in


def build_under(strategy: Any, name: str, seed: int = 0) -> Any:
    """:func:`build_model` inside ``strategy.scope()`` (plain when None)."""
    from qlab.zoo.distribute import strategy_scope

    with strategy_scope(strategy):
        return build_model(name, seed)
