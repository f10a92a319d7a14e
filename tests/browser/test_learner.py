"""A learner's first steps, in a real browser: the README's ``make lab``, then Run All.

A copy of the committed ``notebooks/`` folder (JupyterLab autosaves; the
committed notebooks stay untouched) is served by ``jupyter lab notebooks/`` as
``make lab`` does. In Debian's Chromium the test opens ``00_start_here`` and
``01_buckets`` (the quickest lesson with a widget, the bucket explorer), runs
each with the menu's Run > Run All Cells in its default (full) parameters, and
waits until every code cell has an execution count and the kernel is idle. Then:

- no cell has an error output, and no output shows a traceback;
- 00's environment check is all ticks;
- 01's widget is drawn (its picture loaded) and moving its ``num_bits`` slider
  with the keyboard changes the picture's bytes, one step and then on to 4 bits
  (the lesson's first thing to try);
- nothing the tests record shows: no "recorded" line, no "No renderer" notice;
- the exercises: after Run All every check says "not done yet"; the learner types a
  wrong answer into 01's first exercise and sees its hint, then the right one and
  sees "Correct"; in 04 the learner runs the cells above the full-integer exercise,
  types the converter settings and sees "Correct".

Screenshots: ``artifacts/browser/learner_<notebook>.png``. Budget: about 60 s.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from pathlib import Path

import pytest

from qlab.workbook.exercise_cells import fill, read_answers, solutions_path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WIDGET_IMAGE = "img.widget-image"
ERROR_OUTPUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
STDERR_OUTPUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"


@pytest.fixture(scope="module")
def learner_lab(tmp_path_factory, start_jupyter_lab):
    """JupyterLab on a copy of the workbook, started from a clone's root with ``jupyter lab notebooks/``."""
    clone = tmp_path_factory.mktemp("clone")
    shutil.copytree(NOTEBOOKS, clone / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    with start_jupyter_lab(clone, "notebooks/", tmp_path_factory.mktemp("lab-private")) as lab:
        yield lab


# The open notebook's state, read from JupyterLab's own model: the counts and outputs a learner sees.
_NOTEBOOK_STATE = """(path) => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.context || panel.context.path !== path || !panel.sessionContext.session)
        return null;
    const kernel = panel.sessionContext.session.kernel;
    const cells = panel.model.toJSON().cells.filter(c => c.cell_type === 'code');
    return {
        kernel: kernel ? kernel.status : 'none',
        code_cells: cells.length,
        executed: cells.filter(c => c.execution_count !== null).length,
        errors: cells.flatMap(c => c.outputs).filter(o => o.output_type === 'error')
                     .map(o => o.ename + ': ' + o.evalue),
    };
}"""


def _open(page, lab, notebook: str) -> None:
    """Open ``notebook`` in a workspace of its own and wait for its kernel to be idle."""
    page.goto(lab.url(notebook, f"learner-{notebook.removesuffix('.ipynb')}"))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(f"(path) => {{ const s = ({_NOTEBOOK_STATE})(path); "
                           "return s !== null && s.kernel === 'idle'; }",
                           arg=notebook, timeout=60_000)


def _run_all_from_the_menu(page) -> None:
    """Run > Run All Cells, clicked in JupyterLab's menu bar as a learner does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    # exactly this item: "Restart Kernel and Run All Cells..." is in the same menu
    page.locator(".lm-Menu-itemLabel:visible", has_text=re.compile("^Run All Cells$")).click()


def _wait_until_all_ran(page, notebook: str, timeout_ms: int) -> dict:
    """Wait until every code cell has a count and the kernel is idle (or a cell failed); return the state."""
    page.wait_for_function(
        f"(path) => {{ const s = ({_NOTEBOOK_STATE})(path); return s !== null && s.kernel === 'idle' "
        "&& (s.executed === s.code_cells || s.errors.length > 0); }",
        arg=notebook, timeout=timeout_ms, polling=250)
    return page.evaluate(_NOTEBOOK_STATE, notebook)


def _assert_no_cell_failed(page, state: dict, log: Path) -> None:
    assert not state["errors"], f"cells raised: {state['errors']}"
    assert state["executed"] == state["code_cells"], state
    assert page.locator(ERROR_OUTPUT).count() == 0, "an error output is shown in the page"
    # warnings on stderr are allowed; a traceback printed there is not
    stderr = "\n".join(page.locator(STDERR_OUTPUT).all_inner_texts())
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "Error displaying widget" not in page.locator(".jp-Notebook").inner_text()
    # an exception inside a widget callback lands in the kernel's log, not in a cell
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


# The bytes of the PNG an <img> shows (ipywidgets' Image gives it a blob: URL), base64-encoded.
_IMAGE_BYTES = """async (selector) => {
    const img = document.querySelector(selector);
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let text = '';
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text);
}"""


def _picture_sha256(page) -> str:
    return hashlib.sha256(base64.b64decode(page.evaluate(_IMAGE_BYTES, WIDGET_IMAGE))).hexdigest()


# The text outputs of the open notebook's code cells, from JupyterLab's model (cells scrolled out of view
# are not rendered, so the page's text would miss them).
_CELL_OUTPUTS = """() => window.jupyterapp.shell.currentWidget.model.toJSON().cells
    .filter(c => c.cell_type === 'code')
    .map(c => ({source: c.source, text: c.outputs.map(o => [].concat(o.text || (o.data || {})['text/plain'] || [])
                                                                 .join('')).join('')}))"""


def _assert_no_bookkeeping_shows(page) -> None:
    """No output a learner can see says "recorded" (the records have no text form at all)."""
    texts = [cell["text"] for cell in page.evaluate(_CELL_OUTPUTS)]
    assert not [t for t in texts if "recorded" in t], texts
    assert "No renderer" not in page.locator(".jp-Notebook").inner_text()


def _model_cell(page, exercise: str) -> dict:
    """``{source, text}`` of the cell of ``exercise``, from JupyterLab's model."""
    return next(c for c in page.evaluate(_CELL_OUTPUTS) if f'qlab.check.exercise("{exercise}"' in c["source"])


