"""Shared test set-up: tests never touch the user's artifacts/ folder.

Smoke-size models are deterministic and cached by their full config, so one cache
serves the whole session: the notebooks, the smoke comparison, the integer
simulator and the debugger tests train each smoke model (and QAT fine-tune) once.
Tests of the cache itself, or that must retrain, use the private ``artifacts`` fixture.
"""

from __future__ import annotations

import os

import pytest

# Quiet TensorFlow's C++ start-up lines in test output; qlab.lite.keras2 sets the same default.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def shared_artifacts(tmp_path_factory):
    """The session's artifacts folder (``$QLAB_ARTIFACTS``), inherited by notebook kernels and CLI runs."""
    path = tmp_path_factory.mktemp("shared-artifacts")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QLAB_ARTIFACTS", str(path))
        yield path


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """A private artifacts folder, for tests of the cache itself or that must start empty."""
    path = tmp_path / "artifacts"
    monkeypatch.setenv("QLAB_ARTIFACTS", str(path))
    return path
