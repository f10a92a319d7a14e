"""qlab.record: a value the tests read back, invisible to the learner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qlab.workbook.notebook import RECORD_MIMETYPE, read_records, record


def test_a_record_has_only_its_own_mimetype_and_shows_nothing(monkeypatch, tmp_path):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda data, raw: shown.append(data))
    assert record("accuracy", np.float32(0.5)) is None  # a cell ending in a record shows no value
    record("table", {"a": np.arange(2)})
    assert [list(d) for d in shown] == [[RECORD_MIMETYPE]] * 2  # no text/plain "recorded ..." line
    notebook = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": d}]}
                          for d in shown]}
    (tmp_path / "run.ipynb").write_text(json.dumps(notebook))
    assert read_records(tmp_path / "run.ipynb") == {"accuracy": 0.5, "table": {"a": [0, 1]}}


@pytest.mark.parametrize("name, value, problem", [("", 1, "non-empty string"), ("x", object(), "not JSON")])
def test_a_bad_record_fails_in_the_notebook_not_in_the_test(name, value, problem):
    with pytest.raises((ValueError, TypeError), match=problem):
        record(name, value)