def _verdict(page, exercise: str) -> str:
    """What the check of ``exercise`` printed last."""
    return _model_cell(page, exercise)["text"]


def _exercise_cell(page, exercise: str):
    return page.locator(".jp-CodeCell", has_text=f'qlab.check.exercise("{exercise}"').first


def _type_answer_and_run(page, exercise: str, answer: str) -> str:
    """Replace the blank of ``exercise`` by ``answer`` in the cell's editor, run the cell, return its new verdict."""
    cell = _exercise_cell(page, exercise)
    cell.scroll_into_view_if_needed()
    source = _model_cell(page, exercise)["source"]
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(fill(source, answer))  # as typed or pasted, without auto-closed brackets
    before = _verdict(page, exercise)
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        f"([exercise, old]) => {{ const c = ({_CELL_OUTPUTS})().find(c => c.source.includes("
        "'qlab.check.exercise(\"' + exercise + '\"')); return c.text.includes('Exercise') && c.text !== old; }",
        arg=[exercise, before], timeout=60_000, polling=250)
    return _verdict(page, exercise)


def _screenshot(page, locator, path: Path) -> None:
    """The viewport with ``locator`` scrolled to the top: JupyterLab as a learner sees it."""
    locator.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.move(1, 1000)  # no hover highlight left where the menu was clicked
    page.wait_for_timeout(300)  # let content-visibility paint the cells scrolled in
    page.screenshot(path=str(path))


@pytest.mark.slow
def test_start_here_runs_all_without_errors_and_the_environment_checks_pass(
        learner_lab, browser, screenshot_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1060})
    try:
        _open(page, learner_lab, "00_start_here.ipynb")
        _run_all_from_the_menu(page)
        state = _wait_until_all_ran(page, "00_start_here.ipynb", timeout_ms=120_000)
        _assert_no_cell_failed(page, state, learner_lab.log)
        checks = page.locator(".jp-RenderedHTMLCommon table", has_text="tensorflow + tf_keras").first
        rows = checks.locator("tr").all_inner_texts()[1:]
        assert len(rows) == 6 and all(row.startswith("\u2714") for row in rows), rows
        _screenshot(page, page.locator(".jp-CodeCell", has=checks).first,
                    screenshot_dir / "learner_00_start_here.png")
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    finally:
        page.close()


