"""qlab.zoo.quiet: only the known harmless C++ lines are dropped from a child's stderr."""

import subprocess
import sys

import pytest

from qlab.zoo.quiet import harmless_lines_filtered, is_harmless_native_line

NODEDEF = ("E0000 00:00:1795691532.118098    8892 node_def_util.cc:682] NodeDef mentions attribute "
           "use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; "
           "signature=input_dataset:variant, other_arguments: -> handle:variant> This may be expected "
           "if your graph generating binary is newer  than this binary. Unknown attributes will be "
           "discarded.")
HARMLESS = [NODEDEF, "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
            "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8"]
REAL = ["E0000 00:00:1795691532.118098    8892 node_def_util.cc:682] NodeDef missing attr 'T'",
        "Traceback (most recent call last):",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU. Failed to apply it.",
        "2026-11-26 13:00:00.000000: F tensorflow/core/framework/tensor.cc:100] Check failed",
        ""]


@pytest.mark.parametrize("line", HARMLESS)
def test_known_harmless_lines_are_recognised(line):
    assert is_harmless_native_line(line)


@pytest.mark.parametrize("line", REAL)
def test_other_lines_are_not(line):
    assert not is_harmless_native_line(line)


def _child_stderr(lines: list[str], monkeypatch, verbose: str | None = None) -> list[str]:
    if verbose is None:
        monkeypatch.delenv("QLAB_TF_VERBOSE", raising=False)
    else:
        monkeypatch.setenv("QLAB_TF_VERBOSE", verbose)
    # the last line has no newline: it must still arrive
    script = "import os\nfor line in %r: os.write(2, line.encode())" % (
        [line + "\n" for line in lines[:-1]] + [lines[-1]])
    got: list[str] = []
    with harmless_lines_filtered(got.append) as stderr:
        subprocess.run([sys.executable, "-c", script], stderr=stderr, check=True)
    return got


def test_a_childs_stderr_loses_only_the_harmless_lines(monkeypatch):
    lines = [HARMLESS[0], REAL[0], HARMLESS[1], REAL[1], HARMLESS[2], "last line, no newline"]
    assert _child_stderr(lines, monkeypatch) == [REAL[0], REAL[1], "last line, no newline"]


def test_qlab_tf_verbose_keeps_every_line(monkeypatch):
    lines = [HARMLESS[0], REAL[1], "end"]
    assert _child_stderr(lines, monkeypatch, verbose="1") == lines
