"""Will it fit? Integer ``.tflite`` files against two published microcontroller boards.

A board keeps the model file in flash and the tensor arena in RAM (:mod:`qlab.conversion.micro`).
:class:`Board` holds a board's figures from its maker's document, :data:`BOARDS` two of them, and
:func:`fit_table` sets every file against every board: the flash bytes (the file), the arena bytes
(:func:`qlab.conversion.micro.smallest_arena`, measured by TFLM itself), whether it fits and why
not: the arena, the file, or the refusal that keeps TFLM from running it at all (float ops, weights
kept after the FlatBuffer, an op TFLM has no kernel for, a kernel that refuses the file's tensors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from qlab.conversion.micro import (allocates, default_arena_size, missing_ops_from, outside_buffers,
                                  smallest_arena)
from qlab.conversion.tflite_file import integer_only_ops

if TYPE_CHECKING:
    import pandas as pd

KIB = 1024

#: RAM kept for what is not the arena: the stack, TFLM's interpreter and op resolver objects (they live
#: outside the arena), the application's globals and buffers. An ASSUMPTION, not a measurement: qlab
#: builds no firmware. 32 KiB suits a bare-metal build with a few KiB of stack; an RTOS, a BLE stack or
#: a camera frame takes more. Change it per board with ``dataclasses.replace(board, ram_reserve_bytes=...)``.
RAM_RESERVE_BYTES = 32 * KIB
#: Flash kept for the program: startup code, TFLM's runtime and the kernels of the model's ops, the
#: application. Also an ASSUMPTION: TFLM's "core runtime fits in 16 KB" on a Cortex-M3 leaves out the
#: kernels (tensorflow/tflite-micro#3069 asks why its build is far larger), so 128 KiB is kept here.
FLASH_RESERVE_BYTES = 128 * KIB


@dataclass(frozen=True)
class Board:
    """A microcontroller board as TFLM sees it: flash for the model file, one block of RAM for the arena.

    ``ram_bytes`` is the largest *contiguous* RAM block, since the tensor arena is one array;
    ``source`` names the maker's document the figures come from. The reserves (module constants
    :data:`RAM_RESERVE_BYTES`, :data:`FLASH_RESERVE_BYTES`) are assumptions, not figures of the board.
    """

    name: str
    core: str
    ram_bytes: int
    flash_bytes: int
    source: str
    ram_reserve_bytes: int = RAM_RESERVE_BYTES
    flash_reserve_bytes: int = FLASH_RESERVE_BYTES

    def __post_init__(self) -> None:
        for field in ("ram_bytes", "flash_bytes", "ram_reserve_bytes", "flash_reserve_bytes"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{field} must be a whole number of bytes (0 or more), got {value!r}")
        for total, reserve in (("ram_bytes", "ram_reserve_bytes"), ("flash_bytes", "flash_reserve_bytes")):
            if getattr(self, reserve) >= getattr(self, total):
                raise ValueError(f"{reserve}={getattr(self, reserve)} leaves nothing of {total}="
                                 f"{getattr(self, total)}: the reserve must be smaller than the memory")

    @property
    def arena_budget(self) -> int:
        """The RAM bytes left for the tensor arena: ``ram_bytes - ram_reserve_bytes``."""
        return self.ram_bytes - self.ram_reserve_bytes

    @property
    def model_budget(self) -> int:
        """The flash bytes left for the model file: ``flash_bytes - flash_reserve_bytes``."""
        return self.flash_bytes - self.flash_reserve_bytes

    def __repr__(self) -> str:
        return (f"Board({self.name}, {self.core}: {_kib(self.ram_bytes)} RAM block, {_kib(self.arena_budget)} "
                f"for the arena; {_kib(self.flash_bytes)} flash, {_kib(self.model_budget)} for the model)")


NRF52840 = Board(
    name="Nordic nRF52840 (Arduino Nano 33 BLE Sense)", core="Arm Cortex-M4F, 64 MHz",
    # one 256 kB block of RAM from 0x2000 0000, so all of it can hold the arena (less the reserve)
    ram_bytes=256 * KIB, flash_bytes=1024 * KIB,
    source="Nordic Semiconductor, nRF52840 Product Specification v1.7, chapter Memory: "
           "1 MB flash, 256 kB RAM")
STM32H743ZI = Board(
    name="ST STM32H743ZI (NUCLEO-H743ZI2)", core="Arm Cortex-M7, 480 MHz",
    # "Up to 1 Mbyte of RAM" is 192 KB of TCM (64 ITCM, 128 DTCM), 864 KB of user SRAM and 4 KB of backup
    # SRAM, in blocks at different addresses: AXI-SRAM 512 KB (0x2400 0000), SRAM1-3 128+128+32 KB (D2
    # domain, 0x3000 0000), SRAM4 64 KB (D3). An arena is one array, so it gets the largest block, the
    # 512 KB AXI-SRAM; the stack and globals could go to DTCM, but the same reserve is kept from it here.
    ram_bytes=512 * KIB, flash_bytes=2048 * KIB,
    source="STMicroelectronics, STM32H742xI/G STM32H743xI/G datasheet DS12110 Rev 10 (DM00387108), "
           "section 3.3.2 Embedded SRAM: 512 Kbytes of AXI-SRAM (the largest RAM block, used for the "
           "arena), 2 Mbytes of flash; memory map in reference manual RM0433")
#: The two boards of the deployment lesson: a Cortex-M4 with 256 KB RAM and a Cortex-M7 with 512 KB.
BOARDS: tuple[Board, ...] = (NRF52840, STM32H743ZI)

#: What TFLM prints when a kernel refuses a node while it prepares it (a TF_LITE_ENSURE that failed).
FAILED_PREPARE = re.compile(r"Node (\w+) \(number (\d+)\) failed to prepare")
FAILED_CHECK = re.compile(r"\.cc:\d+ (.+ was not true)")
#: How many of a file's float ops a refusal names.
SHOWN_OPS = 5


def _kib(n: int) -> str:
    return f"{n / KIB:,.1f} KiB"


def refusal_from(lines: list[str]) -> str:
    """A short reason from what TFLM printed when it did not allocate a model, whatever the arena.

    An op without a kernel is named (``no TFLM kernel for GELU``); a kernel that refused a node is
    named with the check that failed (``TFLM's FULLY_CONNECTED kernel refuses node 5: ... was not true``).
    """
    missing = missing_ops_from(lines)
    if missing:
        return f"no TFLM kernel for {', '.join(missing)}"
    nodes = [match for line in lines for match in [FAILED_PREPARE.search(line)] if match]
    checks = [match.group(1) for line in lines for match in [FAILED_CHECK.search(line)] if match]
    if nodes:
        why = f": {checks[0]}" if checks else ""
        return f"TFLM's {nodes[0].group(1)} kernel refuses node {nodes[0].group(2)}{why}"
    return f"TFLM cannot prepare it: {' '.join(lines[:2]) or 'it printed nothing'}"


def arena_or_refusal(model_bytes: bytes) -> tuple[int | None, str | None]:
    """``(smallest arena bytes, None)`` for a file TFLM runs, ``(None, why not)`` for one it refuses.

    Float ops are found in the file itself (:func:`qlab.conversion.tflite_file.integer_only_ops`, the
    first :data:`SHOWN_OPS` named), so are weights kept after the FlatBuffer
    (:func:`qlab.conversion.micro.outside_buffers`); a missing kernel or a kernel's refusal by
    allocating in a generous arena (a forked child, :func:`qlab.conversion.micro.allocates`); the
    arena is then :func:`qlab.conversion.micro.smallest_arena`.
    """
    floats = integer_only_ops(model_bytes)
    if len(floats):
        ops = [f"{op} x{count}" for op, count in zip(floats["op"], floats["count"])]
        more = f" and {len(ops) - SHOWN_OPS} more" if len(ops) > SHOWN_OPS else ""
        return None, f"float ops: {', '.join(ops[:SHOWN_OPS])}{more}"
    count, size = outside_buffers(model_bytes)
    if count:  # TFLM would plan these weights in the arena and compute with garbage
        return None, f"weights after the FlatBuffer ({count} buffers, {_kib(size)}): TFLM does not read them"
    works, lines = allocates(model_bytes, default_arena_size(model_bytes))
    if not works:
        return None, refusal_from(lines)
    return smallest_arena(model_bytes), None


def why_not(flash_bytes: int, arena_bytes: int | None, refusal: str | None, board: Board) -> str:
    """Why a file does not fit a board ("" when it does): the refusal, else the arena and the file, each over budget."""
    if refusal is not None:
        return refusal
    reasons = []
    if arena_bytes is not None and arena_bytes > board.arena_budget:
        reasons.append(f"arena {_kib(arena_bytes)} > {_kib(board.arena_budget)} of RAM")
    if flash_bytes > board.model_budget:
        reasons.append(f"file {_kib(flash_bytes)} > {_kib(board.model_budget)} of flash")
    return "; ".join(reasons)


def _check_inputs(files: Mapping[str, bytes], boards: Sequence[Board]) -> None:
    if not isinstance(files, Mapping) or not files:
        raise TypeError(f"files must be a non-empty mapping of names to .tflite bytes, got {type(files).__name__}")
    wrong = [name for name, data in files.items() if not isinstance(data, (bytes, bytearray))]
    if wrong:
        raise TypeError(f"files must map names to .tflite bytes; not bytes: {', '.join(map(str, wrong[:5]))}")
    if not boards or not all(isinstance(board, Board) for board in boards):
        raise TypeError(f"boards must be a non-empty sequence of qlab.conversion.micro_boards.Board, got {boards!r}")


def fit_table(files: Mapping[str, bytes], boards: Sequence[Board] = BOARDS) -> "pd.DataFrame":
    """One row per file and board: flash bytes, arena bytes, whether it fits, and why not.

    Args:
        files: names to ``.tflite`` bytes (any file: TFLM's refusals become rows, not exceptions).
        boards: :class:`Board` s, default :data:`BOARDS`.

    Returns:
        :func:`on_boards` of a table with ``file``, ``flash bytes`` (the file), ``arena bytes`` (the
        smallest arena TFLM allocates it in; missing when TFLM refuses the file) and ``refusal``.
    """
    import pandas as pd

    _check_inputs(files, boards)
    rows = []
    for name, model_bytes in files.items():
        arena, refusal = arena_or_refusal(bytes(model_bytes))
        rows.append({"file": name, "flash bytes": len(model_bytes), "arena bytes": arena, "refusal": refusal})
    return on_boards(pd.DataFrame(rows), boards)


def on_boards(table: "pd.DataFrame", boards: Sequence[Board] = BOARDS) -> "pd.DataFrame":
    """``table`` (one row per file, with ``flash bytes``, ``arena bytes`` and ``refusal``) once per board.

    The columns before ``flash bytes`` name the file; ``board``, ``fits`` (the arena within the board's
    :attr:`Board.arena_budget` and the file within its :attr:`Board.model_budget`) and ``why not``
    (:func:`why_not`, empty when it fits) are added, ``refusal`` is folded into ``why not``.
    """
    import pandas as pd

    missing = {"flash bytes", "arena bytes", "refusal"} - set(table.columns)
    if missing:
        raise ValueError(f"table needs the columns {sorted(missing)}; it has {list(table.columns)}")
    names = list(table.columns[:list(table.columns).index("flash bytes")])
    rows = []
    for _, row in table.iterrows():
        arena = None if pd.isna(row["arena bytes"]) else int(row["arena bytes"])
        refusal = None if pd.isna(row["refusal"]) or row["refusal"] == "" else str(row["refusal"])
        for board in boards:
            reason = why_not(int(row["flash bytes"]), arena, refusal, board)
            rows.append({**{name: row[name] for name in names}, "board": board.name,
                         "flash bytes": int(row["flash bytes"]), "arena bytes": arena, "fits": not reason,
                         "why not": reason})
    shown = pd.DataFrame(rows)
    shown["arena bytes"] = shown["arena bytes"].astype("Int64")
    return shown
