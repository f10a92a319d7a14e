"""The zoo's transformer: a small BERT-style encoder in Keras 3, reading MNIST as 16 patch tokens.

No text corpus ships offline, so the encoder reads each 28x28 digit as a sequence of 16
tokens of 7x7 pixels (49 features each), the way a vision transformer does. Everything
after the tokens is a BERT block: a Dense token embedding, a learned position embedding,
multi-head self-attention, LayerNorm, a GELU feed-forward, residuals, a final LayerNorm,
mean pooling over the tokens and a Dense classification head. A text model differs only in
its first layer (an ``Embedding`` of token ids instead of a ``Dense`` of pixel patches).

It is written in Keras 3 (``import keras``), so Keras 3's own quantization
(``model.quantize``) applies; TFMOT, which needs tf_keras, does not. Trained weights are
cached like the other zoo models and shipped in ``data/models/`` at the full budget.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qlab.zoo.keras3 import require_keras3

NAME = "patch_encoder"
TOKENS, PATCH = 16, 7  # 4 x 4 patches of 7 x 7 pixels
TOKEN_FEATURES = PATCH * PATCH
D_MODEL, HEADS, FEED_FORWARD, BLOCKS = 64, 4, 128, 2


@dataclass(frozen=True)
class EncoderBudget:
    """How the encoder is trained: Adam with a cosine-decayed learning rate, seeded shuffling."""

    epochs: int
    batch_size: int
    learning_rate: float
    train_samples: int | None  # None: all 60,000


#: Measured here: 7 epochs at 2e-3 reach 97.6 % on the 10,000 test images in about two minutes.
BUDGETS = {"full": EncoderBudget(7, 128, 2e-3, None), "smoke": EncoderBudget(1, 128, 2e-3, 512)}


def to_patches(images: Any) -> np.ndarray:
    """MNIST images (n, 28, 28) or (n, 28, 28, 1), floats in [0, 1] -> tokens (n, 16, 49), row by row.

    Token ``4 * i + j`` holds the 7x7 patch in patch-row ``i``, patch-column ``j``, read row by row.
    """
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"images must have shape (n, 28, 28) or (n, 28, 28, 1), got {np.shape(images)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be floats in [0, 1] (MNIST pixels divided by 255), got dtype {x.dtype}")
    if np.isnan(x).any():
        raise ValueError("images contain NaN")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"images must be floats in [0, 1] (MNIST pixels divided by 255), got values in "
                         f"[{x.min():g}, {x.max():g}]")
    n = len(x)
    return (x.astype(np.float32).reshape(n, 4, PATCH, 4, PATCH).transpose(0, 1, 3, 2, 4)
            .reshape(n, TOKENS, TOKEN_FEATURES))


def encoder_data(size: str = "full") -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """MNIST as patch tokens: ``(x_train, y_train), (x_test, y_test)``, x float32 (n, 16, 49).

    The same images and labels as the CNN's (:func:`qlab.zoo.models.mnist_for`); the smoke
    size takes its first few hundred of each split.
    """
    from qlab.zoo.models import mnist_for

    (x_train, y_train), (x_test, y_test) = mnist_for("mnist_cnn", size)
    samples = BUDGETS[size].train_samples
    return (to_patches(x_train[:samples]), y_train[:samples]), (to_patches(x_test), y_test)


@functools.cache
def _position_embedding_class() -> type:
    keras = require_keras3()

    @keras.saving.register_keras_serializable(package="qlab")
    class PositionEmbedding(keras.layers.Layer):
        """Adds a learned vector per token position (BERT's position embedding)."""

        def __init__(self, tokens: int, width: int, **kwargs: Any):
            super().__init__(**kwargs)
            self.tokens, self.width = tokens, width

        def build(self, input_shape: Any) -> None:
            self.position = self.add_weight(name="position", shape=(1, self.tokens, self.width),
                                            initializer=keras.initializers.RandomNormal(stddev=0.02))

        def call(self, x: Any) -> Any:
            return x + self.position

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "tokens": self.tokens, "width": self.width}

    return PositionEmbedding


