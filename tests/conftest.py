"""Shared test set-up: every test writes its artifacts into a temporary folder."""

from __future__ import annotations

import os

import pytest

# Quiet TensorFlow's C++ start-up lines in test output; qlab._keras sets the same default.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """A private artifacts folder, so tests never touch the user's trained models or results."""
    path = tmp_path / "artifacts"
    monkeypatch.setenv("QLAB_ARTIFACTS", str(path))
    return path
