"""Lesson 13's checks: the arena graded by TFLM's own allocations, the choice of a file by the board's budgets."""

from __future__ import annotations

import pandas as pd
import pytest

from qlab.conversion import micro
from qlab.conversion.micro_boards import NRF52840
from qlab.workbook.check import grade


@pytest.fixture(scope="module")
def smallest(tiny):
    return micro.smallest_arena(tiny["int8"])


def test_the_smallest_arena_is_correct_and_its_neighbours_get_hints(tiny, smallest):
    assert grade("13.smallest_arena", smallest, model_bytes=tiny["int8"]).status == "correct"
    too_small = grade("13.smallest_arena", smallest - 1, model_bytes=tiny["int8"])
    assert too_small.status == "wrong" and "does not allocate the model" in too_small.message
    too_big = grade("13.smallest_arena", smallest + 64, model_bytes=tiny["int8"])
    assert too_big.status == "wrong" and "so does one byte less" in too_big.message
    assert str(smallest) not in too_big.message.replace(",", "")  # the hint never tells the answer


def test_a_blank_or_a_number_that_is_not_bytes(tiny):
    assert grade("13.smallest_arena", ..., model_bytes=tiny["int8"]).status == "not done"
    for bad in (1.5e4, -3, True):
        assert "positive whole number of bytes" in grade("13.smallest_arena", bad, model_bytes=tiny["int8"]).message


def _runs():
    budget_ram, budget_flash = NRF52840.arena_budget, NRF52840.model_budget
    return pd.DataFrame({
        "model": ["a", "a", "b", "b", "c"],
        "variant": ["int8", "dynamic", "int8", "qat_4bit", "int8"],
        "flash bytes": [200_000, 190_000, budget_flash + 1, 500_000, 300_000],
        "arena bytes": [30_000, None, 60_000, budget_ram + 1, 40_000],
        "refusal": [None, "float ops: CONV_2D x2", None, None, None],
        "micro accuracy": [0.990, None, 0.995, 0.994, 0.985]})


@pytest.mark.parametrize("choice, hint", [
    (("a", "dynamic"), "does not run"), (("b", "int8"), "over the board's model budget in flash"),
    (("b", "qat_4bit"), "over the board's arena budget in RAM"), (("c", "int8"), "more accurate"),
    (("z", "int8"), "not a row of the table"), ("a/int8", "answer a (model, variant) pair")])
def test_each_wrong_choice_gets_the_reason_it_does_not_do(choice, hint):
    outcome = grade("13.fits", choice, runs=_runs(), board=NRF52840)
    assert outcome.status == "wrong" and hint in outcome.message


def test_the_most_accurate_file_within_both_budgets_is_correct():
    assert grade("13.fits", ("a", "int8"), runs=_runs(), board=NRF52840).status == "correct"
    assert grade("13.fits", None, runs=_runs(), board=NRF52840).status == "not done"
