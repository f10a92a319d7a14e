import json
import os
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


def test_compare_help_explains_the_fine_metric_columns(capsys):
    from qlab.workbook.pipeline import FINE_COLUMNS

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(column in out for column in FINE_COLUMNS)
    assert "95% paired bootstrap" in out and "McNemar" in out


def test_compare_prints_the_fine_metric_columns(capsys, monkeypatch, tmp_path):
    import numpy as np
    import pandas as pd

    from qlab.numerics.metrics import fine_metrics
    from qlab.workbook import pipeline

    seen_progress = []

    def fake_compare(models, variants, size, seed, latency, calibration_samples, verbose):
        seen_progress.append(os.environ.get("QLAB_PROGRESS"))
        rng = np.random.default_rng(0)
        reference, labels = rng.normal(size=(50, 10)), rng.integers(0, 10, 50)
        rows = [{"model": "mnist_cnn", "variant": variant, **fine_metrics(reference, scores, labels)}
                for variant, scores in (("float32", reference), ("int8_per_tensor", reference + 0.5))]
        return pipeline.ComparisonResult(pd.DataFrame(rows).reindex(columns=pipeline.COLUMNS), {},
                                         {"size": size, "seed": seed})

    monkeypatch.setattr(pipeline, "compare", fake_compare)
    out_json = tmp_path / "rows.json"
    monkeypatch.delenv("QLAB_PROGRESS", raising=False)
    assert main(["compare", "--model", "mnist_cnn", "--smoke", "--quiet", "--json", str(out_json)]) == 0
    # --quiet turns qlab's progress bars off for the command only
    assert seen_progress == ["0"] and "QLAB_PROGRESS" not in os.environ
    out = capsys.readouterr().out
    for header in ("agreement %", "output SQNR dB", "KL", "Δ acc. points [95% CI]", "McNemar p"):
        assert header in out
    assert "+0.00 [+0.00, +0.00]" in out
    rows = json.loads(out_json.read_text())  # strict JSON: float32's infinite SQNR is null
    assert rows[0]["output_sqnr_db"] is None and rows[1]["output_sqnr_db"] > 0


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "nope", "--smoke"], "unknown model(s) ['nope']"),
    (["train", "--model", "mnist_cnn", "--qat", "qat_bogus", "--smoke"], "unknown QAT variant 'qat_bogus'"),
])
def test_train_with_a_bad_name_is_a_clear_error_before_any_training(argv, message, capsys, monkeypatch):
    import qlab.zoo.models as models

    monkeypatch.setattr(models, "train_model", lambda *a, **k: pytest.fail("nothing may be trained"))
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_solutions_writes_every_lesson_with_exercises_solved(tmp_path, capsys):
    assert main(["solutions", "--output", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert len(written) == 13 and "00_start_here.ipynb" not in written  # 00 has questions, no exercises
    assert "13 lessons with their exercises solved" in capsys.readouterr().out
    solved = (tmp_path / "01_buckets.ipynb").read_text()
    assert "np.clip(np.round(x / scale)" in solved and "q = ...\\n" not in solved


def test_fit_sets_each_file_against_the_boards_and_names_what_stops_the_others(tiny, tmp_path, capsys):
    (tmp_path / "int8.tflite").write_bytes(tiny["int8"])
    (tmp_path / "float.tflite").write_bytes(tiny["float32"])
    assert main(["fit", str(tmp_path / "int8.tflite"), str(tmp_path / "float.tflite")]) == 0
    out = capsys.readouterr().out
    assert out.count("int8.tflite") == 2 and "float ops: CONV_2D x1" in out and "source: Nordic" in out
    assert main(["fit", str(tmp_path / "float.tflite")]) == 1  # nothing fits: the exit code says so
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "missing.tflite")]) == 2
    assert "no such .tflite file" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["fit", str(tmp_path / "notes.txt")]) == 2
    assert "not a readable .tflite flatbuffer" in capsys.readouterr().err


def test_fit_with_data_runs_the_files_tflm_takes_and_refuses_bad_data(tiny, tmp_path, capsys):
    import numpy as np

    (tmp_path / "int8.tflite").write_bytes(tiny["int8"])
    (tmp_path / "float.tflite").write_bytes(tiny["float32"])
    x = tiny["x"]
    np.savez(tmp_path / "data.npz", x_train=x[:4], y_train=np.zeros(4, int), x_test=x, y_test=np.zeros(len(x), int))
    files = [str(tmp_path / "int8.tflite"), str(tmp_path / "float.tflite")]
    assert main(["fit", *files, "--data", str(tmp_path / "data.npz"), "--images", "10"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "MicroAgreement(" in line]
    assert len(lines) == 1 and lines[0].startswith(files[0]) and "MicroAgreement(10 images; TFLM's accuracy" in lines[0]
    np.savez(tmp_path / "flat.npz", x_train=x[:4, ..., 0], y_train=np.zeros(4, int), x_test=x[..., 0],
             y_test=np.zeros(len(x), int))
    assert main(["fit", files[0], "--data", str(tmp_path / "flat.npz")]) == 2
    assert "the model takes images of shape (8, 8, 1)" in capsys.readouterr().err
    assert main(["fit", files[0], "--data", str(tmp_path / "data.npz"), "--images", "0"]) == 2
    assert "--images must be 1 or more, got 0" in capsys.readouterr().err
