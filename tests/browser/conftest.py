"""JupyterLab and Debian's Chromium for the browser tier, shared by its tests.

``start_jupyter_lab`` starts JupyterLab the way the README's ``make lab`` does
(``.venv/bin/jupyter lab notebooks/``), kept private: a free localhost port, a
token, no browser, its own config, settings and workspaces, no news fetched. The
kernels it starts inherit this process's environment, so ``QLAB_ARTIFACTS`` and
``QLAB_DATA_DIR`` reach them.

Chromium is Debian's (``/usr/bin/chromium``), never a Playwright download.
Without it the tests are skipped with the reason - except in CI (``CI=true``),
where a missing browser is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qlab.files.paths import artifacts_dir

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Read before tests/conftest.py points QLAB_ARTIFACTS at the session's temporary folder:
# screenshots are for people, so they go to the user's artifacts/browser/.
SCREENSHOTS = artifacts_dir() / "browser"


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: where it answers, its token and its log file."""

    base: str
    token: str
    log: Path

    def url(self, notebook: str, workspace: str) -> str:
        """``notebook`` opened in a fresh workspace of its own (no other tab restored beside it)."""
        return f"{self.base}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={self.token}"


def _chromium_or_skip() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                        else None)
    if path is None:
        reason = ("Debian's chromium is not installed (apt-get install chromium); "
                  "the browser test never downloads a browser")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer {url} within {timeout:.0f} s:\n"
                       f"{log.read_text()[-3000:]}")


def _jupyter_command(folder: str, port: int, token: str, private: Path) -> list[str]:
    """``.venv/bin/jupyter lab <folder>`` (the README's ``make lab``) plus what keeps it private."""
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        raise FileNotFoundError(f"no {jupyter}: the browser test runs the environment's own "
                                "jupyter, as `make lab` does")
    cmd = [str(jupyter), "lab", folder, "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}",
           f"--LabApp.user_settings_dir={private / 'settings'}",
           f"--LabApp.workspaces_dir={private / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=", "--LabServerApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    return cmd


@contextlib.contextmanager
def _jupyter_lab(cwd: Path, folder: str, private: Path) -> Iterator[Lab]:
    """Run ``jupyter lab <folder>`` from ``cwd``, its state kept under ``private``; stop it at the end."""
    settings = private / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no "fetch Jupyter news?" toast over the page
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(private / "config"),
               JUPYTER_DATA_DIR=str(private / "data"), JUPYTER_RUNTIME_DIR=str(private / "runtime"),
               IPYTHONDIR=str(private / "ipython"), JUPYTER_PLATFORM_DIRS="1",
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    log = private / "jupyter.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(_jupyter_command(folder, port, token, private), env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield Lab(base, token, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def start_jupyter_lab():
    """``start_jupyter_lab(cwd, folder, private)``: a context manager yielding a :class:`Lab`."""
    _chromium_or_skip()  # no server without a browser to drive it
    return _jupyter_lab


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright; one for the whole tier."""
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """``artifacts/browser/`` of the user's artifacts folder (``$QLAB_ARTIFACTS`` when set)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
