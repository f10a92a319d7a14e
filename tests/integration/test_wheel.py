"""qlab installed from a wheel, away from the repository: it finds its data through a setting.

The wheel is built from this working tree and installed, without its dependencies,
into a fresh virtual environment under tmp_path. The dependencies come from the
environment running the tests through a ``.pth`` line, so nothing is downloaded to
install them; the check that matters is that ``qlab`` itself is imported from the
wheel, not from the checkout. Every command runs in a folder outside the checkout.

Building the wheel needs setuptools>=77 (``[build-system]``): the running
environment's copy when it is new enough, else pip's isolated build fetches it
from the package index (the test is skipped, saying so, when that is impossible).
Measured: 16 s on 2 cores, most of it TensorFlow start-up and the smoke training.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).resolve().parents[2]  # the working tree this test file belongs to
SMOKE_COMPARE = ["compare", "--smoke", "--model", "mnist_cnn",
                 "--variants", "float32,int8_per_channel", "--no-latency", "--quiet"]
# pip's words when the isolated build cannot reach an index to fetch setuptools
_NO_INDEX = ("No matching distribution found for setuptools",
             "Could not find a version that satisfies the requirement setuptools")


def _source_copy(target: Path) -> Path:
    """The files a wheel is built from, copied so the build leaves no build/ in the checkout."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(SOURCE / name, target / name)
    shutil.copytree(SOURCE / "qlab", target / "qlab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _build_wheel(source: Path, dist: Path) -> Path:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist),
               str(source)]
    if int(importlib.metadata.version("setuptools").split(".")[0]) >= 77:
        command.insert(4, "--no-build-isolation")  # offline: this environment can build it
    built = subprocess.run(command, capture_output=True, text=True)
    if built.returncode != 0 and any(words in built.stderr for words in _NO_INDEX):
        pytest.skip("cannot build the wheel: setuptools>=77 is neither installed here nor "
                    f"reachable on the package index ({built.stderr.strip().splitlines()[-1]})")
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("qlab-*.whl")
    return wheel


def _install(wheel: Path, venv: Path) -> Path:
    """Install the wheel alone into a new venv; return the venv's site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    site_packages = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    # Written after the install: pip must not see (and offer to replace) the editable qlab.
    # A plain path line, so the editable install's own .pth files there are not run.
    dependencies = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site_packages / "zz_qlab_test_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    return site_packages


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, venv bin folder, venv site-packages, working folder outside the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(_source_copy(root / "src"), root / "dist")
    site_packages = _install(wheel, root / "venv")
    work = root / "work"
    work.mkdir()
    return wheel, root / "venv" / "bin", site_packages, work


def _run(installed, args, **settings: str) -> subprocess.CompletedProcess:
    """Run ``args`` (``qlab ...`` or ``python ...``) from the wheel's venv, in the working folder."""
    _, bin_dir, _, work = installed
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "QLAB_DATA_DIR", "QLAB_ARTIFACTS")}
    env.update(settings)
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_wheel_holds_every_file_of_the_package(installed):
    wheel = installed[0]
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}
    in_tree = {path.relative_to(SOURCE).as_posix() for path in (SOURCE / "qlab").rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    assert {name for name in in_tree if name.endswith(".py")} > {"qlab/__init__.py"}
    assert shipped == in_tree  # every subpackage, module and template; nothing else


def test_qlab_is_imported_from_the_wheel_not_the_checkout(installed):
    site_packages = installed[2]
    result = _run(installed, ["python", "-c",
                              "import qlab, qlab.files.paths as p; print(qlab.__file__); "
                              "print(p.checkout_root())"])
    assert result.returncode == 0, result.stderr
    module_file, checkout = result.stdout.split()
    assert Path(module_file) == site_packages / "qlab" / "__init__.py"
    assert checkout == "None"


def test_env_check_passes_with_the_data_dir_set(installed, tmp_path):
    result = _run(installed, ["qlab", "env", "--check"], QLAB_DATA_DIR=str(SOURCE / "data"),
                  QLAB_ARTIFACTS=str(tmp_path / "artifacts"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"sha256 verified ({SOURCE / 'data' / 'mnist.npz'})" in result.stdout


def test_smoke_compare_runs_and_writes_where_told(installed, tmp_path):
    artifacts = tmp_path / "artifacts"
    result = _run(installed, ["qlab", *SMOKE_COMPARE], QLAB_DATA_DIR=str(SOURCE / "data"),
                  QLAB_ARTIFACTS=str(artifacts))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "int8_per_channel" in result.stdout
    assert list((artifacts / "results").glob("compare-smoke-*.json"))
    assert list((artifacts / "tflite").rglob("int8_per_channel.tflite"))


def test_without_the_data_dir_the_error_says_what_to_set(installed):
    result = _run(installed, ["qlab", *SMOKE_COMPARE])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "qlab: error: qlab cannot find MNIST: set QLAB_DATA_DIR" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["run", "--smoke", "00"],
                                     ["bench", "--skip-notebooks", "--skip-widgets"]])
def test_repository_commands_say_they_need_a_checkout(installed, command):
    result = _run(installed, ["qlab", *command], QLAB_DATA_DIR=str(SOURCE / "data"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "qlab: error: this needs the qlab repository" in result.stderr
    assert "Traceback" not in result.stderr
