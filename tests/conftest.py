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


#: The order work is handed out under pytest-xdist: the longest units first, the unit tier's many
#: short modules last, where they even out the two workers' finishing times. The pipeline's module
#: goes first of all: its fixture runs ``qlab compare`` over every model (about 4 minutes, three times
#: the longest notebook), so one worker starts it at once while the other takes the notebooks.
SCHEDULE = ("tests/integration/workbook/test_pipeline.py", "tests/notebooks/", "tests/integration/",
            "tests/browser/", "tests/")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike: their collections must agree
        items.sort(key=lambda item: next(i for i, prefix in enumerate(SCHEDULE)
                                         if item.nodeid.startswith(prefix)))


def pytest_xdist_make_scheduler(config, log):
    """``make test`` on two workers: a test module is one unit of work, so its fixtures (a converted
    model, a smoke comparison) are built once, on one worker; each notebook is a unit of its own, so
    the notebooks, the longest tests, spread over both. Units go out in :data:`SCHEDULE`'s order."""
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndNotebooks(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            return nodeid if module.startswith("tests/notebooks/") else module

    config.option.loadscopereorder = False  # keep SCHEDULE's order, not "most tests first"
    return ModulesAndNotebooks(config, log)


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
