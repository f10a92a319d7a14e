"""qlab.workbook.bench.paths: the benchmark finds the repository when it needs it, not on import."""

import subprocess
import sys

from qlab.files.paths import repository_root
from qlab.workbook.bench import paths

NO_CHECKOUT = """
import qlab.files.paths

def no_checkout():
    raise FileNotFoundError("no qlab checkout here")

qlab.files.paths.repository_root = no_checkout
import qlab.workbook.bench as bench
from qlab.cli import build_parser

build_parser()
try:
    bench.results_json()
except FileNotFoundError as exc:
    print("asked:", exc)
"""


def test_importing_the_benchmark_and_the_cli_needs_no_checkout():
    run = subprocess.run([sys.executable, "-c", NO_CHECKOUT], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "asked: no qlab checkout here"


def test_the_paths_are_the_repository_benchmark_files():
    root = repository_root()
    assert paths.results_json() == root / "benchmarks" / "results.json"
    assert paths.report_md() == root / "BENCHMARKS.md"
    assert paths.plot_png() == root / "benchmarks" / "accuracy_size_latency.png"
    assert paths.widget_script().is_file() and paths.results_json().is_file()
