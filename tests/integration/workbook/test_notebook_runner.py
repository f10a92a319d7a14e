"""``qlab run``'s runner: the kernel's stderr reaches the terminal without TensorFlow's harmless lines,
and the kernel's progress bars print plain lines there."""

import nbformat
import pytest

from qlab.workbook.notebook import run_notebook

NODEDEF = ("E0000 00:00:1795691532.118098    8892 node_def_util.cc:682] NodeDef mentions attribute "
           "use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset> This may "
           "be expected if your graph generating binary is newer  than this binary.")


@pytest.fixture
def noisy_notebook(tmp_path):
    """A notebook whose kernel writes a harmless C++ line, a real error line and a progress bar."""
    cells = [
        nbformat.v4.new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            f"import os\nos.write(2, {(NODEDEF + chr(10)).encode()!r})\n"
            "os.write(2, b'E0000 a real error from C++\\n')"),
        nbformat.v4.new_code_cell(
            "from qlab.zoo.progress import progress_iter\n"
            "for step in progress_iter(range(3), 'kernel work', unit='step'):\n    pass"),
    ]
    path = tmp_path / "01_noisy.ipynb"
    metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=metadata), path)
    return path


def test_the_terminal_shows_real_errors_and_progress_but_not_the_nodedef_line(noisy_notebook, tmp_path,
                                                                              capsys, monkeypatch):
    monkeypatch.delenv("QLAB_PROGRESS", raising=False)
    monkeypatch.delenv("QLAB_TF_VERBOSE", raising=False)
    run = run_notebook(noisy_notebook, smoke=True, output_dir=tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert "E0000 a real error from C++" in err
    assert "use_unbounded_threadpool" not in err
    progress_lines = [line for line in err.splitlines() if "kernel work" in line]
    assert progress_lines and "3/3" in progress_lines[-1]
    assert run.output.exists()


def test_without_progress_the_kernel_prints_no_progress_lines(noisy_notebook, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("QLAB_TF_VERBOSE", raising=False)
    run_notebook(noisy_notebook, smoke=True, output_dir=tmp_path / "out", progress=False)
    err = capsys.readouterr().err
    assert "E0000 a real error from C++" in err and "use_unbounded_threadpool" not in err
    assert "kernel work" not in err