def custom_objects() -> dict[str, type]:
    """The encoder's own layer classes by their registered names, made (and registered with Keras) now.

    A saved encoder (``model.save("encoder.keras")``) then loads in a new process:
    ``keras.models.load_model(path, custom_objects=custom_objects())``; :func:`qlab.compare_keras_model`
    and ``qlab compare --model FILE`` call it before loading a file.
    """
    return {"qlab>PositionEmbedding": _position_embedding_class()}


def position_embedding(tokens: int, width: int, **kwargs: Any) -> Any:
    """A :class:`PositionEmbedding` layer (the class is made once, on first use, with Keras 3)."""
    return _position_embedding_class()(tokens, width, **kwargs)


def build_encoder(seed: int = 0) -> Any:
    """A freshly initialised (untrained) encoder: (n, 16, 49) patch tokens -> 10 logits."""
    keras = require_keras3()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((TOKENS, TOKEN_FEATURES), name="patches")
    x = layers.Dense(D_MODEL, name="embed")(tokens)
    x = position_embedding(TOKENS, D_MODEL, name="position")(x)
    for i in range(BLOCKS):
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(x)
        h = layers.MultiHeadAttention(HEADS, D_MODEL // HEADS, name=f"block{i}_attention")(h, h)
        x = layers.Add(name=f"block{i}_residual1")([x, h])
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(x)
        h = layers.Dense(FEED_FORWARD, activation="gelu", name=f"block{i}_ff1")(h)
        h = layers.Dense(D_MODEL, name=f"block{i}_ff2")(h)
        x = layers.Add(name=f"block{i}_residual2")([x, h])
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(tokens, layers.Dense(10, name="logits")(x), name=NAME)


def encoder_config(size: str = "full", seed: int = 0) -> dict[str, Any]:
    """Everything that determines the trained encoder's weights (its cache key)."""
    from qlab.zoo.cache import versioned
    from qlab.zoo.models import check_size
    from qlab.numerics.validate import check_int

    size = check_size(size)
    seed = check_int(seed, "seed", 0, 2**31 - 1)
    architecture = {"tokens": TOKENS, "patch": PATCH, "d_model": D_MODEL, "heads": HEADS,
                    "feed_forward": FEED_FORWARD, "blocks": BLOCKS}
    return versioned({"model": NAME, "size": size, "seed": seed, "architecture": architecture,
                      "budget": asdict(BUDGETS[size]), "keras": "3"})


def compile_encoder(model: Any, learning_rate: float, decay_steps: int | None = None) -> Any:
    """Adam (cosine-decayed over ``decay_steps`` when given) and sparse cross-entropy on logits."""
    keras = require_keras3()
    rate = learning_rate if decay_steps is None else keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=decay_steps)
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def train_encoder(model: Any, size: str = "full", seed: int = 0, verbose: int | str = "auto") -> dict[str, Any]:
    """Train ``model`` (from :func:`build_encoder`) in place with :data:`BUDGETS`; return timing and accuracy."""
    from qlab.zoo.progress import keras3_fit_progress

    keras = require_keras3()
    budget = BUDGETS[size]
    (x_train, y_train), (x_test, y_test) = encoder_data(size)
    steps = budget.epochs * int(np.ceil(len(x_train) / budget.batch_size))
    compile_encoder(model, budget.learning_rate, steps)
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=budget.batch_size, epochs=budget.epochs, shuffle=True,
              verbose=0 if verbose == "auto" else verbose,
              callbacks=keras3_fit_progress(f"training {NAME} ({size})"))
    seconds = round(time.perf_counter() - start, 1)
    accuracy = float(np.mean(np.argmax(model.predict(x_test, batch_size=500, verbose=0), axis=1) == y_test))
    return {"train_seconds": seconds, "test_accuracy": accuracy}


def load_or_train_encoder(size: str = "full", seed: int = 0, verbose: int | str = "auto") -> Any:
    """The trained encoder: from the cache, ``data/models/`` (full size, seed 0), or trained now (minutes).

    Taught in the transformer lesson; ``qlab compare --model patch_encoder`` compares its variants.
    """
    from qlab.zoo.cache import load_or_build

    config = encoder_config(size, seed)
    model, _ = load_or_build(f"{NAME}-{config['size']}-s{config['seed']}", config,
                             lambda: build_encoder(seed), lambda m: train_encoder(m, size, seed, verbose))
    return compile_encoder(model, BUDGETS[config["size"]].learning_rate)
