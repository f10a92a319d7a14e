"""qlab lessons: the learner-time rule on executed cells, the core / going-further split, and track needs."""

from __future__ import annotations

import json

import pytest

from qlab.cli import main
from qlab.workbook.lessons import (Reading, cell_reading, lesson_needs, lesson_reading, lesson_times,
                                   track_problems)


def markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text, outputs=(), seconds=0.0, tags=()):
    return {"cell_type": "code", "source": text, "outputs": list(outputs),
            "metadata": {"papermill": {"duration": seconds}, "tags": list(tags)}}


TEXT = {"output_type": "stream", "name": "stdout", "text": "hi\n"}
FIGURE = {"output_type": "display_data", "data": {"image/png": "...", "text/plain": "<Figure>"}}
WIDGET = {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {}, "text/plain": "W"}}
BAR = {"output_type": "display_data",
       "data": {"application/vnd.jupyter.widget-view+json": {}, "text/plain": "QAT fine-tuning:   0%|   | 0/16"}}
RECORD = {"output_type": "display_data", "data": {"application/vnd.qlab.record+json": {"name": "a", "value": 1}}}
PROGRESS = {"output_type": "stream", "name": "stderr", "text": "10%|#"}


def test_the_rule_adds_reading_running_and_writing():
    # 400 words (2 min) + 20 lines (2 min) + one output (0.75) + a figure (1) + a widget (3) + an exercise (4) + 30 s
    reading = Reading(words=400, code_lines=20, outputs=1, figures=1, widgets=1, exercises=1, run_seconds=30)
    assert reading.minutes == pytest.approx(2 + 2 + 0.75 + 1 + 3 + 4 + 0.5)


@pytest.mark.parametrize("cell, expected", [
    (markdown("four words in here"), Reading(words=4)),
    (code("a = 1\n\nprint(a)", [TEXT], 2.5), Reading(code_lines=2, outputs=1, run_seconds=2.5)),
    (code("plot()", [FIGURE]), Reading(code_lines=1, figures=1)),  # a figure is not also an output
    (code("W()", [WIDGET]), Reading(code_lines=1, widgets=1)),
    (code("fit()", [BAR], 20.0), Reading(code_lines=1, run_seconds=20.0)),  # a progress bar: nothing to play with
    (code("train()", [PROGRESS, RECORD], 9.0), Reading(code_lines=1, run_seconds=9.0)),  # nothing to read
    (code("x = ...\ncheck()", [TEXT], tags=["exercise"]), Reading(code_lines=2, exercises=1)),
    (code("qlab.record('a', 1)", [RECORD], 1.0, tags=["records"]), Reading()),  # the tests' cell
])
def test_what_each_cell_costs_the_learner(cell, expected):
    assert cell_reading(cell) == expected


NOTEBOOK = {"cells": [markdown("# 05 · Title, after notebook `01_buckets` and lesson 04"), code("a = 1", [TEXT], 1.0),
                      markdown("## Going further\n\nAs `02_error_accumulation` showed"), code("b = 2", [FIGURE], 3.0)]}


def test_the_core_ends_at_going_further():
    core, whole = lesson_reading(NOTEBOOK)
    assert core == Reading(words=10, code_lines=1, outputs=1, run_seconds=1.0)
    assert whole == core + Reading(words=6, code_lines=1, figures=1, run_seconds=3.0)


def test_a_lesson_needs_the_earlier_lessons_its_core_names():
    assert lesson_needs(NOTEBOOK, "05") == {"01", "04"}  # 02 is named only under Going further
    assert lesson_needs(NOTEBOOK, "03") == {"01"}  # a later lesson is not a need


def test_a_track_that_skips_a_needed_lesson_is_named():
    needs = {"00": set(), "01": set(), "04": {"01"}, "06": {"04", "05"}, "05": {"04"}}
    assert track_problems(["00", "01", "04", "05", "06"], needs) == []
    assert track_problems(["00", "01", "04", "06"], needs) == ["06 needs 05, which the track skips"]
    with pytest.raises(ValueError, match="unknown lessons \\['99'\\]"):
        track_problems(["99"], needs)


def test_qlab_lessons_prints_the_table_or_says_to_run_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QLAB_ARTIFACTS", str(tmp_path))
    assert main(["lessons"]) == 2
    assert "run `qlab run` first" in capsys.readouterr().err
    from qlab.workbook.notebook import notebook_paths

    folder = tmp_path / "notebooks" / "full"
    folder.mkdir(parents=True)
    for path in notebook_paths():
        (folder / path.name).write_text(json.dumps(NOTEBOOK))
    assert main(["lessons"]) == 0
    out = capsys.readouterr().out
    assert "core min" in out and "00_start_here" in out and "200 words/min" in out
    table = lesson_times(sorted(folder.glob("*.ipynb")))
    assert (table["core min"] < table["whole min"]).all() and table["has going further"].all()