@pytest.mark.slow
def test_buckets_runs_all_and_its_widget_redraws_when_the_slider_moves(
        learner_lab, browser, screenshot_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1060})
    try:
        _open(page, learner_lab, "01_buckets.ipynb")
        _run_all_from_the_menu(page)
        state = _wait_until_all_ran(page, "01_buckets.ipynb", timeout_ms=120_000)
        _assert_no_cell_failed(page, state, learner_lab.log)
        _assert_no_bookkeeping_shows(page)
        for exercise in ("01.quantize", "01.scale_zero_point"):
            assert "not done yet" in _verdict(page, exercise)
        hint = _type_answer_and_run(page, "01.quantize", "q = np.round(x / scale) + zero_point")
        assert "Hint" in hint and "clip" in hint and "np.clip" not in hint, hint
        answer = read_answers(solutions_path(NOTEBOOKS / "01_buckets.ipynb"))["01.quantize"]
        assert "Exercise 01.quantize: Correct." in _type_answer_and_run(page, "01.quantize", answer)
        _screenshot(page, _exercise_cell(page, "01.quantize"), screenshot_dir / "learner_01_exercise.png")
        # the figures are drawn (the clipping curve, the static explorer), then the widget's picture
        assert page.locator(".jp-OutputArea-output img:not(.widget-image)").count() >= 2
        image = page.locator(WIDGET_IMAGE).first
        image.scroll_into_view_if_needed()
        page.wait_for_function(f"() => document.querySelector('{WIDGET_IMAGE}').complete && "
                               f"document.querySelector('{WIDGET_IMAGE}').naturalWidth > 0",
                               timeout=30_000)
        before_src, before = image.get_attribute("src"), _picture_sha256(page)
        slider = page.locator(".widget-slider", has_text="num_bits").first
        assert slider.locator(".widget-readout").inner_text().strip() == "8"
        slider.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(
            "([selector, old]) => { const img = document.querySelector(selector); "
            "return img.src !== old && img.complete && img.naturalWidth > 0; }",
            arg=[WIDGET_IMAGE, before_src], timeout=30_000)
        assert slider.locator(".widget-readout").inner_text().strip() == "7"
        assert _picture_sha256(page) != before, "the slider moved but the picture's bytes did not change"
        # on to 4 bits, the lesson's first thing to try: [2.0, 2.3] collapses into one bucket
        int7_src = image.get_attribute("src")
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        page.wait_for_function(
            "([selector, old]) => { const img = document.querySelector(selector); "
            "return img.src !== old && img.complete && img.naturalWidth > 0 && "
            "[...document.querySelectorAll('.widget-html-content')]"
            ".some(e => e.textContent.includes('int4')); }",
            arg=[WIDGET_IMAGE, int7_src], timeout=30_000)
        assert slider.locator(".widget-readout").inner_text().strip() == "4"
        _assert_no_cell_failed(page, page.evaluate(_NOTEBOOK_STATE, "01_buckets.ipynb"),
                               learner_lab.log)
        widget_cell = page.locator(".jp-CodeCell", has=page.locator(WIDGET_IMAGE)).first
        _screenshot(page, widget_cell, screenshot_dir / "learner_01_buckets.png")
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    finally:
        page.close()


@pytest.mark.slow
def test_post_training_quantization_exercise_is_written_and_passes(learner_lab, browser, screenshot_dir):
    """In 04 (full mode, the shipped CNN): run the cells above the exercise, type the settings, see "Correct"."""
    notebook = "04_post_training_quantization.ipynb"
    page = browser.new_page(viewport={"width": 1400, "height": 1060})
    try:
        _open(page, learner_lab, notebook)
        cell = _exercise_cell(page, "04.full_integer")
        cell.scroll_into_view_if_needed()
        cell.click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
        page.locator(".lm-Menu-itemLabel:visible", has_text=re.compile("^Run All Above Selected Cell$")).click()
        page.wait_for_function(
            "(path) => { const p = window.jupyterapp.shell.currentWidget; const k = p.sessionContext.session.kernel;"
            " const cells = p.model.toJSON().cells.filter(c => c.cell_type === 'code');"
            " const i = cells.findIndex(c => c.source.includes('04.full_integer'));"
            " return k.status === 'idle' && cells.slice(0, i).every(c => c.execution_count !== null); }",
            arg=notebook, timeout=180_000, polling=250)
        answer = read_answers(solutions_path(NOTEBOOKS / notebook))["04.full_integer"]
        verdict = _type_answer_and_run(page, "04.full_integer", answer)
        assert "Exercise 04.full_integer: Correct." in verdict, verdict
        assert page.evaluate(_NOTEBOOK_STATE, notebook)["errors"] == []
        assert page.locator(ERROR_OUTPUT).count() == 0, "an error output is shown in the page"
        _screenshot(page, _exercise_cell(page, "04.full_integer"), screenshot_dir / "learner_04_exercise.png")
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    finally:
        page.close()
