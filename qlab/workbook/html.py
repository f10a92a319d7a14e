"""The executed workbook as static HTML, for learners who cannot run a kernel (``make html``).

``qlab run`` leaves an executed copy of every notebook under
``artifacts/notebooks/<full|smoke>/``; :func:`render_html` turns those copies into one
HTML page each, with their tables and figures embedded, and an ``index.html`` that lists
them in teaching order. Nothing is executed here: a page shows exactly what the run
printed and drew.
"""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["executed_notebooks", "render_html"]


def executed_notebooks(source_dir: Path) -> list[Path]:
    """The executed copies ``qlab run`` wrote to ``source_dir``, in teaching order.

    A copy whose run failed (``NN_name.FAILED.ipynb``) or is still running
    (``.NN_name.running.ipynb``) is left out. Raises FileNotFoundError naming the
    command to run when there is none.
    """
    source_dir = Path(source_dir)
    found = sorted(p for p in source_dir.glob("[0-9][0-9]_*.ipynb") if ".FAILED." not in p.name)
    if not found:
        smoke = " --smoke" if source_dir.name == "smoke" else ""
        raise FileNotFoundError(f"no executed notebooks in {source_dir}: run `qlab run{smoke}` "
                                "(or `make run`) first, then render them")
    return found


def _index(pages: list[Path], mode: str) -> str:
    items = "\n".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></li>' for p in pages)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>qlab workbook ({mode} run)"
            f"</title></head>\n<body><h1>qlab workbook</h1>\n<p>The notebooks as the last "
            f"<code>qlab run</code> ({mode} mode) executed them.</p>\n<ol>\n{items}\n</ol>\n</body></html>\n")


def render_html(mode: str = "full", source_dir: str | Path | None = None,
                output_dir: str | Path | None = None) -> list[Path]:
    """Render the executed notebooks of a ``qlab run`` to HTML; return the pages, index last.

    Args:
        mode: ``"full"`` or ``"smoke"``: which run's copies to render.
        source_dir: default ``artifacts/notebooks/<mode>/`` (:func:`qlab.files.paths.artifacts_dir`).
        output_dir: default ``artifacts/html/<mode>/``.
    """
    from nbconvert import HTMLExporter

    from qlab.files.io import write_bytes_atomic
    from qlab.files.paths import artifacts_dir

    if mode not in ("full", "smoke"):
        raise ValueError(f"mode must be 'full' or 'smoke', got {mode!r}")
    source_dir = Path(source_dir) if source_dir is not None else artifacts_dir() / "notebooks" / mode
    output_dir = Path(output_dir) if output_dir is not None else artifacts_dir() / "html" / mode
    exporter = HTMLExporter()  # figures are embedded as data: URIs, so each page stands alone
    pages = []
    for notebook in executed_notebooks(source_dir):
        body, _ = exporter.from_filename(str(notebook))
        pages.append(write_bytes_atomic(output_dir / f"{notebook.stem}.html", body.encode()))
    pages.append(write_bytes_atomic(output_dir / "index.html", _index(pages, mode).encode()))
    for page in pages:  # readable by a web server, like any page
        page.chmod(0o644)
    return pages
