"""Shared test set-up: tests never touch the user's artifacts/ folder.

Smoke-size models are deterministic and cached by their full config, so one cache
serves the whole run: the notebooks, the smoke comparison, the integer simulator and
the debugger tests train each smoke model (and QAT fine-tune) once. ``make test`` runs
on two pytest-xdist workers; they share that cache, and qlab's cache locks an entry
while one process builds it (:func:`qlab.files.io.exclusive`), so the other waits and
reads it. Tests of the cache itself, or that must retrain, use the private
``artifacts`` fixture.
"""

from __future__ import annotations

import os

import pytest

# Quiet TensorFlow's C++ start-up lines in test output; qlab.zoo.keras2 sets the same default.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    """One xdist group per test module (``--dist loadgroup``): a module's fixtures (a converted
    model, a smoke comparison) are built on one worker, once. Each notebook is a group of its
    own, so the notebooks, the longest tests, spread over both workers."""
    for item in items:
        notebook = item.callspec.params.get("notebook") if hasattr(item, "callspec") else None
        item.add_marker(pytest.mark.xdist_group(getattr(notebook, "stem", None) or item.nodeid.split("::")[0]))


@pytest.fixture(scope="session", autouse=True)
def shared_artifacts(tmp_path_factory):
    """The run's artifacts folder (``$QLAB_ARTIFACTS``), inherited by notebook kernels and CLI runs.

    Under pytest-xdist every worker gets the same folder: the one beside the workers' own
    temporary folders.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "shared-artifacts"
        path.mkdir(exist_ok=True)
    else:
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
