"""``make html``: the executed notebooks as static pages with their figures."""

from __future__ import annotations

import base64
import os
import subprocess

import nbformat
import pytest

from qlab.files.paths import repository_root
from qlab.workbook.html import executed_notebooks, render_html

# a 1x1 PNG: what a figure output looks like in an executed notebook
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _executed(folder, name, text):
    """An executed copy as `qlab run` leaves it: a code cell with printed text and a figure."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("draw()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text),
                    nbformat.v4.new_output("display_data", data={
                        "image/png": base64.b64encode(PIXEL).decode(), "text/plain": "<Figure>"})]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), cell]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)


def test_make_html_renders_every_executed_notebook_with_its_figures(tmp_path):
    executed = tmp_path / "artifacts" / "notebooks" / "full"
    _executed(executed, "01_second.ipynb", "printed by the run 0.9925")
    _executed(executed, "00_first.ipynb", "hello")
    _executed(executed, "02_broken.FAILED.ipynb", "a failed run is not rendered")
    env = {**os.environ, "QLAB_ARTIFACTS": str(tmp_path / "artifacts")}
    done = subprocess.run(["make", "-s", "html"], cwd=repository_root(), env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pages = tmp_path / "artifacts" / "html" / "full"
    assert sorted(p.name for p in pages.iterdir()) == ["00_first.html", "01_second.html", "index.html"]
    page = (pages / "01_second.html").read_text()
    assert "printed by the run 0.9925" in page and "data:image/png;base64," in page  # the figure, embedded
    index = (pages / "index.html").read_text()
    assert index.index("00_first.html") < index.index("01_second.html") and "FAILED" not in index
    assert "2 notebooks rendered" in done.stdout


def test_nothing_executed_yet_says_which_command_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run `qlab run --smoke` \(or `make run`\) first"):
        executed_notebooks(tmp_path / "smoke")
    with pytest.raises(ValueError, match="mode must be 'full' or 'smoke'"):
        render_html("fast", source_dir=tmp_path)
