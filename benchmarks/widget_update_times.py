"""How long a widget takes from a control change to the redrawn picture.

For each widget and control, set the control's ``.value`` (as the browser
does through the comm) and time until the new PNG is in ``widget.image.value``:
recompute + redraw + PNG encode, all of it synchronous in the kernel. Prints the
median, 95th percentile and worst wall time over the repeats, the CPU time's
median and 95th percentile (wall time on a shared machine includes waiting for a
core), and the CPU model the times were taken on. A widget remembers what does not
change (a source's calibrated range, a chain it has simulated), so the worst time
is usually the first visit to a setting. The goal: every control's 95th percentile under
50 ms, headroom for a laptop twice as slow to stay under the 100 ms at which a
change feels instant. The browser adds one comm round trip on top (a few ms on
localhost). Run it while nothing else runs.

    .venv/bin/python benchmarks/widget_update_times.py [--repeats 40]
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any, Callable, Iterable

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from qlab import widgets as qw  # noqa: E402
from qlab.zoo.environment import cpu_name  # noqa: E402

#: The goal: every control's 95th percentile update under this many milliseconds.
P95_GOAL_MS = 50.0


def summarize(wall: np.ndarray, cpu: np.ndarray) -> dict[str, float]:
    """Median, 95th percentile and worst wall time, and the CPU time's median and p95, in ms."""
    return {"median_ms": float(np.median(wall)), "p95_ms": float(np.percentile(wall, 95)),
            "max_ms": float(np.max(wall)), "cpu_median_ms": float(np.median(cpu)),
            "cpu_p95_ms": float(np.percentile(cpu, 95))}


def time_changes(widget: Any, control: Any, values: Iterable[Any], repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU milliseconds of ``repeats`` changes of ``control`` cycling through ``values``."""
    wall, cpu = [], []
    cycle = itertools.cycle(values)
    for _ in range(repeats):
        value = next(cycle)
        if value == control.value:
            value = next(cycle)
        png = widget.image.value
        w0, c0 = time.perf_counter(), time.process_time()
        control.value = value
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        if widget.image.value == png or widget.message.value:
            raise RuntimeError(f"changing {control.description or control} to {value!r} did not "
                               f"redraw: {widget.message.value}")
    return 1000 * np.array(wall), 1000 * np.array(cpu)


def time_case(make: Callable[[], Any], control_name: str, values: Iterable[Any], repeats: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`time_changes` on a fresh widget from ``make``, closed afterwards (one row of CASES)."""
    widget = make()
    try:
        return time_changes(widget, getattr(widget, control_name), values, repeats)
    finally:
        widget.close()


CASES: list[tuple[str, Callable[[], Any], str, list[Any]]] = [
    ("BucketExplorer", qw.BucketExplorer, "num_bits", [8, 4, 12, 2, 16, 6]),
    ("BucketExplorer", qw.BucketExplorer, "window", [(2.0, 2.3), (0.5, 0.6), (-3.0, -2.5)]),
    ("BucketExplorer", qw.BucketExplorer, "symmetric", [True, False]),
    ("BucketExplorer", qw.BucketExplorer, "source", ["normal", "laplace (weight-like)", "uniform"]),
    ("BucketExplorer", qw.BucketExplorer, "range_method", ["percentile", "mse", "minmax"]),
    ("ErrorAccumulation", qw.ErrorAccumulation, "depth", [8, 16, 4, 24]),
    ("ErrorAccumulation", qw.ErrorAccumulation, "num_bits", [8, 4, 6]),
    ("ErrorAccumulation", qw.ErrorAccumulation, "per_channel", [True, False]),
    ("ErrorAccumulation", lambda: qw.ErrorAccumulation(
        model_profile={f"layer_{i}": 0.01 * (i % 7 + 1) for i in range(30)}), "depth", [8, 16, 4]),
    ("PerChannelRanges", qw.PerChannelRanges, "num_bits", [8, 4, 6, 3]),
    ("PerChannelRanges", qw.PerChannelRanges, "sort", [True, False]),
    ("PerChannelRanges", qw.PerChannelRanges, "layer",
     ["synthetic depthwise kernel, 128 channels", "synthetic depthwise kernel"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_name()}")
    print(f"{'widget':<18} {'control':<12} {'median ms':>9} {'p95 ms':>7} {'max ms':>7} "
          f"{'cpu median ms':>13} {'cpu p95 ms':>10}")
    # the second ErrorAccumulation "depth" row also shows a 30-layer model profile
    per_widget: dict[str, list[float]] = {}
    over = []
    for name, make, control_name, values in CASES:
        wall, cpu = time_case(make, control_name, values, args.repeats)
        per_widget.setdefault(name, []).extend(wall)
        row = summarize(wall, cpu)
        print(f"{name:<18} {control_name:<12} {row['median_ms']:9.1f} {row['p95_ms']:7.1f} "
              f"{row['max_ms']:7.1f} {row['cpu_median_ms']:13.1f} {row['cpu_p95_ms']:10.1f}")
        if row["p95_ms"] >= P95_GOAL_MS:
            over.append(f"{name}.{control_name}")
    print()
    for name, wall in per_widget.items():
        print(f"{name:<18} all controls: median {np.median(wall):.1f} ms, "
              f"p95 {np.percentile(wall, 95):.1f} ms over {len(wall)} updates")
    print(f"p95 over the {P95_GOAL_MS:.0f} ms goal: {', '.join(over) if over else 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
