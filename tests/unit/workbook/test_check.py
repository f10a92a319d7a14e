"""qlab.check: blanks are "not done", right answers "Correct", wrong ones get a hint that names the mistake."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook import check
from qlab.workbook.check import grade

SCALE, ZERO_POINT = 20 / 255, 0  # lesson 01's range [-10, 10] by hand
X = np.array([2.0, 2.03, 2.3, -3.3, 12.0, -11.0])


def quantize_context():
    return {"x": X, "scale": SCALE, "zero_point": ZERO_POINT}


def test_every_exercise_id_names_its_lesson_and_is_registered_once():
    known = check.exercises()
    assert {"01.quantize", "01.scale_zero_point"} <= set(known)
    for exercise_id, item in known.items():
        assert exercise_id.split(".")[0].isdigit() and item.title


def test_an_unknown_id_lists_the_valid_ones():
    with pytest.raises(ValueError, match="no exercise '01.nope'.*01.quantize"):
        grade("01.nope", 1)


@pytest.mark.parametrize("blank", [..., None])
def test_the_blank_is_not_done_yet_and_says_where_to_write(blank):
    outcome = grade("01.quantize", blank, **quantize_context())
    assert outcome.status == "not done"
    assert "YOUR CODE STARTS HERE" in outcome.message


def test_the_formula_is_correct_against_tensorflow():
    q = np.clip(np.round(X / SCALE) + ZERO_POINT, -128, 127)
    assert grade("01.quantize", q, **quantize_context()).status == "correct"
    assert grade("01.quantize", q.astype(np.int8), **quantize_context()).message.endswith("Correct.")


@pytest.mark.parametrize("answer, hint", [
    (np.round(X / SCALE), "outside int8"),  # no clip
    (np.clip(np.floor(X / SCALE), -128, 127), "one bucket too low"),  # floor
    (np.round(X / SCALE).astype(np.int8), "outside the range"),  # int8 wrap-around before clipping
    (np.clip(X / SCALE, -128, 127), "round x / scale"),  # not rounded
    (np.zeros(3), "one code per value"),
])
def test_each_mistake_gets_a_hint_that_names_it_without_the_answer(answer, hint):
    outcome = grade("01.quantize", answer, **quantize_context())
    assert outcome.status == "wrong" and hint in outcome.message
    assert "np.clip(np.round" not in outcome.message


def test_an_answer_that_raises_is_wrong_and_says_why():
    outcome = grade("01.scale_zero_point", "six", -128)
    assert outcome.status == "wrong" and "TypeError" in outcome.message and "scale" in outcome.message


@pytest.mark.parametrize("scale, zero_point, status, hint", [
    (6 / 255, -128, "correct", "Correct"),
    (6.0 / 255.0, -128.0, "correct", "Correct"),
    (6 / 256, -128, "wrong", "255, not 256"),
    (6 / 255, 128, "wrong", "sign"),
    (6 / 255, 0, "wrong", "range's minimum"),
    (6 / 255, -127.5, "wrong", "integer"),
    (-6 / 255, -128, "wrong", "positive"),
    (6 / 127, -128, "wrong", "equal steps"),
])
def test_scale_and_zero_point_are_graded_on_tensorflows_levels(scale, zero_point, status, hint):
    outcome = grade("01.scale_zero_point", scale, zero_point)
    assert outcome.status == status and hint in outcome.message


def test_exercise_prints_the_verdict_and_records_each_attempt_invisibly(capsys, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda data, raw: shown.append(data))
    assert check.exercise("01.scale_zero_point", ..., ...) is None
    check.exercise("01.scale_zero_point", 6 / 255, -128)
    assert capsys.readouterr().out.splitlines() == [
        "Exercise 01.scale_zero_point: not done yet. Write your code between YOUR CODE STARTS HERE and "
        "YOUR CODE ENDS HERE, then run this cell again.", "Exercise 01.scale_zero_point: Correct."]
    records = [d["application/vnd.qlab.record+json"] for d in shown]
    assert [set(d) for d in shown] == [{"application/vnd.qlab.record+json"}] * 2  # no text/plain
    assert [r["value"]["status"] for r in records] == ["not done", "correct"]
    assert records[0]["name"] != records[1]["name"]
