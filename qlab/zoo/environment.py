"""What qlab runs on: versions, CPU and date, stored beside every result."""

from __future__ import annotations

import datetime as _dt
import html
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from typing import Callable


def package_version(dist: str) -> str:
    """The installed version of the distribution ``dist``, or "not installed"."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo, or platform's guess elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_report() -> dict[str, str]:
    """Versions of the stack, the CPU, core count and the date (UTC), as strings.

    Taught in ``00_start_here``.
    """
    report = {"python": platform.python_version()}
    for dist in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
                 "numpy", "qlab"):
        report[dist] = package_version(dist)
    report.update({
        "cpu": cpu_name(),
        "cores": str(os.cpu_count()),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    return report


@dataclass
class Check:
    """One environment check: what was checked, whether it passed, and what was seen."""

    name: str
    ok: bool
    detail: str


class EnvironmentChecks(list):
    """The list of :class:`Check` results, shown as a table in a notebook.

    Returned by :func:`check_environment`; ``ok`` is True when every check passed.
    Taught in ``00_start_here``.
    """

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self)

    def __repr__(self) -> str:
        width = max(len(c.name) for c in self)
        return "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<{width}}  {c.detail}" for c in self)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{'&#10004;' if c.ok else '&#10008; FAIL'}</td><td>{html.escape(c.name)}</td>"
            f"<td>{html.escape(c.detail)}</td></tr>" for c in self)
        return f"<table><tr><th></th><th>check</th><th>seen</th></tr>{rows}</table>"


def _run_check(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except Exception as exc:  # a failed check is reported, not raised: the table shows them all
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def _probe_keras() -> str:
    from qlab.zoo.keras2 import keras, tf

    if not keras.__version__.startswith("2."):
        raise RuntimeError(f"tf_keras is {keras.__version__}, expected 2.x")
    return f"TensorFlow {tf.__version__}, Keras {keras.__version__} (tf_keras)"


def _probe_litert() -> str:
    from qlab.zoo.keras2 import keras, tf

    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(2)])
    tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    interpreter.invoke()
    return f"converted a tiny model ({len(tflite)} bytes) and ran it in the LiteRT interpreter"


def _probe_mnist() -> str:
    from qlab.files.data import load_mnist, mnist_path

    (x_train, _), (x_test, _) = load_mnist()
    return f"{len(x_train)} training and {len(x_test)} test images, sha256 verified ({mnist_path()})"


def _probe_tfmot() -> str:
    from qlab.zoo.keras2 import keras, tfmot

    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(2)])
    tfmot.quantization.keras.quantize_model(model)
    return f"tensorflow-model-optimization {package_version('tensorflow-model-optimization')} quantizes a Keras 2 model"


def check_environment() -> EnvironmentChecks:
    """Check that everything the workbook needs works here; returns a table of results.

    Taught in ``00_start_here``.
    """
    return EnvironmentChecks([
        _run_check("python 3.11", lambda: platform.python_version()
                   if platform.python_version().startswith("3.11.") else _fail("need Python 3.11")),
        _run_check("tensorflow + tf_keras", _probe_keras),
        _run_check("tensorflow-model-optimization", _probe_tfmot),
        _run_check("LiteRT interpreter", _probe_litert),
        _run_check("MNIST", _probe_mnist),
        _run_check("ipywidgets", lambda: f"ipywidgets {package_version('ipywidgets')}"),
    ])


def _fail(message: str) -> str:
    raise RuntimeError(message)
