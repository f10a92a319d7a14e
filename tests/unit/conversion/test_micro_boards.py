"""Will it fit? The boards' figures and the fit table, on tiny files (one conv, one dense layer).

A board made to measure around the tiny int8 file's measured arena and size tells the limits apart:
it fits with exactly its arena and file, and misses by one byte of either.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from qlab.conversion import micro, micro_boards
from qlab.conversion.micro_boards import BOARDS, NRF52840, STM32H743ZI, Board, fit_table

#: What TFLM printed for the MNIST CNN's aeq_int4_static file (INT4 FULLY_CONNECTED weights, per channel).
INT4_REFUSAL = ["tensorflow/lite/micro/kernels/fully_connected_common.cc:98 (input->type == kTfLiteInt8 && "
                "filter->type != kTfLiteInt4) || (input->type == kTfLiteInt16 && filter->type != kTfLiteInt4) "
                "was not true.", "Node FULLY_CONNECTED (number 5) failed to prepare with status 1"]


def weights_moved_after_the_flatbuffer(model_bytes: bytes) -> tuple[bytes, int, int]:
    """The file with every non-empty buffer stored after its FlatBuffer (``offset``/``size``), as the LiteRT
    Quantizer writes a MobileNet; ``(bytes, buffers moved, bytes moved)``."""
    import flatbuffers

    from qlab.conversion.tflite_file import read_flatbuffer

    def pack(model):
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    model = read_flatbuffer(model_bytes)
    moved = [(i, bytes(bytearray(b.data))) for i, b in enumerate(model.buffers) if b.data is not None and len(b.data)]
    for i, data in moved:
        model.buffers[i].data, model.buffers[i].offset, model.buffers[i].size = None, 1 << 40, len(data)
    length = len(pack(model))  # an offset's value does not change the FlatBuffer's length
    start, tail = (length + 15) // 16 * 16, b""
    for i, data in moved:
        model.buffers[i].offset = start + len(tail)
        tail += data + bytes(-len(data) % 16)
    head = pack(model)
    assert len(head) == length
    return head + bytes(start - length) + tail, len(moved), sum(len(data) for _, data in moved)


def board_around(arena: int, flash: int, ram_slack: int = 0, flash_slack: int = 0) -> Board:
    """A board whose budgets are ``arena + ram_slack`` and ``flash + flash_slack`` bytes."""
    return Board("made to measure", "none", ram_bytes=arena + ram_slack + 1000, flash_bytes=flash + flash_slack + 2000,
                 source="this test", ram_reserve_bytes=1000, flash_reserve_bytes=2000)


def test_the_boards_carry_their_makers_figures():
    assert (NRF52840.ram_bytes, NRF52840.flash_bytes) == (256 * 1024, 1024 * 1024)
    assert "Cortex-M4" in NRF52840.core and "nRF52840 Product Specification" in NRF52840.source
    # the arena gets the H743's largest RAM block, the 512 KB AXI-SRAM, not the "1 Mbyte" of all its blocks
    assert (STM32H743ZI.ram_bytes, STM32H743ZI.flash_bytes) == (512 * 1024, 2048 * 1024)
    assert "Cortex-M7" in STM32H743ZI.core and "DS12110" in STM32H743ZI.source and "AXI-SRAM" in STM32H743ZI.source
    assert BOARDS == (NRF52840, STM32H743ZI)
    assert NRF52840.arena_budget == 256 * 1024 - micro_boards.RAM_RESERVE_BYTES
    assert STM32H743ZI.model_budget == 2048 * 1024 - micro_boards.FLASH_RESERVE_BYTES
    assert "224.0 KiB for the arena" in repr(NRF52840)


def test_a_reserve_is_a_parameter_of_the_board():
    roomy = dataclasses.replace(NRF52840, ram_reserve_bytes=0)
    assert roomy.arena_budget == 256 * 1024 and roomy.flash_bytes == NRF52840.flash_bytes


@pytest.mark.parametrize("field, value, message", [
    ("ram_bytes", -1, "ram_bytes must be a whole number of bytes"),
    ("flash_bytes", 1.5, "flash_bytes must be a whole number of bytes"),
    ("ram_reserve_bytes", 256 * 1024, "ram_reserve_bytes=262144 leaves nothing of ram_bytes=262144"),
    ("flash_reserve_bytes", 2 << 20, "flash_reserve_bytes=2097152 leaves nothing of flash_bytes"),
])
def test_bad_board_figures_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(NRF52840, **{field: value})


def test_a_file_that_fits_with_exactly_its_arena_and_file(tiny):
    arena, flash = micro.smallest_arena(tiny["int8"]), len(tiny["int8"])
    assert arena >= 8 * 8 * 1 + 6 * 6 * 4  # conv's int8 input and output are live at once
    table = fit_table({"tiny": tiny["int8"]}, [board_around(arena, flash), *BOARDS])
    assert list(table.columns) == ["file", "board", "flash bytes", "arena bytes", "fits", "why not"]
    assert table["fits"].all() and (table["why not"] == "").all()
    assert (table["arena bytes"] == arena).all() and (table["flash bytes"] == flash).all()


def test_an_arena_one_byte_too_big(tiny):
    arena, flash = micro.smallest_arena(tiny["int8"]), len(tiny["int8"])
    row = fit_table({"tiny": tiny["int8"]}, [board_around(arena, flash, ram_slack=-1)]).iloc[0]
    assert not row["fits"] and row["why not"].startswith("arena ") and "of RAM" in row["why not"]
    assert "flash" not in row["why not"]


def test_a_file_one_byte_too_big(tiny):
    arena, flash = micro.smallest_arena(tiny["int8"]), len(tiny["int8"])
    row = fit_table({"tiny": tiny["int8"]}, [board_around(arena, flash, flash_slack=-1)]).iloc[0]
    assert not row["fits"] and row["why not"].startswith("file ") and row["why not"].endswith("of flash")


def test_both_too_big_names_both(tiny):
    arena, flash = micro.smallest_arena(tiny["int8"]), len(tiny["int8"])
    row = fit_table({"tiny": tiny["int8"]}, [board_around(arena, flash, -1, -1)]).iloc[0]
    assert row["why not"].count("; ") == 1 and "arena" in row["why not"] and "file" in row["why not"]


def test_refused_files_are_rows_that_name_the_refusal(tiny):
    table = fit_table({"float": tiny["float32"], "gelu": tiny["gelu"]}).set_index(["file", "board"])
    assert not table["fits"].any() and table["arena bytes"].isna().all()
    assert table.loc[("float", NRF52840.name), "why not"].startswith("float ops: CONV_2D x1")
    assert table.loc[("gelu", STM32H743ZI.name), "why not"] == "no TFLM kernel for GELU"
    assert table.loc[("float", NRF52840.name), "flash bytes"] == len(tiny["float32"])


def test_a_kernels_refusal_names_the_op_node_and_check():
    assert micro_boards.refusal_from(INT4_REFUSAL) == (
        "TFLM's FULLY_CONNECTED kernel refuses node 5: (input->type == kTfLiteInt8 && filter->type != "
        "kTfLiteInt4) || (input->type == kTfLiteInt16 && filter->type != kTfLiteInt4) was not true")
    assert micro_boards.refusal_from(["Didn't find op for builtin opcode 'GELU'"]) == "no TFLM kernel for GELU"
    assert micro_boards.refusal_from(["something else"]) == "TFLM cannot prepare it: something else"


@pytest.mark.parametrize("files, boards, message", [
    ({}, BOARDS, "files must be a non-empty mapping"),
    ([b"x"], BOARDS, "files must be a non-empty mapping"),
    ({"a": "not bytes"}, BOARDS, "not bytes: a"),
    ({"a": b"x"}, (), "boards must be a non-empty sequence"),
    ({"a": b"x"}, ("nRF52840",), "boards must be a non-empty sequence"),
])
def test_bad_arguments_are_refused_before_anything_runs(files, boards, message):
    with pytest.raises(TypeError, match=message):
        fit_table(files, boards)


def test_weights_after_the_flatbuffer_are_refused_though_litert_reads_them(tiny):
    from qlab.conversion.tflite import predict_tflite

    moved, count, size = weights_moved_after_the_flatbuffer(tiny["int8"])
    x = np.random.default_rng(2).uniform(size=(8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(predict_tflite(moved, x), predict_tflite(tiny["int8"], x))  # the same model
    assert micro.outside_buffers(moved) == (count, size) and micro.outside_buffers(tiny["int8"]) == (0, 0)
    # TFLM itself allocates the file without a word, the weights planned in its arena as if activations
    assert micro.allocates(moved, 1 << 20)[0]
    with pytest.raises(ValueError, match=f"keeps {count} weight buffers .* after its FlatBuffer"):
        micro.micro_interpreter(moved)
    row = fit_table({"moved": moved}, BOARDS[:1]).iloc[0]
    assert not row["fits"] and pd.isna(row["arena bytes"])
    assert row["why not"].startswith(f"weights after the FlatBuffer ({count} buffers")


def test_a_long_list_of_float_ops_is_cut_short(monkeypatch):
    table = pd.DataFrame({"op": list("ABCDEFG"), "count": range(1, 8), "float tensors": "FLOAT32"})
    monkeypatch.setattr(micro_boards, "integer_only_ops", lambda model_bytes: table)
    assert micro_boards.arena_or_refusal(b"") == (None, "float ops: A x1, B x2, C x3, D x4, E x5 and 2 more")


def test_a_measured_table_is_set_against_each_board_without_running_tflm_again():
    budget = NRF52840.arena_budget
    table = pd.DataFrame({"model": ["a", "b", "c"], "variant": ["int8", "int8", "float"],
                          "flash bytes": [1000, 1000, 1000], "arena bytes": [budget, budget + 1, None],
                          "refusal": [None, None, "float ops: CONV_2D x1"]})
    shown = micro_boards.on_boards(table, (NRF52840,))
    assert list(shown.columns) == ["model", "variant", "board", "flash bytes", "arena bytes", "fits", "why not"]
    assert shown["fits"].tolist() == [True, False, False]
    assert shown["why not"].tolist() == ["", f"arena {(budget + 1) / 1024:,.1f} KiB > {budget / 1024:,.1f} KiB of RAM",
                                         "float ops: CONV_2D x1"]
    assert len(micro_boards.on_boards(table)) == 3 * len(BOARDS)
    with pytest.raises(ValueError, match=r"table needs the columns \['refusal'\]"):
        micro_boards.on_boards(table.drop(columns="refusal"))
