"""The lessons' exercise cells: markers, registered checks, solutions kept apart and complete."""

from __future__ import annotations

import ast
import json

import pytest

from qlab.workbook import check
from qlab.workbook.exercise_cells import (END, START, exercise_ids, fill, filled_notebook, read_answers,
                                          solutions_path, write_solved_notebooks)
from qlab.workbook.notebook import notebook_paths

LESSONS = {p.stem: p for p in notebook_paths()}



def cell(source: str) -> dict:
    return {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}


EXERCISE = f'x = 1\n{START}: two lines\ny = ...\n{END}\nqlab.check.exercise("01.demo", y)'


def test_fill_replaces_only_the_part_between_the_markers_keeping_its_indent():
    nested = f"def f():\n    {START}\n    ...\n    {END}\n\nqlab.check.exercise('01.f', f)"
    assert fill(nested, "a = 1\n\nreturn a") == (f"def f():\n    {START}\n    a = 1\n\n    return a\n    {END}\n\n"
                                                 "qlab.check.exercise('01.f', f)")
    assert fill(EXERCISE, "y = 2") == EXERCISE.replace("y = ...", "y = 2")


def test_filled_notebook_puts_a_wrong_answer_in_a_copy_before_the_right_one():
    notebook = {"cells": [cell("a = 0"), cell(EXERCISE)]}
    filled = filled_notebook(notebook, {"01.demo": "y = 2"}, before={"01.demo": "y = 3"})
    assert [c["source"] for c in filled["cells"]] == ["a = 0", EXERCISE.replace("...", "3"),
                                                       EXERCISE.replace("...", "2")]
    assert notebook["cells"][1]["source"] == EXERCISE  # the lesson itself is untouched


@pytest.mark.parametrize("answers, problem", [({}, "missing for \\['01.demo'\\]"),
                                              ({"01.demo": "y = 2", "01.other": "z"}, "not in the notebook")])
def test_answers_must_match_the_notebooks_exercises(answers, problem):
    with pytest.raises(ValueError, match=problem):
        filled_notebook({"cells": [cell(EXERCISE)]}, answers)


@pytest.mark.parametrize("source, problem", [
    ('qlab.check.exercise("01.demo", y)', "needs one"),
    (EXERCISE + "\n" + EXERCISE.replace("01.demo", "01.two"), "one exercise per cell"),
])
def test_a_malformed_exercise_cell_is_named(source, problem):
    with pytest.raises(ValueError, match=problem):
        exercise_ids({"cells": [cell(source)]})


def test_solution_sections_are_exercises_or_questions(tmp_path):
    path = tmp_path / "01_demo.py"
    path.write_text('"""doc"""\n\n# %% 01.demo\ny = 2\n\n# %% question 1\nprint(3)\n')
    assert read_answers(path) == {"01.demo": "y = 2"}
    path.write_text("# %% Exercise one\ny = 2\n")
    with pytest.raises(ValueError, match="neither an exercise id"):
        read_answers(path)


@pytest.mark.parametrize("name", [name for name in sorted(LESSONS) if name != "00_start_here"])
def test_each_lesson_has_two_checked_exercises_with_solutions_apart(name):
    notebook = json.loads(LESSONS[name].read_text())
    ids = exercise_ids(notebook)
    text = "".join("".join(c["source"]) for c in notebook["cells"])
    assert len(ids) >= 2, f"{name}: at least two checked exercises"
    assert not any("solution" in c.get("metadata", {}).get("tags", []) for c in notebook["cells"])
    assert all(i.startswith(name[:2] + ".") for i in ids)
    assert set(ids) <= set(check.exercises()), "every exercise has a registered check"
    answers = read_answers(solutions_path(LESSONS[name]))
    assert set(answers) == set(ids)
    for exercise, code in answers.items():
        ast.parse(code)
        assert code not in text, f"{exercise}: the solution is written in the lesson itself"


def test_solved_notebooks_are_written_for_instructors(tmp_path):
    written = write_solved_notebooks([LESSONS["01_buckets"]], tmp_path)
    solved = json.loads(written[0].read_text())
    answers = read_answers(solutions_path(LESSONS["01_buckets"]))
    text = "".join("".join(c["source"]) for c in solved["cells"])
    assert all(code in text for code in answers.values())
