"""The trained models qlab ships in ``data/models/``, sha256-verified like MNIST.

A fresh clone should not sit in training: the zoo models at the ``full`` budget and their
QAT fine-tunes are committed as gzip-compressed weight files (``<entry>.h5.gz``, float32,
no optimizer state) with ``data/models/manifest.json``, which holds for every entry the
config that made it, the library versions it was trained with, the sha256 of the
compressed file and of the weights file inside it, and what training reported.

:func:`qlab.zoo.cache.load_or_build` looks here after its own cache: an entry whose
label and config match (library versions aside: a patch release of TensorFlow loads the
same weights) is verified and loaded. A file whose sha256 differs from the manifest's is
rebuilt with a logged warning, never used. ``qlab train`` (:mod:`qlab.workbook.train`)
reproduces the files and writes new ones with :func:`ship_entry`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, ContextManager

from qlab.files.data import sha256_of
from qlab.files.io import atomic_path, write_json_atomic
from qlab.files.paths import environment_variable

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
SHIPPED_ENV = "QLAB_SHIPPED_MODELS"  # "0": ignore the shipped models (qlab train sets it)


class ShippedModelError(RuntimeError):
    """A shipped model file exists but cannot be trusted (corrupted or unreadable)."""


def shipped_dir() -> Path | None:
    """``data/models/`` beside MNIST, or None when there is no data folder or it is switched off."""
    from qlab.files.paths import data_dir

    if os.environ.get(SHIPPED_ENV) == "0":
        return None
    try:
        return data_dir() / "models"
    except FileNotFoundError:  # installed from a wheel without QLAB_DATA_DIR: nothing shipped
        return None


def shipped_models_ignored() -> ContextManager[None]:
    """Within the block :func:`shipped_dir` is None, so everything is trained (``qlab train``)."""
    return environment_variable(SHIPPED_ENV, "0")


def portable(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the library versions, as plain JSON (what a shipped entry must match)."""
    plain = json.loads(json.dumps(config, default=str))
    plain.pop("versions", None)
    return plain


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a shipped-models folder (empty when the folder has none)."""
    path = directory / MANIFEST
    if not path.exists():
        return {"format": FORMAT, "entries": {}}
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ShippedModelError(f"{path} has format {manifest.get('format')!r}; this qlab reads "
                                f"format {FORMAT}")
    return manifest


def find_entry(label: str, config: dict[str, Any], directory: Path | None = None
               ) -> dict[str, Any] | None:
    """The manifest entry shipped for ``label`` with this config, or None."""
    directory = directory or shipped_dir()
    if directory is None or not (directory / MANIFEST).exists():
        return None
    entry = read_manifest(directory)["entries"].get(label)
    if entry is None or entry["config"] != portable(config):
        return None
    return entry


def load_entry(directory: Path, entry: dict[str, Any], build: Callable[[], Any]) -> Any:
    """Verify a shipped file's sha256, then build the model and load its weights.

    Raises:
        ShippedModelError: the file is missing, its sha256 differs from the manifest's,
            or its weights do not load into ``build()``'s model.
    """
    path = directory / entry["file"]
    if not path.is_file():
        raise ShippedModelError(f"{path} is missing")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ShippedModelError(f"{path} is corrupted: sha256 {actual}, the manifest says "
                                f"{entry['sha256']}")
    from qlab.zoo.weights_file import load_weights

    with tempfile.TemporaryDirectory(prefix="qlab-shipped-") as tmp:
        weights = Path(tmp) / "weights.h5"
        with gzip.open(path, "rb") as src, open(weights, "wb") as dst:
            shutil.copyfileobj(src, dst)
        model = build()
        try:
            load_weights(model, weights)
        except Exception as exc:  # h5py/keras raise many types for a file that does not fit
            raise ShippedModelError(f"{path} does not load ({type(exc).__name__}: {exc})") from exc
    return model


def load_shipped(label: str, config: dict[str, Any], build: Callable[[], Any]
                 ) -> tuple[Any, dict[str, Any]] | None:
    """``(model, manifest)`` from the shipped models, or None (not shipped, or not trustworthy).

    A corrupted entry is logged as a warning and reported as None, so the caller trains it.
    """
    directory = shipped_dir()
    entry = find_entry(label, config, directory) if directory else None
    if entry is None:
        return None
    try:
        model = load_entry(directory, entry, build)
    except ShippedModelError as exc:
        log.warning("shipped model %s: %s; training it again instead", label, exc)
        return None
    return model, {**entry["info"], "config": {**entry["config"], "versions": entry["versions"]},
                   "sha256": {"weights.h5": entry["weights_sha256"]},
                   "source": str(directory / entry["file"])}


def values_sha256(model: Any) -> str:
    """sha256 of a model's weight values in order (dtype, shape, bytes), without their names.

    Keras numbers unnamed layers per process (``quantize_layer``, ``quantize_layer_1``, ...),
    so the same training can write differently named, otherwise identical weight files:
    reproduction is judged on the values.
    """
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for array in model.get_weights():
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def ship_entry(label: str, cache_entry: Path, directory: Path, values: str) -> dict[str, Any]:
    """Compress a cache entry (``weights.h5`` + ``manifest.json``) into ``directory``.

    ``values`` is the trained model's :func:`values_sha256`. The gzip header carries no
    name or time, so the same weights file always gives the same bytes and sha256. The
    file and then the manifest are written atomically.
    """
    cached = json.loads((cache_entry / "manifest.json").read_text())
    weights = cache_entry / "weights.h5"
    name = f"{label}.h5.gz"
    with atomic_path(directory / name) as tmp:
        with open(weights, "rb") as src, open(tmp, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    config = cached["config"]
    info = {k: v for k, v in cached.items() if k not in ("config", "sha256")}
    entry = {"file": name, "sha256": sha256_of(directory / name), "bytes": (directory / name).stat().st_size,
             "weights_sha256": cached["sha256"]["weights.h5"], "values_sha256": values,
             "config": portable(config),
             "versions": config.get("versions", {}), "info": info}
    manifest = read_manifest(directory)
    manifest["entries"][label] = entry
    manifest["entries"] = dict(sorted(manifest["entries"].items()))
    write_json_atomic(directory / MANIFEST, manifest)
    return entry


def total_bytes(directory: Path) -> int:
    """The size of every file a shipped-models folder's manifest lists."""
    return sum(entry["bytes"] for entry in read_manifest(directory)["entries"].values())
