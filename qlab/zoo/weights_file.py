"""Keras weight files for tf_keras and Keras 3 models alike: the cache's and the shipped models' one format."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def save_weights(model: Any, path: Path) -> None:
    """``model.save_weights`` to ``path``, for tf_keras and Keras 3 models alike.

    Keras 3 insists on a ``.weights.h5`` name; the file is written under one and renamed,
    so every entry keeps the one name ``weights.h5``. Keras 3 also saves a compiled model's
    optimizer state with its weights; an uncompiled copy is saved instead, weights only.
    """
    from qlab.zoo.keras3 import copy_keras3_model, is_keras3_model

    if not is_keras3_model(model):
        model.save_weights(str(path))
        return
    weights_only = copy_keras3_model(model)
    named = path.with_name(path.name + ".weights.h5")
    weights_only.save_weights(str(named))
    os.replace(named, path)


def load_weights(model: Any, path: Path) -> None:
    """``model.load_weights(path)`` for tf_keras and Keras 3 models (see :func:`save_weights`)."""
    from qlab.zoo.keras3 import is_keras3_model

    if not is_keras3_model(model):
        model.load_weights(str(path))
        return
    with tempfile.TemporaryDirectory(prefix="qlab-weights-") as tmp:
        named = Path(tmp) / "model.weights.h5"
        named.symlink_to(Path(path).resolve())
        model.load_weights(str(named))
