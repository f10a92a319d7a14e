"""Checks for ``13_microcontrollers``: the smallest arena, graded by TFLM itself; the file a board takes.

The arena is graded by the definition, not by qlab's own search: TFLM must allocate the model in the
learner's arena and must not in one byte less (each try in a forked child,
:func:`qlab.conversion.micro.allocates`). The choice of a file is graded against the board's budgets
and the accuracy every file measured on TFLM (the ``micro_runs`` study's table).
"""

from __future__ import annotations

from typing import Any

from qlab.workbook.check import CORRECT, NotDone, exercise_check, is_blank


@exercise_check("13.smallest_arena", "the smallest tensor arena TFLM allocates the model in")
def check_smallest_arena(my_arena: Any, *, model_bytes: bytes) -> str | None:
    """``my_arena`` allocates the model and ``my_arena - 1`` does not, both tried on TFLM."""
    from qlab.conversion.micro import allocates

    if is_blank(my_arena):
        raise NotDone
    if isinstance(my_arena, bool) or not isinstance(my_arena, int) or my_arena <= 0:
        return f"give the arena as a positive whole number of bytes (an int), got {my_arena!r}"
    if not allocates(model_bytes, my_arena)[0]:
        return (f"TFLM does not allocate the model in {my_arena:,} bytes: the smallest arena is larger. Keep one "
                "size that fails and one that works, and halve the gap between them.")
    if allocates(model_bytes, my_arena - 1)[0]:
        return (f"{my_arena:,} bytes works, but so does one byte less: keep halving the gap until a size that "
                "works and one that fails are 1 byte apart, and answer the one that works.")
    print(f"TFLM allocates the model in {my_arena:,} bytes and not in {my_arena - 1:,}")
    return CORRECT


def _fitting(runs: Any, board: Any) -> Any:
    """The rows of ``runs`` TFLM runs whose arena and file are within ``board``'s budgets."""
    ran = runs[runs["refusal"].isna()]
    return ran[(ran["arena bytes"].astype(float) <= board.arena_budget) & (ran["flash bytes"] <= board.model_budget)]


@exercise_check("13.fits", "the most accurate file on TFLM that fits the board")
def check_fits(my_choice: Any, *, runs: Any, board: Any) -> str | None:
    """``(model, variant)``: a row of ``runs`` TFLM runs, within both budgets, and no fitting row more accurate."""
    if is_blank(my_choice):
        raise NotDone
    if not (isinstance(my_choice, tuple) and len(my_choice) == 2):
        return f"answer a (model, variant) pair, e.g. ('mnist_cnn', 'int8_per_tensor'); got {my_choice!r}"
    row = runs[(runs["model"] == my_choice[0]) & (runs["variant"] == my_choice[1])]
    if row.empty:
        return f"{my_choice} is not a row of the table: pick a model and variant it lists"
    row = row.iloc[0]
    if isinstance(row["refusal"], str):
        return f"TFLM does not run {my_choice} at all ({row['refusal']}): a file must run before it can fit"
    if row["flash bytes"] > board.model_budget:
        return f"{my_choice}'s file ({row['flash bytes']:,} bytes) is over the board's model budget in flash"
    if float(row["arena bytes"]) > board.arena_budget:
        return f"{my_choice}'s arena ({int(row['arena bytes']):,} bytes) is over the board's arena budget in RAM"
    best = _fitting(runs, board)["micro accuracy"].max()
    if row["micro accuracy"] < best:
        return (f"{my_choice} fits, but another file that fits is more accurate on TFLM: compare the "
                "'micro accuracy' of every row within both budgets")
    print(f"{my_choice}: {row['micro accuracy']:.2%} on TFLM, {row['flash bytes']:,} bytes of flash, "
          f"{int(row['arena bytes']):,} bytes of arena")
    return CORRECT
