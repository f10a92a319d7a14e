"""Atomic file writes (a result is either whole on disk or not there at all) and build-once locks."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The rename is atomic on POSIX, so a reader (or a crash mid-write) never sees
    a half-written file, and an existing file is only replaced by a complete one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    return write_bytes_atomic(path, text.encode())


@contextmanager
def exclusive(path: str | os.PathLike, waiting: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold an inter-process lock for ``path`` (the file ``<path>.lock`` beside it) during the block.

    Two processes that would build the same artifact (two notebooks, two test workers) build it
    once: the second waits here, then finds the first one's result. ``waiting`` is called with
    one sentence if the lock is busy, before waiting. Yields ``path`` as a ``Path``.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(path.name + ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if waiting is not None:
            waiting(f"another process is building {path.name}; waiting for it")
        lock.acquire()
    try:
        yield path
    finally:
        lock.release()
