"""The shipped models in data/models/: intact, current, compact; and the shipped-store mechanics."""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pytest

from qlab.files.data import sha256_of
from qlab.files.paths import checkout_root
from qlab.zoo import shipped
from qlab.zoo.cache import _write_entry, load_or_build, versioned

SHIPPED = checkout_root() / "data" / "models"
LIMIT_BYTES = 100_000_000  # the budget for every shipped model together


def test_every_shipped_file_matches_its_sha256_and_the_total_is_within_budget():
    entries = shipped.read_manifest(SHIPPED)["entries"]
    assert entries, "no shipped models"
    for label, entry in entries.items():
        path = SHIPPED / entry["file"]
        assert sha256_of(path) == entry["sha256"], f"{label}: shipped file does not match"
        assert path.stat().st_size == entry["bytes"]
        assert len(entry["values_sha256"]) == 64 and entry["versions"]["tensorflow"]
    listed = {entry["file"] for entry in entries.values()} | {shipped.MANIFEST}
    assert {p.name for p in SHIPPED.iterdir()} == listed, "files in data/models/ the manifest does not list"
    assert shipped.total_bytes(SHIPPED) <= LIMIT_BYTES


def test_the_shipped_models_are_the_ones_todays_code_asks_for():
    """A change to a budget or a recipe must ship new files (qlab train), not fall back to training."""
    from qlab.compression.deep_compression import stage_config, stage_label
    from qlab.qat.low_bit import SHIPPED_LOW_BIT, low_bit_config, low_bit_label
    from qlab.zoo import transformer
    from qlab.zoo.models import MODELS, NARROW_MODELS, training_config
    from qlab.qat.training import qat_config
    from qlab.workbook.train import SHIPPED_DC_STAGES, SHIPPED_QAT_VARIANTS

    for name in MODELS:
        wanted = {f"{name}-full-s0": training_config(name, "full", 0)}
        wanted.update({f"{name}-full-s0-{v}": qat_config(name, v, "full", 0)
                       for v in SHIPPED_QAT_VARIANTS})
        wanted.update({stage_label(name, s): stage_config(name, s) for s in SHIPPED_DC_STAGES})
        wanted.update({low_bit_label(name, bits, kind): low_bit_config(name, bits, kind)
                       for bits in SHIPPED_LOW_BIT.get(name, ()) for kind in ("qat",)})
        for label, config in wanted.items():
            assert shipped.find_entry(label, config, SHIPPED) is not None, f"{label} is not shipped"
    encoder = f"{transformer.NAME}-full-s0"
    assert shipped.find_entry(encoder, transformer.encoder_config("full", 0), SHIPPED) is not None
    for name in NARROW_MODELS:  # the float model only: no fine-tunes are made of these
        assert shipped.find_entry(f"{name}-full-s0", training_config(name, "full", 0), SHIPPED) is not None, name


def _tiny_model(seed: int = 0):
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")], name="tiny")


def _ship_tiny(tmp_path, config, seed=0):
    """A cache entry for a tiny model, shipped into ``tmp_path/data/models``; returns the model."""
    model = _tiny_model(seed)
    _write_entry(tmp_path / "entry", config, model, {"train_seconds": 0.5})
    shipped.ship_entry("tiny", tmp_path / "entry", tmp_path / "data" / "models",
                       shipped.values_sha256(model))
    return model


@pytest.fixture
def store(tmp_path, monkeypatch, artifacts):
    monkeypatch.setenv("QLAB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "models"


def test_a_shipped_entry_loads_bit_for_bit_and_is_not_copied_into_the_cache(tmp_path, store, artifacts):
    config = versioned({"model": "tiny"})
    model = _ship_tiny(tmp_path, config)
    loaded, manifest = load_or_build("tiny", config, _tiny_model,
                                     train=lambda m: pytest.fail("a shipped model must not be trained"))
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert manifest["source"].endswith("tiny.h5.gz") and manifest["train_seconds"] == 0.5
    assert not (artifacts / "models").exists()


def test_the_values_sha256_ignores_layer_names_but_not_values():
    from qlab.zoo.keras2 import keras

    a = _tiny_model()
    b = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="renamed")])
    b.set_weights(a.get_weights())
    assert shipped.values_sha256(a) == shipped.values_sha256(b)
    b.set_weights([w + (i == 1) * 1e-7 for i, w in enumerate(a.get_weights())])
    assert shipped.values_sha256(a) != shipped.values_sha256(b)


def test_shipping_is_deterministic_and_the_file_is_gzip(tmp_path, store):
    config = versioned({"model": "tiny"})
    _ship_tiny(tmp_path, config)
    first = sha256_of(store / "tiny.h5.gz")
    _ship_tiny(tmp_path, config)
    assert sha256_of(store / "tiny.h5.gz") == first
    with gzip.open(store / "tiny.h5.gz") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"


def test_other_library_versions_match_but_another_config_does_not(tmp_path, store):
    config = versioned({"model": "tiny"})
    _ship_tiny(tmp_path, config)
    newer = {**config, "versions": {"tensorflow": "2.21.9"}}
    assert shipped.find_entry("tiny", newer) is not None
    assert shipped.find_entry("tiny", {**config, "seed": 1}) is None
    assert shipped.find_entry("other", config) is None


def test_a_corrupted_shipped_file_is_never_used_but_trained_again(tmp_path, store, caplog):
    config = versioned({"model": "tiny"})
    _ship_tiny(tmp_path, config)
    path = store / "tiny.h5.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    trained = []

    def train(model):
        trained.append(model)
        return {"train_seconds": 0.1}

    with caplog.at_level(logging.WARNING, logger="qlab.zoo.shipped"):
        model, manifest = load_or_build("tiny", config, lambda: _tiny_model(seed=5), train)
    assert trained == [model] and "source" not in manifest
    assert "corrupted" in caplog.text and "tiny" in caplog.text


def test_switching_the_shipped_models_off(tmp_path, store):
    config = versioned({"model": "tiny"})
    _ship_tiny(tmp_path, config)
    with shipped.shipped_models_ignored():
        assert shipped.shipped_dir() is None
    assert shipped.shipped_dir() == store


def test_a_manifest_of_another_format_is_a_clear_error(tmp_path):
    (tmp_path / shipped.MANIFEST).write_text(json.dumps({"format": 99, "entries": {}}))
    with pytest.raises(shipped.ShippedModelError, match="format 99"):
        shipped.read_manifest(tmp_path)


def test_a_keras3_model_is_cached_and_shipped_under_the_same_weights_name(store, artifacts):
    """Keras 3 insists on '.weights.h5' names; entries and shipped files keep 'weights.h5' and load back."""
    import keras

    from qlab.zoo.cache import load_or_build

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization()])

    trained, manifest = load_or_build("k3", {"model": "k3"}, build, lambda model: {"train_seconds": 0.1})
    entry = next(artifacts.glob("models/k3-*"))
    assert sorted(p.name for p in entry.iterdir()) == ["manifest.json", "weights.h5"]
    again, _ = load_or_build("k3", {"model": "k3"}, lambda: keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization()]), lambda model: {})
    assert all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), again.get_weights()))
    shipped.ship_entry("k3", entry, store, shipped.values_sha256(trained))
    loaded = shipped.load_entry(store, shipped.read_manifest(store)["entries"]["k3"], build)
    assert shipped.values_sha256(loaded) == shipped.values_sha256(trained)
