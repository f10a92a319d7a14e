"""What qlab runs on: versions, CPU and date, stored beside every result."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib import metadata


def _version(dist: str) -> str:
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
    """Versions of the stack, the CPU, core count and the date (UTC), as strings."""
    report = {"python": platform.python_version()}
    for dist in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
                 "numpy", "qlab"):
        report[dist] = _version(dist)
    report.update({
        "cpu": cpu_name(),
        "cores": str(os.cpu_count()),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    return report
