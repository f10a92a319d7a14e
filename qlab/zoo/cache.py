"""A verified on-disk cache for trained Keras models, keyed by their full config.

An entry is a directory ``artifacts/models/<label>-<key>/`` with ``weights.h5`` and
``manifest.json`` (the config, library versions and the weights' sha256). Only
weights are stored: the architecture is rebuilt by code, so custom QuantizeConfigs
and TFMOT wrappers need no serialization. Entries are written atomically (a temp
directory beside the target, then ``os.replace``) under a lock file
(:func:`qlab.files.io.exclusive`), so processes sharing a cache train each entry once; a
corrupted, stale or unreadable entry is rebuilt with a logged warning and never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from qlab.files.data import sha256_of
from qlab.zoo.weights_file import load_weights, save_weights
from qlab.zoo.environment import package_version
from qlab.files.paths import artifacts_dir

log = logging.getLogger(__name__)

#: Bump when training code changes in a way the config does not capture.
CACHE_FORMAT = 1
WEIGHTS = "weights.h5"
MANIFEST = "manifest.json"


class CacheEntryError(RuntimeError):
    """A cache entry exists but cannot be trusted (corrupted, stale or unreadable)."""


def versioned(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` plus the versions that change what training produces."""
    versions = {d: package_version(d) for d in ("tensorflow", "tf-keras", "tensorflow-model-optimization")}
    return {**config, "versions": versions, "cache_format": CACHE_FORMAT}


def cache_key(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def entry_dir(label: str, config: dict[str, Any]) -> Path:
    """Where the cache entry for ``config`` lives."""
    return artifacts_dir() / "models" / f"{label}-{cache_key(config)}"


def _read_entry(path: Path, config: dict[str, Any], build: Callable[[], Any]) -> tuple[Any, dict]:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise CacheEntryError(f"unreadable manifest ({exc})") from exc
    if manifest.get("config") != json.loads(json.dumps(config, default=str)):
        raise CacheEntryError("stale: its config differs from the requested one")
    weights = path / WEIGHTS
    if not weights.exists() or sha256_of(weights) != manifest.get("sha256", {}).get(WEIGHTS):
        raise CacheEntryError("corrupted: weights missing or sha256 mismatch")
    model = build()
    try:
        load_weights(model, weights)
    except Exception as exc:  # h5py/keras raise many types for a bad file
        raise CacheEntryError(f"weights do not load ({type(exc).__name__}: {exc})") from exc
    return model, manifest


def _write_entry(path: Path, config: dict[str, Any], model: Any, info: dict[str, Any]) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_weights(model, tmp / WEIGHTS)
        manifest = {"config": config, "sha256": {WEIGHTS: sha256_of(tmp / WEIGHTS)}, **info}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        if path.exists():  # a bad entry: move it aside first, os.replace needs an empty target
            trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, trash / "entry")
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads(json.dumps(manifest, default=str))


def load_or_build(label: str, config: dict[str, Any], build: Callable[[], Any],
                  train: Callable[[Any], dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """Return ``(model, manifest)`` from the cache or the shipped models, or build, train and cache it.

    The shipped models (:mod:`qlab.zoo.shipped`, ``data/models/``) are looked up after the
    cache; neither a corrupted cache entry nor a corrupted shipped file is ever used.

    Args:
        label: readable prefix of the entry's directory name (e.g. ``mnist_cnn-full-s0``).
        config: everything that determines the trained weights (include versions,
            see :func:`versioned`).
        build: makes the untrained architecture (also used to load cached weights).
        train: trains the model in place, returns JSON-able info for the manifest.
    """
    from qlab.files.io import exclusive
    from qlab.zoo.shipped import load_shipped

    path = entry_dir(label, config)
    found = _cached(path, config, build) or load_shipped(label, config, build)
    if found is not None:
        return found
    # another process may be building this entry (a second notebook, a parallel test worker):
    # wait for it and read its entry instead of training the same weights twice
    with exclusive(path, waiting=log.warning):
        found = _cached(path, config, build)
        if found is not None:
            return found
        model = build()
        info = train(model)
        manifest = _write_entry(path, config, model, info)
        log.info("cached %s", path)
        return model, manifest


def _cached(path: Path, config: dict[str, Any], build: Callable[[], Any]) -> tuple[Any, dict] | None:
    """The entry at ``path`` if it exists and can be trusted, else None (a bad one is logged)."""
    if not path.exists():
        return None
    try:
        return _read_entry(path, config, build)
    except CacheEntryError as exc:
        log.warning("cache entry %s is %s; rebuilding it", path, exc)
        return None
