"""The microcontroller run (TFLM through ``tflite-micro``): reading its C++ output, and every refusal, on tiny models.

The tiny model (8x8 image, one conv, one dense layer) converts in about a second per variant; its
GELU twin is integer-only but uses an op TFLM has no kernel for.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

from qlab.conversion import micro

#: What TFLM's RecordingMicroAllocator prints for the MNIST CNN (print_allocations(), to stderr).
ALLOCATIONS = """[RecordingMicroAllocator] Arena allocation total 31120 bytes
[RecordingMicroAllocator] Arena allocation head 27040 bytes
[RecordingMicroAllocator] Arena allocation tail 4080 bytes
[RecordingMicroAllocator] 'TfLiteEvalTensor data' used 408 bytes with alignment overhead (requested 408 bytes)"""


def test_arena_bytes_are_read_from_the_total_line():
    assert micro.arena_bytes_from(ALLOCATIONS.splitlines()) == 31120
    with pytest.raises(ValueError, match="no 'Arena allocation total"):
        micro.arena_bytes_from(ALLOCATIONS.splitlines()[1:])


def test_missing_ops_are_read_from_tflms_lines():
    lines = ["Didn't find op for builtin opcode 'GELU'", "Failed to get registration from op code GELU",
             "Didn't find op for builtin opcode 'TILE'", "Didn't find op for builtin opcode 'GELU'"]
    assert micro.missing_ops_from(lines) == ["GELU", "TILE"]
    assert micro.missing_ops_from(ALLOCATIONS.splitlines()) == []


def test_native_output_is_captured_on_both_descriptors_and_they_are_restored(capfd):
    libc = ctypes.CDLL(None)
    with micro.native_output_captured() as lines:
        libc.printf(b"from printf, still in C's buffer\n")  # reaches fd 1 only when flushed
        os.write(2, b"from stderr\n")
    os.write(1, b"after the block\n")
    assert sorted(lines) == ["from printf, still in C's buffer", "from stderr"]
    assert capfd.readouterr().out == "after the block\n"


def test_a_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tflite_micro", None)  # what import finds on a platform without a wheel
    with pytest.raises(ImportError, match=r"'tflite-micro'.*pip install tflite-micro"):
        micro.micro_runtime()


def test_qlab_imports_without_the_package():
    code = ("import sys; sys.modules['tflite_micro'] = None; import qlab, qlab.conversion.micro; "
            "assert 'tensorflow' not in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_float_file_is_refused(tiny):
    with pytest.raises(ValueError, match="float file: its layers compute in float.*int8_per_channel"):
        micro.micro_interpreter(tiny["float32"])


def test_float_islands_are_refused_naming_the_ops(tiny):
    with pytest.raises(ValueError, match=r"float islands: .*QUANTIZE x1 \(FLOAT32\).*DEQUANTIZE x1 \(FLOAT32\)"):
        micro.micro_interpreter(tiny["int16x8"])


def test_an_op_without_a_micro_kernel_is_refused_by_name(tiny):
    from qlab.conversion.tflite_file import count_non_integer_ops

    assert count_non_integer_ops(tiny["gelu"]) == 0  # integer-only: only TFLM's op list refuses it
    with pytest.raises(ValueError, match="has no kernel for GELU"):
        micro.micro_interpreter(tiny["gelu"])


def test_the_smallest_arena_allocates_and_one_byte_less_does_not(tiny):
    measured = micro.measured_arena(micro.micro_interpreter(tiny["int8"]))
    # an independent floor: CONV_2D's input (8x8x1) and output (6x6x4) int8 activations are live at once
    assert measured >= 8 * 8 * 1 + 6 * 6 * 4
    smallest = micro.smallest_arena(tiny["int8"])
    assert smallest >= measured  # the recorded total leaves out Prepare's temporary buffers
    x_int = np.random.default_rng(1).integers(-128, 128, size=(4, 8, 8, 1), dtype=np.int8)
    np.testing.assert_array_equal(micro.micro_predict(micro.micro_interpreter(tiny["int8"], smallest), x_int),
                                  micro.micro_predict(micro.micro_interpreter(tiny["int8"]), x_int))
    with pytest.raises(ValueError, match=rf"arena_size={smallest - 1} bytes is too small.*that works is "
                                         rf"{smallest} bytes"):
        micro.micro_interpreter(tiny["int8"], arena_size=smallest - 1)


def test_an_arena_that_crashes_tflm_is_a_clear_error_not_a_crash(tiny):
    # below 464 bytes TFLM writes its own allocator objects past the arena's end: a segmentation fault
    assert micro.allocates(tiny["int8"], 100)[0] is False
    with pytest.raises(ValueError, match="arena_size=100 bytes is too small"):
        micro.micro_interpreter(tiny["int8"], arena_size=100)
    for bad in (0, -5, 1.5e4):
        with pytest.raises(ValueError, match="arena_size must be a positive whole number of bytes"):
            micro.micro_interpreter(tiny["int8"], arena_size=bad)


def test_inputs_of_the_wrong_dtype_or_shape_are_refused(tiny):
    x = tiny["x"][:4]
    with pytest.raises(ValueError, match="x must be float images.*uint8"):
        micro.micro_agreement(tiny["int8"], (x * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"x has shape \(4, 8, 8\), the model takes images of shape \(8, 8, 1\)"):
        micro.micro_agreement(tiny["int8"], x[..., 0])
    interpreter = micro.micro_interpreter(tiny["int8"])
    with pytest.raises(ValueError, match="x_int has dtype float32, the model input is int8"):
        micro.micro_predict(interpreter, x)
    with pytest.raises(ValueError, match=r"x_int has shape \(4, 7, 8, 1\)"):
        micro.micro_predict(interpreter, np.zeros((4, 7, 8, 1), np.int8))


def test_the_tiny_model_agrees_with_litert(tiny):
    result = micro.micro_agreement(tiny["int8"], tiny["x"][:16])
    assert result.images == 16 and result.flash_bytes == len(tiny["int8"])
    assert result.top1_agreement >= 0.9 and result.max_step_difference <= 2
    assert sum(result.step_counts) == 16 * 10 and result.step_counts[0] >= 0.9 * 160
    assert "identical int8 outputs" in repr(result)
    assert result.reference_identical == 1.0 and result.reference_max_step_difference == 0


def test_litert_kernel_sets_are_chosen_by_name(tiny):
    from qlab.conversion import tflite

    x = tiny["x"][:8]
    outputs = {k: tflite.predict_tflite(tiny["int8"], x, kernels=k) for k in tflite.KERNELS}
    for kernels, scores in outputs.items():  # the same model whatever the kernels: within a step or two
        np.testing.assert_allclose(scores, outputs["reference"], atol=3 * np.abs(scores).max() / 127,
                                   err_msg=kernels)
    with pytest.raises(ValueError, match=r"kernels must be one of \['default', 'optimized', 'reference'\], got 'fast'"):
        tflite.make_interpreter(tiny["int8"], kernels="fast")


def test_a_file_the_reference_kernels_cannot_run_is_compared_with_litert_default_only(tiny, monkeypatch):
    original = micro.litert_integer_outputs

    def no_int4_depthwise(model_bytes, x, detail, kernels="default"):
        if kernels == "reference":  # what LiteRT's reference resolver says of a MobileNet's QAT 4-bit file
            raise ValueError("Didn't find op for builtin opcode 'DEPTHWISE_CONV_2D' version '7'.")
        return original(model_bytes, x, detail, kernels)

    monkeypatch.setattr(micro, "litert_integer_outputs", no_int4_depthwise)
    result = micro.micro_agreement(tiny["int8"], tiny["x"][:4])
    assert result.reference_identical is None and result.reference_max_step_difference is None
    assert result.top1_agreement >= 0.75 and "reference kernels cannot run the file" in repr(result)

    def broken(model_bytes, x, detail, kernels="default"):
        raise ValueError("something else")

    monkeypatch.setattr(micro, "litert_integer_outputs", broken)
    with pytest.raises(ValueError, match="something else"):
        micro.micro_agreement(tiny["int8"], tiny["x"][:4])
