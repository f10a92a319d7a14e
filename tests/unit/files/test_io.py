"""Atomic writes and build-once locks (qlab.files.io)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from qlab.files.io import atomic_path, exclusive, write_bytes_atomic


def _build_once(path: str, log: str) -> str:
    def waiting(message: str) -> None:
        with open(log, "a") as f:
            f.write(f"{message}\n")

    with exclusive(path, waiting=waiting) as target:
        if target.exists():
            return "found"
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.3)  # long enough for the other process to reach the lock
        write_bytes_atomic(target, b"weights")
        return "built"


def test_two_processes_build_an_artifact_once(tmp_path):
    target, log = tmp_path / "models" / "entry", tmp_path / "log"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_build_once, [(str(target), str(log))] * 2)
    assert sorted(results) == ["built", "found"]
    assert log.read_text().count("built\n") == 1 and target.read_bytes() == b"weights"


def test_a_busy_lock_says_so_before_waiting(tmp_path):
    said = []
    with exclusive(tmp_path / "entry"):
        ctx = multiprocessing.get_context("spawn")
        process = ctx.Process(target=_build_once, args=(str(tmp_path / "entry"), str(tmp_path / "log")))
        process.start()
        deadline = time.monotonic() + 30
        while not (tmp_path / "log").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        # the other process said why it waits, and builds nothing while this lock is held
        assert (tmp_path / "log").read_text() == "another process is building entry; waiting for it\n"
    process.join(30)
    assert (tmp_path / "log").read_text().endswith("waiting for it\nbuilt\n")
    with exclusive(tmp_path / "free", waiting=said.append):
        pass
    assert said == []


def test_the_lock_is_released_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with exclusive(tmp_path / "entry"):
            raise RuntimeError("build failed")
    said = []
    with exclusive(tmp_path / "entry", waiting=said.append) as path:
        assert path == tmp_path / "entry" and said == []


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "result.json"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            Path(tmp).write_text("half")
            raise ValueError("crash mid-write")
    assert list(tmp_path.iterdir()) == []
