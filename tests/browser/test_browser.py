"""The widgets in a real browser: JupyterLab on localhost, driven by Debian's Chromium.

For each widget a small notebook (written into a temporary folder) shows the
static figure and then the live widget. The test runs all cells, waits for the
widget's picture, moves the ``num_bits`` slider with the keyboard, and checks
that the picture in the page changed; a screenshot goes to
``artifacts/browser/<widget>.png``.

JupyterLab and Chromium come from ``conftest.py``: Debian's Chromium, never a
Playwright download, and a failure instead of a skip without it in CI. Budget:
about 20 s for all three.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# widget name -> the cells of its notebook
NOTEBOOKS = {
    "bucket_explorer": [
        "import qlab\nimport qlab.widgets as qw",
        "qlab.static_bucket_explorer()",
        "widget = qw.BucketExplorer()\nwidget",
    ],
    "error_accumulation": [
        "import qlab\nimport qlab.widgets as qw",
        "qlab.static_error_accumulation()",
        "widget = qw.ErrorAccumulation(model_profile={'conv1': 0.010, 'conv_dw_1': 0.035, "
        "'conv_pw_1': 0.020, 'dense': 0.028})\nwidget",
    ],
    "per_channel_ranges": [
        "import qlab\nimport qlab.widgets as qw",
        "qlab.static_per_channel_ranges()",
        "widget = qw.PerChannelRanges()\nwidget",
    ],
}


def _write_notebook(path: Path, cells: list[str]) -> None:
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                   "outputs": [], "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory, start_jupyter_lab):
    """A private JupyterLab serving one small notebook per widget (see conftest.py)."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    root.mkdir()
    for name, cells in NOTEBOOKS.items():
        _write_notebook(root / f"{name}.ipynb", cells)
    with start_jupyter_lab(tmp, "notebooks", tmp / "private") as lab:
        yield lab


WIDGET_IMAGE = "img.widget-image"


def _run_all_and_wait_for_widget(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session",
                           timeout=60_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(WIDGET_IMAGE, state="visible", timeout=90_000)
    page.wait_for_function(f"() => document.querySelector('{WIDGET_IMAGE}').naturalWidth > 0",
                           timeout=30_000)


# Times, inside the page, from the next key press to the widget's new PNG having loaded.
_TIME_NEXT_PICTURE = """(selector) => {
    const img = document.querySelector(selector);
    window.__qlabPictureMs = null;
    let pressed = null;
    document.addEventListener('keydown', () => { pressed = performance.now(); },
                              {capture: true, once: true});
    img.addEventListener('load', () => { window.__qlabPictureMs = performance.now() - pressed; },
                         {once: true});
}"""


def _wait_for_picture(page, old_src: str, text: str) -> None:
    """Wait until the widget shows a new PNG and its caption mentions ``text`` (e.g. "int4")."""
    page.wait_for_function(
        "([selector, old, text]) => document.querySelector(selector).src !== old && "
        "[...document.querySelectorAll('.widget-html-content')]"
        ".some(e => e.textContent.includes(text))",
        arg=[WIDGET_IMAGE, old_src, text], timeout=30_000)


def _type_min_above_max(page) -> None:
    """Type a range min above the max: the widget says why, and the kernel raises nothing."""
    box = page.locator(".widget-text", has_text="min").locator("input").first
    box.fill("50")
    box.press("Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.widget-html-content')]"
        ".some(e => e.textContent.includes('min must be below'))", timeout=20_000)
    box.fill("-4")
    box.press("Enter")
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.widget-html-content')]"
        ".some(e => e.textContent.includes('min must be below'))", timeout=20_000)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_widget_redraws_when_a_slider_moves_in_jupyterlab(name, jupyter_lab, browser, screenshot_dir):
    log = jupyter_lab.log
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    try:
        # a workspace of its own, so no other notebook is restored in a background tab
        _run_all_and_wait_for_widget(page, jupyter_lab.url(f"{name}.ipynb", name))
        # the static figure of the cell before is in the page too (a plain output PNG)
        assert page.locator(".jp-OutputArea-output img:not(.widget-image)").count() >= 1
        image = page.locator(WIDGET_IMAGE).first
        before = image.get_attribute("src")
        slider = page.locator(".widget-slider", has_text="num_bits").first
        readout = slider.locator(".widget-readout").first
        assert readout.inner_text().strip() == "8"
        slider.locator(".noUi-handle").first.focus()
        # one step: key press -> comm -> kernel redraw -> new PNG shown, timed inside the page
        page.evaluate(_TIME_NEXT_PICTURE, WIDGET_IMAGE)
        page.keyboard.press("ArrowLeft")
        _wait_for_picture(page, before, "int7")
        # the new src is set before the browser has decoded it: wait for its load event too
        page.wait_for_function("() => window.__qlabPictureMs !== null", timeout=30_000)
        one_step_ms = page.evaluate("() => window.__qlabPictureMs")
        # three more steps; every key press is one update in the kernel
        middle = image.get_attribute("src")
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        _wait_for_picture(page, middle, "int4")
        assert readout.inner_text().strip() == "4"
        assert image.get_attribute("src") != before
        if name == "bucket_explorer":
            _type_min_above_max(page)
        assert not page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                ).count(), "a cell wrote to stderr (a traceback?)"
        # an exception inside a widget callback lands in the kernel's log, not in a cell
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
        image.scroll_into_view_if_needed()
        shot = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(shot))
        print(f"{name}: one slider step -> new picture loaded in the page in {one_step_ms:.0f} ms; "
              f"screenshot {shot}")
    finally:
        page.close()
