"""Where qlab finds its data and keeps its artifacts, with or without a repository checkout.

qlab works installed from a wheel, far from any checkout. Each folder comes from a
setting first, then from the checkout qlab was imported from (an editable install
or the source tree), then from a default or a clear error:

- MNIST: ``$QLAB_DATA_DIR``, else the checkout's ``data/``, else an error saying what
  to set;
- artifacts (trained models, ``.tflite`` files, results): ``$QLAB_ARTIFACTS``, else the
  checkout's ``artifacts/``, else ``./artifacts``;
- the notebooks and the benchmark folder are repository tools, not package data:
  :func:`repository_root` finds the checkout or says why it cannot.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

DATA_ENV = "QLAB_DATA_DIR"
ARTIFACTS_ENV = "QLAB_ARTIFACTS"
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def _is_checkout(path: Path) -> bool:
    """True for a qlab repository: the package's sources beside its notebooks."""
    return (path / "pyproject.toml").is_file() and (path / "qlab" / "__init__.py").is_file() \
        and (path / "notebooks").is_dir()


def checkout_root() -> Path | None:
    """The repository qlab was imported from, or None when it is installed from a wheel."""
    return _PACKAGE_PARENT if _is_checkout(_PACKAGE_PARENT) else None


def repository_root() -> Path:
    """The qlab repository, for its notebooks and benchmarks; raise if there is none.

    The checkout qlab was imported from comes first, then the current folder. An
    installed wheel carries neither the notebooks nor the benchmark folder.
    """
    for candidate in (checkout_root(), Path.cwd()):
        if candidate is not None and _is_checkout(candidate):
            return candidate
    raise FileNotFoundError(
        "this needs the qlab repository (its notebooks/ and benchmarks/ are not part of the "
        f"installed package): run it from a checkout; qlab is installed at {_PACKAGE_PARENT} "
        f"and the current folder {Path.cwd()} is not a qlab checkout either")


def data_dir() -> Path:
    """Folder holding ``mnist.npz``: ``$QLAB_DATA_DIR``, else the checkout's ``data/``.

    Raises:
        FileNotFoundError: neither is set or present; the message says what to set.
    """
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    root = checkout_root()
    if root is not None:
        return root / "data"
    raise FileNotFoundError(
        f"qlab cannot find MNIST: set {DATA_ENV} to the folder that holds mnist.npz (the qlab "
        "repository's data/ folder ships it); qlab is installed outside a checkout, at "
        f"{_PACKAGE_PARENT}")


def artifacts_dir() -> Path:
    """Folder for trained models, .tflite files and results (created on demand).

    ``$QLAB_ARTIFACTS``, else the checkout's ``artifacts/``, else ``./artifacts``.
    """
    if os.environ.get(ARTIFACTS_ENV):
        path = Path(os.environ[ARTIFACTS_ENV])
    else:
        root = checkout_root()
        path = (root if root is not None else Path.cwd()) / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """Within the block the environment variable ``name`` is ``value``; afterwards as before."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
