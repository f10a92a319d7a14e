"""Where the benchmark reads and writes: the repository's ``benchmarks/`` and ``BENCHMARKS.md``.

These are repository tools, not package data, so each path is looked up when it is
needed (importing :mod:`qlab.workbook.bench` works without a checkout; asking for a
path outside one raises :func:`qlab.files.paths.repository_root`'s error).
"""

from __future__ import annotations

from pathlib import Path

from qlab.files.paths import repository_root


def benchmarks_dir() -> Path:
    """The repository's ``benchmarks/`` folder."""
    return repository_root() / "benchmarks"


def results_json() -> Path:
    """``benchmarks/results.json``: what ``qlab bench`` measured, read by ``check.py``."""
    return benchmarks_dir() / "results.json"


def report_md() -> Path:
    """``BENCHMARKS.md`` at the top of the repository."""
    return repository_root() / "BENCHMARKS.md"


def plot_png() -> Path:
    """``benchmarks/accuracy_size_latency.png``, the picture the report shows."""
    return benchmarks_dir() / "accuracy_size_latency.png"


def widget_script() -> Path:
    """``benchmarks/widget_update_times.py``, the widgets' timing script."""
    return benchmarks_dir() / "widget_update_times.py"
