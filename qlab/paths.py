"""Where qlab keeps its files: the shipped data and the git-ignored artifacts."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root when qlab is installed from a checkout (``pip install -e .``).
REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Directory holding ``mnist.npz``: ``$QLAB_DATA_DIR``, else the checkout's ``data/``."""
    return Path(os.environ.get("QLAB_DATA_DIR", REPO_ROOT / "data"))


def artifacts_dir() -> Path:
    """Directory for trained models, .tflite files and results (created on demand).

    ``$QLAB_ARTIFACTS`` overrides the default, the checkout's ``artifacts/``.
    """
    path = Path(os.environ.get("QLAB_ARTIFACTS", REPO_ROOT / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path
