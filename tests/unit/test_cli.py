import json
import subprocess
import sys

import pytest

from qlab.cli import main
from qlab.workbook.notebook import RECORD_MIMETYPE, notebook_paths, read_records


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("env", "run"):
        assert command in out


def test_python_dash_m_qlab_env_prints_versions():
    result = subprocess.run([sys.executable, "-m", "qlab", "env"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "tensorflow" in result.stdout and "tensorflow-model-optimization" in result.stdout


def test_run_with_unknown_notebook_is_a_clear_error(capsys):
    assert main(["run", "99_nope"]) == 2
    assert "no notebook matches ['99_nope']" in capsys.readouterr().err


def test_notebooks_are_found_in_teaching_order():
    names = [p.name for p in notebook_paths()]
    assert names == sorted(names) and names[0] == "00_start_here.ipynb"


def test_read_records_reads_values_back(tmp_path):
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data",
         "data": {RECORD_MIMETYPE: {"name": "accuracy", "value": 0.99}, "text/plain": "x"}}]}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    assert read_records(path) == {"accuracy": 0.99}
