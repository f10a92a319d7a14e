"""Running the notebook sequence with papermill, and the numbers notebooks record for tests."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from qlab.files.paths import artifacts_dir, repository_root
from qlab.zoo.progress import LINES_ENV
from qlab.zoo.quiet import harmless_lines_filtered

#: MIME type under which :func:`record` stores a value in a notebook's outputs.
RECORD_MIMETYPE = "application/vnd.qlab.record+json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def record(name: str, value: Any) -> None:
    """Record a number (or small JSON value) in the notebook's output for the tests to read.

    The value is stored under its own MIME type only, with no ``text/plain`` form, so the
    learner sees nothing (JupyterLab draws an output it has no renderer for as empty) and
    the tests read it back from the executed copy with :func:`read_records`. It returns
    nothing, so a cell that ends in a record shows nothing either. Each lesson records what
    its tests check in one hidden cell at its end.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"record name must be a non-empty string, got {name!r}")
    payload = _jsonable(value)
    json.dumps(payload)  # fail here, not in the test, if it cannot be stored
    from IPython.display import display

    display({RECORD_MIMETYPE: {"name": name, "value": payload}}, raw=True)


def read_records(notebook: str | Path) -> dict[str, Any]:
    """Return ``{name: value}`` of every :func:`record` call in an executed notebook."""
    nb = json.loads(Path(notebook).read_text())
    records: dict[str, Any] = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIMETYPE in data:
                item = data[RECORD_MIMETYPE]
                records[item["name"]] = item["value"]
    return records


def notebook_paths(names: Iterable[str] | None = None) -> list[Path]:
    """The workbook's notebooks in teaching order, or those whose names start with ``names``.

    The notebooks are not package data: this raises FileNotFoundError (from
    :func:`qlab.files.paths.repository_root`) outside a qlab checkout.
    """
    paths = sorted((repository_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if names:
        names = list(names)
        chosen = [p for p in paths if any(p.name.startswith(n) for n in names)]
        unknown = [n for n in names if not any(p.name.startswith(n) for p in paths)]
        if unknown:
            raise ValueError(f"no notebook matches {unknown}; available: {[p.name for p in paths]}")
        paths = chosen
    return paths


@dataclass
class NotebookRun:
    """One executed notebook: where its copy is, how long it took, what it recorded."""

    source: Path
    output: Path
    seconds: float
    records: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"NotebookRun({self.source.name}, {self.seconds:.1f} s, {len(self.records)} records)"


def run_notebook(source: str | Path, smoke: bool, output_dir: str | Path | None = None,
                 parameters: dict[str, Any] | None = None, progress: bool = True,
                 cwd: str | Path | None = None) -> NotebookRun:
    """Execute one notebook in a fresh kernel with papermill; the copy goes to ``artifacts/``.

    The kernel runs in the notebook's own folder, as in Jupyter, or in ``cwd`` (for a copy
    of a lesson written elsewhere, such as one with its exercises answered). The executed copy goes
    to ``output_dir``, by default ``notebooks/<smoke|full>/`` under
    :func:`qlab.files.paths.artifacts_dir`. The source notebook is never modified.
    ``SMOKE`` is injected into its ``parameters`` cell together with any other ``parameters``.

    What the kernel writes to its stderr reaches this process's stderr, except the C++
    lines known to be harmless (:data:`qlab.zoo.quiet.HARMLESS_NATIVE_LINES`). With
    ``progress``, papermill shows a bar of the cells and the kernel's training and
    comparison bars (:mod:`qlab.zoo.progress`) print a line every few seconds: what is
    trained, how far it is and its ETA.
    """
    import papermill

    source = Path(source)
    mode = "smoke" if smoke else "full"
    output_dir = Path(output_dir) if output_dir else artifacts_dir() / "notebooks" / mode
    output = output_dir / source.name
    params = {"SMOKE": bool(smoke), **(parameters or {})}
    output.parent.mkdir(parents=True, exist_ok=True)
    running = output.with_name(f".{output.stem}.running.ipynb")
    start = time.perf_counter()
    try:
        with harmless_lines_filtered(_print_kernel_line) as kernel_stderr:
            papermill.execute_notebook(
                str(source), str(running), parameters=params, kernel_name="python3",
                cwd=str(cwd or source.parent), progress_bar=progress,
                kernel_manager_class=_kernel_manager_class(kernel_stderr, progress_lines=progress))
    except Exception as exc:
        # Keep the executed copy: it shows the failing cell and its traceback.
        failed = output.with_name(f"{output.stem}.FAILED.ipynb")
        if running.exists():
            os.replace(running, failed)
        cause = f"{exc.ename}: {exc.evalue}" if hasattr(exc, "ename") else repr(exc)
        raise RuntimeError(f"{source.name} failed in {mode} mode ({cause}); the executed copy "
                           f"with the error is {failed}") from exc
    os.replace(running, output)  # only a notebook that ran to the end replaces the last good copy
    seconds = time.perf_counter() - start
    return NotebookRun(source, output, seconds, read_records(output))


def _print_kernel_line(line: str) -> None:
    """Print a line of the kernel's stderr above papermill's bar (which tqdm then redraws)."""
    from tqdm import tqdm

    tqdm.write(f"  {line}", file=sys.stderr)


def _kernel_manager_class(stderr: int, progress_lines: bool) -> type:
    """A jupyter_client kernel manager whose kernels write to ``stderr`` (a file descriptor).

    With ``progress_lines`` the kernel also gets ``QLAB_PROGRESS_LINES=1``, so qlab's
    progress bars in it print plain lines to that stderr besides the notebook's widget.
    """
    from jupyter_client import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            env = dict(kw.get("env") or os.environ)
            env.pop(LINES_ENV, None)
            if progress_lines:
                env[LINES_ENV] = "1"
            await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": stderr, "env": env})

    return RunKernelManager


@dataclass
class CaughtError:
    """An error a lesson provokes on purpose: its type and message, shown as text."""

    type: str
    message: str

    def __repr__(self) -> str:
        return f"{self.type}: {self.message}"


def expect_error(function: Any, *args: Any, **kwargs: Any) -> CaughtError:
    """Call ``function`` and return the error it raises, for a lesson that shows an error message.

    The notebook keeps running (so "Run All" never stops on a demonstration), and an
    AssertionError is raised if the call unexpectedly succeeds. Taught in ``12_your_own_model``.
    """
    try:
        function(*args, **kwargs)
    except Exception as exc:  # the point is to show whatever the user would see
        return CaughtError(type(exc).__name__, str(exc))
    raise AssertionError(f"{getattr(function, '__name__', function)} was expected to fail but did not")
